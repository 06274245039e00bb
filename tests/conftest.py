"""Session fixtures: a real embedded PostgreSQL (migrated) and real Temporal servers."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store.db import asyncpg_dsn, create_engine
from sojourn.store.migrate import upgrade_async
from sojourn.stack import EmbeddedPostgres
from tests.support.helpers import free_port


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL server for the whole test session, in a throw-away data dir."""
    with tempfile.TemporaryDirectory(prefix="sojourn-test-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", port=free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest_asyncio.fixture(scope="session")
async def database_url(postgres: EmbeddedPostgres) -> str:
    """URL of a fresh database with every migration applied."""
    admin = await asyncpg.connect(asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute("DROP DATABASE IF EXISTS sojourn_test")
        await admin.execute("CREATE DATABASE sojourn_test")
    finally:
        await admin.close()
    url = postgres.url("sojourn_test")
    await upgrade_async(url)
    return url


@pytest_asyncio.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The async SQLAlchemy engine on the test database."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()
