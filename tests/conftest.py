"""Session fixtures: a real embedded PostgreSQL (migrated) and real Temporal servers."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from sojourn.engine import names
from sojourn.stack import EmbeddedPostgres, temporal_cli_path, temporal_test_server_path
from sojourn.store.db import asyncpg_dsn, create_engine
from sojourn.store.migrate import upgrade_async
from tests.support.helpers import free_port
from tests.support.smtp import SmtpSink


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


@pytest_asyncio.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server: days of journey time pass in milliseconds.

    One per test: a skipped clock must not leak into the next test (it starts in a fraction of a second).
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server_path()
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (in memory) with sojourn's search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli_path(),
        search_attributes=[
            names.APP_ID,
            names.JOURNEY_ID,
            names.CAMPAIGN_ID,
            names.SOJOURN_KIND,
            names.ACTIVITY_ID,
        ],
        ui=False,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "system.forceSearchAttributesCacheRefreshOnRead=true",
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """One SMTP sink for a module's tests, for module-scoped API servers and workers that send to it."""
    server = SmtpSink()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on a free port that keeps every message it accepts."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
