"""Journeys on the time-skipping server with the real PostgreSQL and a real SMTP server."""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.state import AppState
from sojourn.api.tracking import record_engagement
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.helpers import assert_eventually, record_histories, skip_time_until_done
from tests.support.seed import app_with_audience, call, on_event, onboarding, set_state
from tests.support.smtp import SmtpSink


async def test_wait_and_open_split_send_each_participant_down_their_path(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=12, outsiders=3)
    created = await call(
        state,
        "CreateJourney",
        ApplicationId=audience.app_id,
        WriteJourneyRequest=onboarding(audience.segment_id),
    )
    journey_id = created["JourneyResponse"]["Id"]

    async def welcomed() -> None:
        assert len(smtp_server.messages) == 12

    await assert_eventually(welcomed)
    openers = set(audience.addresses[:5])
    for address in openers:
        (received,) = smtp_server.to(address)
        assert received.subject == "welcome"
        message_id = received.message_id.strip("<>").split("@")[0]
        assert await record_engagement(state, message_id, "_email.open", {})

    started = time.monotonic()
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    await record_histories(
        time_skipping_env.client, [handle.id, f"{handle.id}/cohort/0"], "segment_open_split"
    )
    # Two days of wait and a three-day evaluation wait, skipped.
    assert time.monotonic() - started < 15

    subjects = smtp_server.subjects_by_recipient()
    assert set(subjects) == set(audience.addresses)
    for address in audience.addresses:
        assert subjects[address] == ["welcome", "tips" if address in openers else "nudge"]

    metrics = await call(
        state, "GetJourneyExecutionMetrics", ApplicationId=audience.app_id, JourneyId=journey_id
    )
    m = metrics["JourneyExecutionMetricsResponse"]["Metrics"]
    assert m["ENDPOINT_ENTERED"] == "12" and m["ENDPOINT_LEFT"] == "12" and m["ENDPOINT_ACTIVE"] == "0"
    split = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        JourneyActivityId="opened",
    )
    assert split["JourneyExecutionActivityMetricsResponse"]["Metrics"]["Branch_1"] == "5"
    assert split["JourneyExecutionActivityMetricsResponse"]["Metrics"]["Branch_2"] == "7"
    welcome = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        JourneyActivityId="welcome",
    )
    assert welcome["JourneyExecutionActivityMetricsResponse"]["Metrics"]["SUCCESS"] == "12"


@pytest.mark.parametrize("percentage", [30])
async def test_holdout_share_is_within_statistical_bounds(
    stack: tuple[AppState, Worker], db: AsyncEngine, time_skipping_env: WorkflowEnvironment, percentage: int
) -> None:
    state, _ = stack
    n = 3000
    audience = await app_with_audience(state, members=n, templates=())
    request = {
        "Name": "control",
        "State": "ACTIVE",
        "StartActivity": "control",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "control": {"Holdout": {"Percentage": percentage, "NextActivity": "later"}},
            # A WaitUntil 20 seconds ahead: honoured, then the lane leaves the journey.
            "later": {
                "Wait": {"WaitTime": {"WaitUntil": (datetime.now(UTC) + timedelta(seconds=20)).isoformat()}}
            },
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    async with db.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    text("SELECT status, count(*) FROM participants WHERE journey_id = :j GROUP BY status"),
                    {"j": journey_id},
                )
            ).all()
        )
    later = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        JourneyActivityId="later",
    )
    assert later["JourneyExecutionActivityMetricsResponse"]["Metrics"]["COMPLETED"] == str(
        rows.get("completed", 0)
    )
    held = rows.get("held_out", 0)
    assert held + rows.get("completed", 0) == n
    expected, sd = n * percentage / 100, math.sqrt(n * percentage / 100 * (1 - percentage / 100))
    assert abs(held - expected) < 4 * sd, (held, expected, sd)


