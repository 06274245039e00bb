"""Journeys skip suppressed, opted-out and unconfirmed endpoints (time-skipping server, real SMTP)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.notifications import record_feedback
from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.channels.feedback import parse_sns
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from sojourn.store import consent_repo, suppression_repo
from tests.support.helpers import assert_eventually, skip_time_until_done
from tests.support.seed import app_with_audience, call
from tests.support.smtp import SmtpSink


@pytest_asyncio.fixture
async def stack(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> AsyncIterator[AppState]:
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}", temporal_search_attributes=False, smtp_url=smtp_server.url
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(time_skipping_env.client)
    worker: Worker = build_worker(
        time_skipping_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp_server.url))
    )
    async with worker:
        yield state


async def test_journey_email_skips_suppressed_opted_out_and_pending(
    stack: AppState, db: AsyncEngine, smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state = stack
    audience = await app_with_audience(state, members=4, templates=("welcome",))
    ok, suppressed, opted_out, pending = audience.addresses
    async with db.begin() as conn:
        await suppression_repo.put(conn, suppressed.upper(), "BOUNCE")
        await consent_repo.set_permission(conn, audience.app_id, "ep3", "EMAIL", "pending")
    await call(
        state,
        "UpdateEndpoint",
        ApplicationId=audience.app_id,
        EndpointId="ep2",
        EndpointRequest={"OptOut": "ALL"},
    )
    request = {
        "Name": "one",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"

    assert set(smtp_server.subjects_by_recipient()) == {ok}
    assert not smtp_server.to(suppressed) and not smtp_server.to(opted_out) and not smtp_server.to(pending)
    metrics = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        JourneyActivityId="welcome",
    )
    assert metrics["JourneyExecutionActivityMetricsResponse"]["Metrics"] == {
        "SUCCESS": "1",
        "SUPPRESSED": "1",
        "ENDPOINT_OPT_OUT": "1",
        "PENDING_CONFIRMATION": "1",
    }


async def test_a_hard_bounce_suppresses_the_next_journey_email(
    stack: AppState, smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state = stack
    audience = await app_with_audience(state, members=2, templates=("welcome", "tips"))
    bouncer, reader = audience.addresses
    request = {
        "Name": "two",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "day"}},
            "day": {"Wait": {"WaitTime": {"WaitFor": "P1D"}, "NextActivity": "tips"}},
            "tips": {"EMAIL": {"TemplateName": "tips"}},
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]

    async def welcomed() -> None:
        assert len(smtp_server.messages) == 2

    await assert_eventually(welcomed)
    (welcome,) = smtp_server.to(bouncer)
    bounce = {
        "notificationType": "Bounce",
        "mail": {"headers": [{"name": "Message-ID", "value": welcome.message_id}]},
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": bouncer}]},
    }
    items = parse_sns(json.dumps({"Type": "Notification", "Message": json.dumps(bounce)}).encode())
    assert isinstance(items, list)
    outcome = await record_feedback(state, items)
    assert (outcome.events, outcome.suppressed, outcome.ledger_updates) == (1, 1, 1)

    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    assert smtp_server.subjects_by_recipient() == {bouncer: ["welcome"], reader: ["welcome", "tips"]}
    metrics = {}
    for activity_id in ("welcome", "tips"):
        got = await call(
            state,
            "GetJourneyExecutionActivityMetrics",
            ApplicationId=audience.app_id,
            JourneyId=journey_id,
            JourneyActivityId=activity_id,
        )
        metrics[activity_id] = got["JourneyExecutionActivityMetricsResponse"]["Metrics"]
    assert metrics == {
        "welcome": {"SUCCESS": "1", "PERMANENT_FAILURE": "1"},
        "tips": {"SUCCESS": "1", "SUPPRESSED": "1"},
    }
