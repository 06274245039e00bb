"""The wait-for-event step (a sojourn extension): each participant moves on as soon as their own event arrives.

On the dev server, in real time: the point is that the early exit does not wait for the split's timer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.helpers import assert_eventually, record_histories
from tests.support.seed import app_with_audience, call
from tests.support.smtp import SmtpSink

TIMEOUT_SECONDS = 25


def purchase_or_nudge(segment_id: str) -> dict[str, object]:
    """Wait up to TIMEOUT_SECONDS for the participant's own `purchase`: thanks at once, else a nudge."""
    return {
        "Name": "await-purchase",
        "State": "ACTIVE",
        "StartActivity": "bought",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "bought": {
                "ConditionalSplit": {
                    "Condition": {
                        "Conditions": [
                            {
                                "EventCondition": {
                                    "Dimensions": {
                                        "EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase"]}
                                    }
                                }
                            }
                        ]
                    },
                    "EvaluationWaitTime": {"WaitFor": f"PT{TIMEOUT_SECONDS}S"},
                    "TrueActivity": "thanks",
                    "FalseActivity": "nudge",
                }
            },
            "thanks": {"EMAIL": {"TemplateName": "thanks"}},
            "nudge": {"EMAIL": {"TemplateName": "nudge"}},
        },
    }


async def put_event(state: AppState, app_id: str, endpoint_id: str, event_type: str) -> None:
    await call(
        state,
        "PutEvents",
        ApplicationId=app_id,
        EventsRequest={
            "BatchItem": {
                endpoint_id: {
                    "Endpoint": {},
                    "Events": {
                        uuid.uuid4().hex: {
                            "EventType": event_type,
                            "Timestamp": datetime.now(UTC).isoformat(),
                        }
                    },
                }
            }
        },
    )


async def test_a_participants_event_releases_them_before_the_timeout(
    db: AsyncEngine, dev_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    settings = Settings(task_queue=f"tq-{uuid.uuid4().hex}", smtp_url=smtp_server.url)
    state = AppState(db=db, settings=settings)
    state.use_temporal(dev_env.client)
    worker = build_worker(
        dev_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp_server.url))
    )
    async with worker:
        audience = await app_with_audience(state, members=4, templates=("thanks", "nudge"))
        created = await call(
            state,
            "CreateJourney",
            ApplicationId=audience.app_id,
            WriteJourneyRequest=purchase_or_nudge(audience.segment_id),
        )
        journey_id = created["JourneyResponse"]["Id"]
        cohort = dev_env.client.get_workflow_handle(names.cohort_workflow_id(audience.app_id, journey_id, 0))

        async def all_waiting() -> None:
            try:
                lanes = await cohort.query("lanes")
            except RPCError as err:  # the cohort has not started yet
                raise AssertionError(err) from err
            assert lanes.get("0", "").startswith("waiting at 'bought'"), lanes

        await assert_eventually(all_waiting, timeout=20)
        await put_event(state, audience.app_id, "ep0", "purchase")
        await put_event(state, audience.app_id, "ep1", "browse")  # not what the split waits for

        async def thanked() -> None:
            assert [m.subject for m in smtp_server.to(audience.addresses[0])] == ["thanks"]

        await assert_eventually(thanked, timeout=TIMEOUT_SECONDS - 10)
        assert not any(m.subject == "nudge" for m in smtp_server.messages), "the others still wait"
        # A purchase during the wait that reached no workflow signal is still found when the wait ends.
        async with db.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (app_id, endpoint_id, event_id, event_type, occurred_at) "
                    "VALUES (:a, 'ep3', 'quiet', 'purchase', now())"
                ),
                {"a": audience.app_id},
            )

        handle = dev_env.client.get_workflow_handle(names.journey_workflow_id(audience.app_id, journey_id))
        assert await handle.result() == "COMPLETED"
        # (wait_for_event_*.json are the histories of releases as activities on the task queue.)
        await record_histories(dev_env.client, [handle.id, cohort.id], "wait_for_event_local_release")
        # The release runs as a local activity in the workflow task that took the signal (no task-queue round
        # trip); the step right after it jumps the task queue's backlog; batch steps do not.
        steps = [
            (
                "local activity"
                if e.HasField("marker_recorded_event_attributes")
                else e.activity_task_scheduled_event_attributes.activity_type.name,
                e.activity_task_scheduled_event_attributes.priority.priority_key,
            )
            async for e in cohort.fetch_history_events()
            if e.HasField("activity_task_scheduled_event_attributes")
            or (
                e.HasField("marker_recorded_event_attributes")
                and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
            )
        ]
        assert not any(name == "release_waiting" for name, _ in steps), steps
        release = steps.index(("local activity", 0))
        assert steps[release + 1] == ("run_step", 1), steps
        assert ("run_step", 0) in steps[release + 2 :], (
            "the split's evaluation at the end of the wait and what follows run at the default priority"
        )
    subjects = smtp_server.subjects_by_recipient()
    a = audience.addresses
    assert subjects == {a[0]: ["thanks"], a[1]: ["nudge"], a[2]: ["nudge"], a[3]: ["thanks"]}
    split = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        JourneyActivityId="bought",
    )
    metrics = split["JourneyExecutionActivityMetricsResponse"]["Metrics"]
    assert metrics["Branch_1"] == "2" and metrics["Branch_2"] == "2" and metrics["ENTERED"] == "4"