async def test_event_entry_pause_freezes_waits_resume_and_cancel(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=3)
    request = {
        "Name": "on-signup",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": on_event("signup"),
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "later"}},
            "later": {"Wait": {"WaitTime": {"WaitFor": "P1D"}, "NextActivity": "tips"}},
            "tips": {"EMAIL": {"TemplateName": "tips"}},
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    events = {
        f"ep{i}": {
            "Endpoint": {},
            "Events": {"e": {"EventType": "signup", "Timestamp": "2026-11-23T10:00:00Z"}},
        }
        for i in range(2)
    }
    events["ep2"] = {
        "Endpoint": {},
        "Events": {"e": {"EventType": "login", "Timestamp": "2026-11-23T10:00:00Z"}},
    }
    await call(state, "PutEvents", ApplicationId=audience.app_id, EventsRequest={"BatchItem": events})

    async def welcomed() -> None:
        assert sorted(smtp_server.subjects_by_recipient()) == sorted(audience.addresses[:2])

    await assert_eventually(welcomed)
    await set_state(state, audience.app_id, journey_id, "PAUSED")
    await time_skipping_env.sleep(timedelta(days=3))
    assert len(smtp_server.messages) == 2, "a paused journey's wait must not run out"
    resumed = await set_state(state, audience.app_id, journey_id, "ACTIVE")
    assert resumed["JourneyResponse"]["State"] == "ACTIVE"
    await time_skipping_env.sleep(timedelta(days=1, hours=1))

    async def tipped() -> None:
        assert all(
            subjects == ["welcome", "tips"] for subjects in smtp_server.subjects_by_recipient().values()
        )

    await assert_eventually(tipped)
    cancelled = await set_state(state, audience.app_id, journey_id, "CANCELLED")
    assert cancelled["JourneyResponse"]["State"] == "CANCELLED"
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "CANCELLED"
    await record_histories(
        time_skipping_env.client, [handle.id, f"{handle.id}/cohort/0"], "event_pause_resume_cancel"
    )
    metrics = await call(
        state, "GetJourneyExecutionMetrics", ApplicationId=audience.app_id, JourneyId=journey_id
    )
    assert metrics["JourneyExecutionMetricsResponse"]["Metrics"]["ENDPOINT_ENTERED"] == "2"
    got = await call(state, "GetJourney", ApplicationId=audience.app_id, JourneyId=journey_id)
    assert got["JourneyResponse"]["State"] == "CANCELLED"


async def test_multi_condition_sends_each_member_down_the_first_matching_branch(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=6, templates=("welcome", "tips", "nudge", "bye"))

    def on(event: str) -> dict[str, Any]:
        return {
            "EventCondition": {
                "MessageActivity": "welcome",
                "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [event]}},
            }
        }

    request = {
        "Name": "multi",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "engaged"}},
            "engaged": {
                "MultiCondition": {
                    "Branches": [
                        {"Condition": on("_email.click"), "NextActivity": "tips"},
                        {"Condition": on("_email.open"), "NextActivity": "nudge"},
                    ],
                    "DefaultActivity": "bye",
                    "EvaluationWaitTime": {"WaitFor": "P2D"},
                }
            },
            "tips": {"EMAIL": {"TemplateName": "tips"}},
            "nudge": {"EMAIL": {"TemplateName": "nudge"}},
            "bye": {"EMAIL": {"TemplateName": "bye"}},
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]

    async def welcomed() -> None:
        assert len(smtp_server.messages) == 6

    await assert_eventually(welcomed)
    a = audience.addresses
    engagement = {
        a[0]: ["_email.click", "_email.open"],
        a[1]: ["_email.click"],
        a[2]: ["_email.open"],
        a[3]: ["_email.open"],
    }
    for address, kinds in engagement.items():
        message_id = smtp_server.to(address)[0].message_id.strip("<>").split("@")[0]
        for kind in kinds:
            assert await record_engagement(state, message_id, kind, {})
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    subjects = smtp_server.subjects_by_recipient()
    assert [subjects[x][1] for x in a] == ["tips", "tips", "nudge", "nudge", "bye", "bye"]
    split = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        JourneyActivityId="engaged",
    )
    body = split["JourneyExecutionActivityMetricsResponse"]
    assert body["ActivityType"] == "MULTI_CONDITIONAL_SPLIT"
    assert {k: body["Metrics"][k] for k in ("Branch_1", "Branch_2", "Branch_3")} == {
        "Branch_1": "2",
        "Branch_2": "2",
        "Branch_3": "2",
    }


async def test_many_cohorts_run_through_a_window_across_continue_as_new(
    db: AsyncEngine, dev_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    # On the dev server: the time-skipping server stops skipping after a parent with running children
    # continues as new, so this one waits two real seconds.
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}",
        smtp_url=smtp_server.url,
        cohort_size=5,
        max_cohorts_in_flight=2,
        journey_history_limit=50,
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(dev_env.client)
    worker = build_worker(
        dev_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp_server.url))
    )
    async with worker:
        audience = await app_with_audience(state, members=40, templates=("welcome",))
        request = {
            "Name": "window",
            "State": "ACTIVE",
            "StartActivity": "welcome",
            "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
            "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
            "Activities": {
                "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "later"}},
                "later": {"Wait": {"WaitTime": {"WaitFor": "PT1S"}}},
            },
        }
        created = await call(
            state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request
        )
        journey_id = created["JourneyResponse"]["Id"]
        handle = dev_env.client.get_workflow_handle(names.journey_workflow_id(audience.app_id, journey_id))
        assert await handle.result() == "COMPLETED"
        history = await handle.fetch_history()
    # The journey handed itself over to a new run while starting its 8 cohorts two at a time.
    assert history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
    assert sorted(m.to for m in smtp_server.messages) == sorted(audience.addresses)
    metrics = await call(
        state, "GetJourneyExecutionMetrics", ApplicationId=audience.app_id, JourneyId=journey_id
    )
    assert metrics["JourneyExecutionMetricsResponse"]["Metrics"]["ENDPOINT_LEFT"] == "40"


