"""Database engine creation and URL normalisation."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """Return ``url`` with the asyncpg driver, accepting plain ``postgresql://`` URLs.

    Args:
        url: A PostgreSQL URL, e.g. ``postgresql://user@host/db`` or ``postgresql://postgres@/db?host=/sock``.

    Returns:
        The same URL with the ``postgresql+asyncpg`` dialect.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """Return ``url`` as a DSN that ``asyncpg.connect`` accepts (no SQLAlchemy driver suffix)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine sojourn uses for every statement.

    Args:
        url: PostgreSQL URL (any driver suffix).
        pool_size: Connections kept open.

    Returns:
        An ``AsyncEngine`` on asyncpg.
    """
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        json_deserializer=json_loads,
    )


def json_loads(document: str) -> Any:
    """Parse a JSON/JSONB column's text (orjson: a blast decodes two or three documents per endpoint).

    Like :func:`json.loads`, except that an integer beyond 64 bits comes back as a float. Every number sojourn
    stores comes through a botocore shape (integer, long or double), so none is that large.
    """
    return orjson.loads(document)
