"""User-level journey participants (Pinpoint §1.2) on the time-skipping server, real PostgreSQL and SMTP.

A user's endpoints enter together, get the messages of their channel, meet split conditions together (OR
across the endpoints; an event of any of them counts), and are never divided by random splits or holdouts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.state import AppState
from sojourn.api.tracking import record_engagement
from sojourn.cli import render_trace
from sojourn.engine import names
from sojourn.store.participant_trace import trace_endpoint
from tests.engine.test_delivery_rules_flow import quiet_window_around, welcome_journey
from tests.support.helpers import assert_eventually, record_histories, skip_time_until_done
from tests.support.seed import call, on_event, onboarding
from tests.support.smtp import SmtpSink
from tests.support.users import app_with_users, message_count, participant_rows


async def metrics(
    state: AppState, app_id: str, journey_id: str, activity_id: str | None = None
) -> dict[str, str]:
    """The journey's (or one activity's) execution metrics."""
    if activity_id is None:
        got = await call(state, "GetJourneyExecutionMetrics", ApplicationId=app_id, JourneyId=journey_id)
        return dict(got["JourneyExecutionMetricsResponse"]["Metrics"])
    got = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=app_id,
        JourneyId=journey_id,
        JourneyActivityId=activity_id,
    )
    return dict(got["JourneyExecutionActivityMetricsResponse"]["Metrics"])


async def run_to_end(env: WorkflowEnvironment, app_id: str, journey_id: str) -> Any:
    handle = env.client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id))
    assert await skip_time_until_done(env, handle) == "COMPLETED"
    return handle


async def test_a_user_gets_every_email_and_an_open_on_one_endpoint_takes_the_whole_user_down_yes(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_users(
        state,
        {
            "a1": "ann",
            "a2": "ann",
            "a3": "ann",
            "b1": "bob",
            "b2": "bob",
            "s1": None,
            "s2": None,
            "o1": "otto",
        },
        extra={
            # Ann's phone is not in the segment, but enters with her; Otto is not in the segment at all.
            "a3": {"ChannelType": "SMS", "Address": "+12065550100", "Attributes": {}},
            "o1": {"Attributes": {"plan": ["free"]}},
        },
    )
    created = await call(
        state,
        "CreateJourney",
        ApplicationId=audience.app_id,
        WriteJourneyRequest=onboarding(audience.segment_id),
    )
    journey_id = created["JourneyResponse"]["Id"]
    a = audience.addresses

    async def welcomed() -> None:
        assert len(smtp_server.messages) == 6

    await assert_eventually(welcomed)
    for endpoint_id in ("a2", "s1"):
        (received,) = smtp_server.to(a[endpoint_id])
        assert await record_engagement(
            state, received.message_id.strip("<>").split("@")[0], "_email.open", {}
        )
    handle = await run_to_end(time_skipping_env, audience.app_id, journey_id)
    await record_histories(
        time_skipping_env.client, [handle.id, f"{handle.id}/cohort/0"], "user_participants"
    )

    subjects = smtp_server.subjects_by_recipient()
    assert subjects == {
        a["a1"]: ["welcome", "tips"],
        a["a2"]: ["welcome", "tips"],
        a["b1"]: ["welcome", "nudge"],
        a["b2"]: ["welcome", "nudge"],
        a["s1"]: ["welcome", "tips"],
        a["s2"]: ["welcome", "nudge"],
    }
    rows = await participant_rows(state, journey_id)
    assert set(rows) == {"a1", "a2", "a3", "b1", "b2", "s1", "s2"}
    assert {e: rows[e]["user_id"] for e in rows} == {
        "a1": "ann",
        "a2": "ann",
        "a3": "ann",
        "b1": "bob",
        "b2": "bob",
        "s1": None,
        "s2": None,
    }
    # Ann's endpoints went down the same lane, her phone too (it got no email and no ledger row for one).
    assert rows["a1"]["lane"] == rows["a2"]["lane"] == rows["a3"]["lane"] == rows["s1"]["lane"]
    assert rows["b1"]["lane"] == rows["b2"]["lane"] != rows["a1"]["lane"]
    assert all(r["status"] == "completed" and r["cohort_no"] == 0 for r in rows.values())
    assert await message_count(state, journey_id, "a3") == 0
    # Metrics count endpoints: Ann's three, Bob's two and the two endpoints on their own.
    journey = await metrics(state, audience.app_id, journey_id)
    assert journey["ENDPOINT_ENTERED"] == "7" and journey["ENDPOINT_LEFT"] == "7"
    split = await metrics(state, audience.app_id, journey_id, "opened")
    assert (split["Branch_1"], split["Branch_2"]) == ("4", "3")
    assert (await metrics(state, audience.app_id, journey_id, "welcome"))["SUCCESS"] == "6"

    # `sojourn trace` reads the ledger of one endpoint of a user participant.
    async with state.db.connect() as conn:
        (entry,) = await trace_endpoint(conn, journey_id, "a1")
    assert entry.status == "completed" and sorted(entry.messages) == ["tips", "welcome"]
    assert entry.user_id == "ann"
    printed = render_trace(journey_id, "a1", [entry])
    assert "  as an endpoint of user ann: the user's endpoints move together" in printed
    assert "  tips (EMAIL)" in printed


async def test_an_attribute_of_one_endpoint_sends_the_whole_user_to_yes(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    vip = {"Attributes": {"plan": ["pro"], "vip": ["yes"]}}
    audience = await app_with_users(
        state,
        {"a1": "ann", "a2": "ann", "b1": "bob", "b2": "bob", "s1": None, "s2": None},
        extra={"a1": vip, "s1": vip},
    )
    is_vip = {"SegmentDimensions": {"Attributes": {"vip": {"AttributeType": "INCLUSIVE", "Values": ["yes"]}}}}
    request = {
        "Name": "vip-split",
        "State": "ACTIVE",
        "StartActivity": "vip",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "vip": {
                "ConditionalSplit": {
                    "Condition": {"Conditions": [is_vip], "Operator": "ALL"},
                    "TrueActivity": "tips",
                    "FalseActivity": "nudge",
                }
            },
            "tips": {"EMAIL": {"TemplateName": "tips"}},
            "nudge": {"EMAIL": {"TemplateName": "nudge"}},
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    await run_to_end(time_skipping_env, audience.app_id, created["JourneyResponse"]["Id"])
    a = audience.addresses
    assert smtp_server.subjects_by_recipient() == {
        a["a1"]: ["tips"],
        a["a2"]: ["tips"],
        a["b1"]: ["nudge"],
        a["b2"]: ["nudge"],
        a["s1"]: ["tips"],
        a["s2"]: ["nudge"],
    }


async def test_random_split_and_holdout_never_divide_a_user(
    stack: tuple[AppState, Worker], time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    members: dict[str, str | None] = {f"u{i}-{k}": f"user{i}" for i in range(150) for k in range(2)}
    members.update({f"solo{i}": None for i in range(60)})
    audience = await app_with_users(state, members, templates=())
    request = {
        "Name": "shares",
        "State": "ACTIVE",
        "StartActivity": "control",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "control": {"Holdout": {"Percentage": 30, "NextActivity": "coin"}},
            "coin": {
                "RandomSplit": {
                    "Branches": [
                        {"Percentage": 50, "NextActivity": "left"},
                        {"Percentage": 50, "NextActivity": "right"},
                    ]
                }
            },
            "left": {"Wait": {"WaitTime": {"WaitFor": "PT1H"}}},
            "right": {"Wait": {"WaitTime": {"WaitFor": "PT2H"}}},
        },
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    await run_to_end(time_skipping_env, audience.app_id, journey_id)
    rows = await participant_rows(state, journey_id)
    assert len(rows) == 360
    outcomes: dict[str, set[tuple[str, str]]] = {}
    for row in rows.values():
        if row["user_id"] is not None:
            outcomes.setdefault(row["user_id"], set()).add((row["lane"], row["status"]))
    assert len(outcomes) == 150
    assert all(len(seen) == 1 for seen in outcomes.values()), "a user's endpoints were split apart"
    # Every path was taken by some users (30% held out, the rest about half and half).
    taken = {next(iter(seen)) for seen in outcomes.values()}
    assert {status for _, status in taken} == {"held_out", "completed"}
    assert {lane for lane, status in taken if status == "completed"} == {"0.1", "0.2"}
    held_users = sum(1 for seen in outcomes.values() if next(iter(seen))[1] == "held_out")
    assert 20 <= held_users <= 70, held_users


async def test_an_event_from_one_endpoint_enters_the_user_once(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_users(state, {"a1": "ann", "a2": "ann", "s1": None, "s2": None})
    request = {
        "Name": "on-signup",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": on_event("signup", audience.segment_id),
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Limits": {"EndpointReentryCap": 1},
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]

    async def put_signups(*endpoint_ids: str) -> None:
        events = {
            e: {"Endpoint": {}, "Events": {"e": {"EventType": "signup", "Timestamp": "2026-11-23T10:00:00Z"}}}
            for e in endpoint_ids
        }
        await call(state, "PutEvents", ApplicationId=audience.app_id, EventsRequest={"BatchItem": events})

    await put_signups("a1", "s1")
    a = audience.addresses

    async def welcomed() -> None:
        assert sorted(smtp_server.subjects_by_recipient()) == sorted([a["a1"], a["a2"], a["s1"]])

    await assert_eventually(welcomed)
    rows = await participant_rows(state, journey_id)
    assert rows["a1"]["cohort_no"] == rows["a2"]["cohort_no"] and rows["a2"]["user_id"] == "ann"

    # Ann signs up again from both endpoints: she has used her one entry.
    await put_signups("a1", "a2")

    async def refused() -> None:
        m = await metrics(state, audience.app_id, journey_id)
        assert int(m.get("REENTRY_CAP_EXCEEDED", "0")) + int(m.get("ACTIVE_ENDPOINT_REJECTED", "0")) >= 1

    async with time_skipping_env.time_skipping_unlocked():
        await assert_eventually(refused)
    assert len(smtp_server.messages) == 3
    rows = await participant_rows(state, journey_id)
    assert {e: r["entry_no"] for e, r in rows.items()} == {"a1": 1, "a2": 1, "s1": 1}
    assert (await metrics(state, audience.app_id, journey_id))["ENDPOINT_ENTERED"] == "3"


async def test_local_time_enters_a_user_on_the_clock_of_its_endpoint_with_a_zone(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_users(
        state,
        {"a1": "ann", "a2": "ann", "b1": "bob", "b2": "bob", "s1": None},
        extra={
            "a1": {"Attributes": {"plan": ["pro"]}, "Demographic": {"Timezone": "Etc/GMT-1"}},
            "s1": {"Attributes": {"plan": ["pro"]}, "Demographic": {"Timezone": "Etc/GMT+1"}},
        },
    )
    wall = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    request = {
        "Name": "local",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "LocalTime": True,
        "Schedule": {"StartTime": wall.isoformat(), "EndTime": (wall + timedelta(days=1)).isoformat()},
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    await run_to_end(time_skipping_env, audience.app_id, journey_id)
    a = audience.addresses
    assert sorted(m.to for m in smtp_server.messages) == sorted([a["a1"], a["a2"], a["s1"]])
    rows = await participant_rows(state, journey_id)
    # Ann's endpoint without a zone enters with her, on her zone's clock (UTC+1 starts an hour early).
    assert {e: r["entered_at"] for e, r in rows.items()} == {
        "a1": wall - timedelta(hours=1),
        "a2": wall - timedelta(hours=1),
        "s1": wall + timedelta(hours=1),
    }
    assert rows["a1"]["cohort_no"] == rows["a2"]["cohort_no"] != rows["s1"]["cohort_no"]
    m = await metrics(state, audience.app_id, journey_id)
    # Bob has no zone on any endpoint: both are left out.
    assert m["ENDPOINT_ENTERED"] == "3" and m["ENDPOINT_MISSING_TIMEZONE"] == "2"


async def test_quiet_time_holds_a_user_on_one_clock(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    in_zone = {"Attributes": {"plan": ["pro"]}}
    audience = await app_with_users(
        state,
        {"a1": "ann", "a2": "ann", "b1": "bob", "b2": "bob", "s1": None},
        extra={
            # Ann's first endpoint is in quiet time now; her second has no zone of its own.
            "a1": {**in_zone, "Demographic": {"Timezone": "Etc/UTC"}},
            "b1": {**in_zone, "Demographic": {"Timezone": "Etc/GMT-12"}},
        },
        templates=("welcome",),
    )
    start, end, ends_at = quiet_window_around(datetime.now(UTC))
    request = welcome_journey(audience.segment_id, (start, end), wait_for_quiet_time=True)
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    await run_to_end(time_skipping_env, audience.app_id, journey_id)

    a = audience.addresses
    order = [m.to for m in smtp_server.messages]
    assert sorted(order) == sorted(a.values())
    assert set(order[-2:]) == {a["a1"], a["a2"]}, "Ann's endpoints were both held until quiet time ended"
    rows = await participant_rows(state, journey_id)
    held = f"0.q{int(ends_at.timestamp())}"
    assert {e: r["lane"] for e, r in rows.items()} == {
        "a1": held,
        "a2": held,
        "b1": "0",
        "b2": "0",
        "s1": "0",
    }
    welcome = await metrics(state, audience.app_id, journey_id, "welcome")
    assert welcome["SUCCESS"] == "5" and welcome["QUIET_TIME_WAIT"] == "2"
