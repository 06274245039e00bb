"""Applications (Pinpoint projects): rows of ``apps`` and the one check every app-scoped operation starts with."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.store.endpoint_rows import iso_timestamp

# Tables without a foreign key to apps, keyed by journey: emptied before the journeys themselves go.
_JOURNEY_TABLES = (
    "journey_intake",
    "journey_counters",
    "journey_cohorts",
    "journey_versions",
    "participants",
)
# Tables without a foreign key to apps that carry app_id. The others (channels, endpoints, segments, journeys)
# go with the app row through ON DELETE CASCADE.
_APP_TABLES = ("events", "messages", "segment_versions")


async def require_app(conn: AsyncConnection, app_id: str) -> Row[Any]:
    """The app's row; every app-scoped operation calls this first.

    Args:
        conn: Any connection.
        app_id: The ``ApplicationId`` of the request.

    Returns:
        The ``apps`` row.

    Raises:
        NotFoundError: no such application.
    """
    row = (await conn.execute(text("SELECT * FROM apps WHERE id = :a"), {"a": app_id})).first()
    if row is None:
        raise NotFoundError(f"Application {app_id} not found")
    return row


def app_arn(region: str, app_id: str) -> str:
    """The ARN Pinpoint gives an application."""
    return f"arn:aws:mobiletargeting:{region}:000000000000:apps/{app_id}"


def application_response(row: Row[Any], region: str) -> dict[str, Any]:
    """An ``apps`` row as Pinpoint's ApplicationResponse.

    Args:
        row: The row.
        region: Region written into the ARN.
    """
    return {
        "Id": row.id,
        "Arn": app_arn(region, row.id),
        "Name": row.name,
        "tags": dict(row.tags or {}),
        "CreationDate": iso_timestamp(row.created_at),
    }


async def insert_app(conn: AsyncConnection, app_id: str, name: str, tags: Mapping[str, str]) -> Row[Any]:
    """Create an application.

    Args:
        conn: A connection inside a transaction.
        app_id: The new id.
        name: The display name.
        tags: Resource tags.

    Returns:
        The new row.
    """
    result = await conn.execute(
        text("INSERT INTO apps (id, name, tags) VALUES (:a, :n, CAST(:t AS jsonb)) RETURNING *"),
        {"a": app_id, "n": name, "t": json.dumps(dict(tags))},
    )
    return result.one()


def encode_token(created_at: datetime, app_id: str) -> str:
    """The NextToken that continues a listing after the app (``created_at``, ``app_id``)."""
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), app_id]).encode()).decode()


def decode_token(token: str) -> tuple[datetime, str]:
    """The position a NextToken of :func:`encode_token` stands for.

    Raises:
        BadRequestError: not a token this API handed out.
    """
    try:
        created_at, app_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(created_at), str(app_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequestError(
            "Token is not a NextToken returned by GetApps; omit it to start from the first page"
        ) from None


async def list_apps(
    conn: AsyncConnection, *, after: tuple[datetime, str] | None, limit: int
) -> list[Row[Any]]:
    """A page of applications, oldest first (ties by id), so paging is stable while apps come and go.

    Args:
        conn: Any connection.
        after: The (created_at, id) of the last app of the previous page, or None for the first page.
        limit: Most rows returned.
    """
    if after is None:
        result = await conn.execute(text("SELECT * FROM apps ORDER BY created_at, id LIMIT :l"), {"l": limit})
    else:
        result = await conn.execute(
            text("SELECT * FROM apps WHERE (created_at, id) > (:c, :i) ORDER BY created_at, id LIMIT :l"),
            {"c": after[0], "i": after[1], "l": limit},
        )
    return list(result)


async def running_journeys(conn: AsyncConnection, app_id: str) -> list[str]:
    """Ids of the app's journeys whose workflows are running (ACTIVE or PAUSED)."""
    result = await conn.execute(
        text(
            "SELECT id FROM journeys WHERE app_id = :a AND state IN ('ACTIVE', 'PAUSED', 'CLOSED') ORDER BY id"
        ),
        {"a": app_id},
    )
    return list(result.scalars())


async def delete_app(conn: AsyncConnection, app_id: str) -> Row[Any]:
    """Delete an application and everything that belongs to it, in the caller's transaction.

    Args:
        conn: A connection inside a transaction.
        app_id: The application.

    Returns:
        The deleted ``apps`` row.

    Raises:
        NotFoundError: no such application.
    """
    row = await require_app(conn, app_id)
    for table in _JOURNEY_TABLES:
        await conn.execute(
            text(f"DELETE FROM {table} WHERE journey_id IN (SELECT id FROM journeys WHERE app_id = :a)"),
            {"a": app_id},
        )
    for table in _APP_TABLES:
        await conn.execute(text(f"DELETE FROM {table} WHERE app_id = :a"), {"a": app_id})
    await conn.execute(text("DELETE FROM apps WHERE id = :a"), {"a": app_id})
    return row