async def test_event_entry_rules_segment_active_interval_and_cap(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=1, outsiders=1, templates=("welcome",))
    request = {
        "Name": "rules",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": on_event("signup", audience.segment_id),
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Limits": {"EndpointReentryCap": 2, "EndpointReentryInterval": "PT1H"},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "settle"}},
            "settle": {"Wait": {"WaitTime": {"WaitFor": "PT10M"}}},
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]

    async def signup(*endpoints: str) -> None:
        batch = {
            e: {
                "Endpoint": {},
                "Events": {uuid.uuid4().hex: {"EventType": "signup", "Timestamp": "2026-11-23T10:00:00Z"}},
            }
            for e in endpoints
        }
        await call(state, "PutEvents", ApplicationId=audience.app_id, EventsRequest={"BatchItem": batch})

    async def metrics_reach(**expected: str) -> None:
        async def check() -> None:
            got = await call(
                state, "GetJourneyExecutionMetrics", ApplicationId=audience.app_id, JourneyId=journey_id
            )
            metrics = got["JourneyExecutionMetricsResponse"]["Metrics"]
            for name, value in expected.items():
                assert metrics.get(name) == value, (name, metrics)

        await assert_eventually(check)

    # ep1 is not in the segment (plan=free); ep0 is.
    await signup("ep0", "ep1")
    await metrics_reach(ENDPOINT_ENTERED="1")
    await signup("ep0")  # still waiting in the journey
    await metrics_reach(ENDPOINT_ENTERED="1", ACTIVE_ENDPOINT_REJECTED="1")
    await time_skipping_env.sleep(timedelta(minutes=30))
    await signup("ep0")  # left, but entered less than an hour ago
    await metrics_reach(ENDPOINT_ENTERED="1", ACTIVE_ENDPOINT_REJECTED="1")
    await time_skipping_env.sleep(timedelta(hours=1))
    await signup("ep0")  # second entry: allowed
    await metrics_reach(ENDPOINT_ENTERED="2")
    await time_skipping_env.sleep(timedelta(hours=2))
    await signup("ep0")  # a third entry is over the cap of 2
    await metrics_reach(ENDPOINT_ENTERED="2", REENTRY_CAP_EXCEEDED="1")
    assert [m.to for m in smtp_server.messages] == [audience.addresses[0]] * 2
    async with state.db.connect() as conn:
        counters = dict(
            (
                await conn.execute(
                    text(
                        "SELECT metric, sum(value) FROM journey_counters WHERE journey_id = :j AND activity_id = '' GROUP BY metric"
                    ),
                    {"j": journey_id},
                )
            ).all()
        )
    assert counters["FILTERED_OUT_BY_SEGMENT"] == 1 and counters["REENTRY_INTERVAL_NOT_ELAPSED"] == 1


async def test_daily_and_total_caps_skip_emails_over_the_cap(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=2, templates=("welcome", "tips", "nudge", "bye"))
    request = {
        "Name": "capped",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Limits": {"DailyCap": 1, "TotalCap": 2},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "hour"}},
            "hour": {"Wait": {"WaitTime": {"WaitFor": "PT1H"}, "NextActivity": "tips"}},
            "tips": {"EMAIL": {"TemplateName": "tips", "NextActivity": "day"}},
            "day": {"Wait": {"WaitTime": {"WaitFor": "P1D"}, "NextActivity": "nudge"}},
            "nudge": {"EMAIL": {"TemplateName": "nudge", "NextActivity": "again"}},
            "again": {"Wait": {"WaitTime": {"WaitFor": "P2D"}, "NextActivity": "bye"}},
            "bye": {"EMAIL": {"TemplateName": "bye"}},
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    # tips: a second email within 24 hours (DailyCap 1); bye: a third in all (TotalCap 2).
    assert smtp_server.subjects_by_recipient() == {a: ["welcome", "nudge"] for a in audience.addresses}
    for activity_id, metric in (("tips", "DAILY_CAP"), ("bye", "TOTAL_CAP"), ("nudge", "SUCCESS")):
        got = await call(
            state,
            "GetJourneyExecutionActivityMetrics",
            ApplicationId=audience.app_id,
            JourneyId=journey_id,
            JourneyActivityId=activity_id,
        )
        assert got["JourneyExecutionActivityMetricsResponse"]["Metrics"] == {metric: "2"}, activity_id
