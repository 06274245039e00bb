"""SunsetWorkflow on the time-skipping server: a pass a day with the app's stored policy, until disabled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from sojourn.channels.email import NullTransport
from sojourn.engine.sunset_workflow import SunsetWorkflow, ensure_sunset_workflow, sunset_workflow_id
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from sojourn.store import hygiene_repo
from tests.support.helpers import assert_eventually, skip_time_until_done
from tests.support.hygiene import History, add_history, seed_history


@pytest_asyncio.fixture
async def worker_settings(db: AsyncEngine, time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Settings]:
    settings = Settings(task_queue=f"tq-{uuid.uuid4().hex}", temporal_search_attributes=False)
    async with build_worker(time_skipping_env.client, db, settings, transport=NullTransport()):
        yield settings


async def _opted_out(db: AsyncEngine, app_id: str) -> set[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT id FROM endpoints WHERE app_id = :a AND opt_out = 'ALL'"), {"a": app_id}
        )
        return {r[0] for r in rows}


async def test_daily_passes_apply_the_policy_until_disabled(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, worker_settings: Settings
) -> None:
    now = datetime.now(UTC)
    app_id = await seed_history(
        db,
        now,
        {"silent": History(200, 10, None), "engaged": History(200, 10, 2), "quiet": History(200, None, None)},
    )
    async with db.begin() as conn:
        await hygiene_repo.save_policy(conn, app_id, enabled=True, days=90, policy="unsubscribe")
    client: Client = time_skipping_env.client
    workflow_id = await ensure_sunset_workflow(
        client, app_id, task_queue=worker_settings.task_queue, observe=False
    )
    assert workflow_id == sunset_workflow_id(app_id)

    async def first_pass() -> None:
        assert await _opted_out(db, app_id) == {"silent"}

    await assert_eventually(first_pass)
    handle = client.get_workflow_handle(workflow_id)
    result = await handle.query(SunsetWorkflow.last_pass)
    assert result is not None and (result.found, result.applied, result.policy) == (1, 1, "unsubscribe")

    # The "quiet" endpoint is mailed and stays silent; the next day's pass unsubscribes it.
    await add_history(db, app_id, "quiet", now, History(200, 1, None))
    await time_skipping_env.sleep(timedelta(days=1, hours=1))

    async def second_pass() -> None:
        assert await _opted_out(db, app_id) == {"silent", "quiet"}

    await assert_eventually(second_pass)

    async with db.begin() as conn:
        await hygiene_repo.save_policy(conn, app_id, enabled=False, days=90, policy="unsubscribe")
    # Enabling (or disabling) again while it runs wakes the running workflow instead of failing.
    assert (
        await ensure_sunset_workflow(client, app_id, task_queue=worker_settings.task_queue, observe=False)
        == workflow_id
    )
    assert (
        await skip_time_until_done(time_skipping_env, client.get_workflow_handle(workflow_id)) == "disabled"
    )
    assert await _opted_out(db, app_id) == {"silent", "quiet"}
