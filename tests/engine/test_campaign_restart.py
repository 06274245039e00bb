"""A run falls due while the worker is down: after the restart it happens exactly once, never twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.campaigns import (
    activities,
    campaign_messages,
    create_campaign,
    email_campaign,
    iso,
    zoned_audience,
)
from tests.support.helpers import assert_eventually
from tests.support.seed import call
from tests.support.smtp import SmtpSink


async def test_a_run_missed_while_the_worker_was_down_runs_once_after_restart(
    db: AsyncEngine, dev_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    settings = Settings(task_queue=f"restart-{uuid.uuid4().hex}", smtp_url=smtp_server.url)
    state = AppState(db=db, settings=settings)
    state.use_temporal(dev_env.client)

    def worker() -> Worker:
        return build_worker(
            dev_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp_server.url))
        )

    audience = await zoned_audience(state, [None, None, None])
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    schedule = {"StartTime": iso(start), "EndTime": iso(start + timedelta(days=2)), "Frequency": "DAILY"}
    async with worker():
        campaign_id = await create_campaign(
            state, audience.app_id, email_campaign(audience.segment_id, schedule)
        )

        async def scheduled() -> None:
            got = await call(state, "GetCampaign", ApplicationId=audience.app_id, CampaignId=campaign_id)
            assert got["CampaignResponse"]["State"]["CampaignStatus"] == "SCHEDULED"

        await assert_eventually(scheduled)
    # The worker is down when the run falls due.
    await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 2)
    assert await campaign_messages(db, campaign_id) == []

    async with worker():

        async def ran() -> None:
            runs = await activities(state, audience.app_id, campaign_id)
            assert [(r["Id"], r["State"], r["SuccessfulEndpointCount"]) for r in runs] == [
                ("v1-0-t0", "COMPLETED", 3)
            ]
            got = await call(state, "GetCampaign", ApplicationId=audience.app_id, CampaignId=campaign_id)
            assert got["CampaignResponse"]["State"]["CampaignStatus"] == "PENDING_NEXT_RUN"

        await assert_eventually(ran)
        await asyncio.sleep(2)  # nothing more happens: the next run is a day away
        rows = await campaign_messages(db, campaign_id)
        assert Counter(r.endpoint_id for r in rows) == dict.fromkeys(audience.addresses, 1)
        assert sorted(m.to for m in smtp_server.messages) == sorted(audience.addresses.values())
        await call(state, "DeleteCampaign", ApplicationId=audience.app_id, CampaignId=campaign_id)
