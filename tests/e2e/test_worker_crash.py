"""Kill the worker (SIGKILL) while a cohort is mid-send; after a restart every participant has exactly one email."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.state import AppState
from sojourn.engine import names
from sojourn.settings import Settings
from tests.support.helpers import assert_eventually
from tests.support.seed import app_with_audience, call
from tests.support.smtp import SmtpSink

MEMBERS = 400
KILL_AT = 150


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "sojourn", "worker"], env=env)


@pytest.fixture
def killer_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


async def test_worker_killed_mid_send_sends_exactly_once(
    db: AsyncEngine, database_url: str, dev_env: WorkflowEnvironment, killer_sink: SmtpSink
) -> None:
    task_queue = f"crash-{uuid.uuid4().hex}"
    settings = Settings(task_queue=task_queue, cohort_size=1000)
    state = AppState(db=db, settings=settings)
    state.use_temporal(dev_env.client)
    env = {
        **os.environ,
        "SOJOURN_DATABASE_URL": database_url,
        "SOJOURN_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "SOJOURN_TASK_QUEUE": task_queue,
        "SOJOURN_SMTP_URL": killer_sink.url,
        "SOJOURN_LOG_LEVEL": "WARNING",
    }
    worker = start_worker(env)
    killed: list[int] = []

    def kill_mid_send(count: int) -> None:
        # Runs inside the SMTP server as message KILL_AT arrives: the worker dies in the middle of a batch.
        if count == KILL_AT and not killed:
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(count)

    killer_sink.on_message = kill_mid_send
    try:
        audience = await app_with_audience(state, members=MEMBERS, templates=("welcome",))
        request = {
            "Name": "crash",
            "State": "ACTIVE",
            "StartActivity": "welcome",
            "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
            "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
            "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
        }
        created = await call(
            state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request
        )

        async def was_killed() -> None:
            assert killed and worker.poll() is not None

        await assert_eventually(was_killed, timeout=60)
        assert len(killer_sink.messages) < MEMBERS
        worker = start_worker(env)
        handle = dev_env.client.get_workflow_handle(
            names.journey_workflow_id(audience.app_id, created["JourneyResponse"]["Id"])
        )

        async def done() -> None:
            assert len(killer_sink.messages) >= MEMBERS

        await assert_eventually(done, timeout=120)
        assert await handle.result() == "COMPLETED"
        await asyncio.sleep(1)
        per_recipient = Counter(m.to for m in killer_sink.messages)
        assert set(per_recipient) == set(audience.addresses)
        assert set(per_recipient.values()) == {1}
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(30)
