"""Engine test fixtures: a worker on the time-skipping server, the real PostgreSQL and a real SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.smtp import SmtpSink


@pytest_asyncio.fixture
async def stack(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> AsyncIterator[tuple[AppState, Worker]]:
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}", temporal_search_attributes=False, smtp_url=smtp_server.url
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(time_skipping_env.client)
    worker = build_worker(
        time_skipping_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp_server.url))
    )
    async with worker:
        yield state, worker
