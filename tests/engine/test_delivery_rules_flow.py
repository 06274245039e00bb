"""Delivery rules in running journeys: quiet time in each participant's zone, and caps shared across journeys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.state import AppState
from sojourn.engine import names
from tests.support.helpers import record_histories, skip_time_until_done
from tests.support.seed import Audience, app_with_audience, call, call_sesv2
from tests.support.smtp import SmtpSink

# ep0 lives on UTC (quiet now), ep1 twelve hours ahead (its afternoon or night, outside the window), ep2 has
# no time zone (quiet time does not apply to it).
ZONES = {"ep0": "Etc/UTC", "ep1": "Etc/GMT-12"}


async def welcome_metrics(state: AppState, app_id: str, journey_id: str) -> dict[str, str]:
    """GetJourneyExecutionActivityMetrics of the journey's welcome activity."""
    got = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=app_id,
        JourneyId=journey_id,
        JourneyActivityId="welcome",
    )
    metrics: dict[str, str] = got["JourneyExecutionActivityMetricsResponse"]["Metrics"]
    return metrics


def quiet_window_around(now: datetime) -> tuple[str, str, datetime]:
    """A quiet time from an hour before ``now`` to two hours after (UTC wall clock), and when it ends."""
    start = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    end = (now + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    return start.strftime("%H:%M"), end.strftime("%H:%M"), end


async def audience_in_zones(state: AppState) -> Audience:
    audience = await app_with_audience(state, members=3, templates=("welcome",))
    for endpoint_id, zone in ZONES.items():
        await call(
            state,
            "UpdateEndpoint",
            ApplicationId=audience.app_id,
            EndpointId=endpoint_id,
            EndpointRequest={"Demographic": {"Timezone": zone}},
        )
    return audience


def welcome_journey(
    segment_id: str, quiet: tuple[str, str], *, wait_for_quiet_time: bool
) -> dict[str, object]:
    return {
        "Name": "quiet",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "QuietTime": {"Start": quiet[0], "End": quiet[1]},
        "WaitForQuietTime": wait_for_quiet_time,
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
    }


async def run_to_end(
    state: AppState, env: WorkflowEnvironment, audience: Audience, request: dict[str, object]
) -> str:
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id: str = created["JourneyResponse"]["Id"]
    handle = env.client.get_workflow_handle(names.journey_workflow_id(audience.app_id, journey_id))
    assert await skip_time_until_done(env, handle) == "COMPLETED"
    if request.get("WaitForQuietTime"):
        await record_histories(env.client, [handle.id, f"{handle.id}/cohort/0"], "quiet_time_hold")
    return journey_id


async def test_quiet_time_holds_each_participant_until_it_ends_where_they_are(
    stack: tuple[AppState, Worker],
    db: AsyncEngine,
    smtp_server: SmtpSink,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    state, _ = stack
    audience = await audience_in_zones(state)
    start, end, ends_at = quiet_window_around(datetime.now(UTC))
    journey_id = await run_to_end(
        state,
        time_skipping_env,
        audience,
        welcome_journey(audience.segment_id, (start, end), wait_for_quiet_time=True),
    )

    # Everyone got the welcome; the UTC participant last, after quiet time ended.
    order = [m.to for m in smtp_server.messages]
    assert sorted(order) == sorted(audience.addresses)
    assert order[-1] == audience.addresses[0]
    async with db.connect() as conn:
        lanes = dict(
            (
                await conn.execute(
                    text("SELECT endpoint_id, lane FROM participants WHERE journey_id = :j"),
                    {"j": journey_id},
                )
            ).all()
        )
    assert lanes["ep1"] == lanes["ep2"] == "0"
    assert lanes["ep0"] == f"0.q{int(ends_at.timestamp())}", "held until the wall-clock end of quiet time"
    got = await welcome_metrics(state, audience.app_id, journey_id)
    assert got["SUCCESS"] == "3" and got["QUIET_TIME_WAIT"] == "1"


async def test_quiet_time_drops_when_not_waiting(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await audience_in_zones(state)
    start, end, _ = quiet_window_around(datetime.now(UTC))
    journey_id = await run_to_end(
        state,
        time_skipping_env,
        audience,
        welcome_journey(audience.segment_id, (start, end), wait_for_quiet_time=False),
    )
    assert sorted(m.to for m in smtp_server.messages) == sorted(audience.addresses[1:])
    got = await welcome_metrics(state, audience.app_id, journey_id)
    assert got["SUCCESS"] == "2" and got["QUIET_TIME"] == "1"


async def test_a_timeframe_cap_holds_across_journeys_running_at_once(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=40, templates=("welcome",))
    await call(
        state,
        "UpdateApplicationSettings",
        ApplicationId=audience.app_id,
        WriteApplicationSettingsRequest={"JourneyLimits": {"TimeframeCap": {"Cap": 1, "Days": 7}}},
    )
    journeys = []
    for name in ("first", "second", "third"):
        request = welcome_journey(audience.segment_id, ("00:00", "00:00"), wait_for_quiet_time=False)
        request.pop("QuietTime")
        request["Name"] = name
        created = await call(
            state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request
        )
        journeys.append(created["JourneyResponse"]["Id"])
    handles = [
        time_skipping_env.client.get_workflow_handle(names.journey_workflow_id(audience.app_id, j))
        for j in journeys
    ]
    for handle in handles:
        assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"

    received = smtp_server.subjects_by_recipient()
    assert received == {address: ["welcome"] for address in audience.addresses}, (
        "one email each, all journeys together"
    )
    capped = 0
    for journey_id in journeys:
        got = await welcome_metrics(state, audience.app_id, journey_id)
        capped += int(got.get("TIMEFRAME_CAP", "0"))
    assert capped == 2 * len(audience.addresses)


async def test_messages_per_second_spreads_the_sends(
    stack: tuple[AppState, Worker],
    db: AsyncEngine,
    smtp_server: SmtpSink,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=12, templates=("welcome",))
    request = welcome_journey(audience.segment_id, ("00:00", "00:00"), wait_for_quiet_time=False)
    request.pop("QuietTime")
    request["Limits"] = {"MessagesPerSecond": 4}
    journey_id = await run_to_end(state, time_skipping_env, audience, request)
    assert sorted(m.to for m in smtp_server.messages) == sorted(audience.addresses)
    async with db.connect() as conn:
        first, last = (
            await conn.execute(
                text("SELECT min(sent_at), max(sent_at) FROM messages WHERE journey_id = :j"),
                {"j": journey_id},
            )
        ).one()
    # Three batches of four at 4/s: the last batch goes at least two seconds after the first.
    assert last - first >= timedelta(seconds=1.9)


async def test_local_time_enters_each_zone_on_its_own_clock(
    stack: tuple[AppState, Worker],
    db: AsyncEngine,
    smtp_server: SmtpSink,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=3, templates=("welcome",))
    zones = {"ep0": "Etc/GMT-1", "ep1": "Etc/GMT+1"}  # UTC+1 and UTC-1; ep2 has none and is left out
    for endpoint_id, zone in zones.items():
        await call(
            state,
            "UpdateEndpoint",
            ApplicationId=audience.app_id,
            EndpointId=endpoint_id,
            EndpointRequest={"Demographic": {"Timezone": zone}},
        )
    wall = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    request = welcome_journey(audience.segment_id, ("00:00", "00:00"), wait_for_quiet_time=False)
    request.pop("QuietTime")
    request["LocalTime"] = True
    request["Schedule"] = {"StartTime": wall.isoformat(), "EndTime": (wall + timedelta(days=1)).isoformat()}
    journey_id = await run_to_end(state, time_skipping_env, audience, request)

    assert sorted(m.to for m in smtp_server.messages) == sorted(audience.addresses[:2])
    async with db.connect() as conn:
        entered = dict(
            (
                await conn.execute(
                    text("SELECT endpoint_id, entered_at FROM participants WHERE journey_id = :j"),
                    {"j": journey_id},
                )
            ).all()
        )
    assert entered == {"ep0": wall - timedelta(hours=1), "ep1": wall + timedelta(hours=1)}
    async with db.connect() as conn:
        claimed = dict(
            (
                await conn.execute(
                    text("SELECT endpoint_id, created_at FROM messages WHERE journey_id = :j"),
                    {"j": journey_id},
                )
            ).all()
        )
    # Claimed on the journey's clock: each cohort waited for its own zone's start.
    assert all(entered[e] <= claimed[e] < entered[e] + timedelta(minutes=5) for e in entered), claimed
    metrics = await call(
        state, "GetJourneyExecutionMetrics", ApplicationId=audience.app_id, JourneyId=journey_id
    )
    got = metrics["JourneyExecutionMetricsResponse"]["Metrics"]
    assert got["ENDPOINT_ENTERED"] == "2" and got["ENDPOINT_MISSING_TIMEZONE"] == "1"


async def test_journey_list_mail_skips_unsubscribed_and_carries_list_unsubscribe(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=3, templates=())
    list_name = f"news{uuid.uuid4().hex[:8]}"
    await call_sesv2(
        state,
        "CreateContactList",
        ContactListName=list_name,
        Topics=[
            {"TopicName": "weekly", "DisplayName": "Weekly", "DefaultSubscriptionStatus": "OPT_IN"},
        ],
    )
    first, second, third = audience.addresses
    await call_sesv2(
        state,
        "CreateContact",
        ContactListName=list_name,
        EmailAddress=second,
        TopicPreferences=[{"TopicName": "weekly", "SubscriptionStatus": "OPT_OUT"}],
    )
    await call_sesv2(
        state, "CreateContact", ContactListName=list_name, EmailAddress=third, UnsubscribeAll=True
    )
    template = f"weekly{uuid.uuid4().hex[:8]}"
    await call(
        state,
        "CreateEmailTemplate",
        TemplateName=template,
        EmailTemplateRequest={
            "Subject": "This week",
            "HtmlPart": '<p>News</p><a href="{{amazonSESUnsubscribeUrl}}">Preferences</a>',
            "TextPart": "News. Preferences: {{amazonSESUnsubscribeUrl}}",
            "Headers": [
                {
                    "Name": "X-SES-LIST-MANAGEMENT-OPTIONS",
                    "Value": f"contactListName={list_name}; topicName=weekly",
                },
                {"Name": "X-Campaign", "Value": "weekly-{{User.UserAttributes.FirstName}}"},
            ],
        },
    )
    request = welcome_journey(audience.segment_id, ("00:00", "00:00"), wait_for_quiet_time=False)
    request.pop("QuietTime")
    request["Activities"] = {"welcome": {"EMAIL": {"TemplateName": template}}}
    journey_id = await run_to_end(state, time_skipping_env, audience, request)

    (received,) = smtp_server.messages
    assert received.to == first, (
        "the contact who opted out of the topic and the one unsubscribed from all get nothing"
    )
    headers = received.message
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<http") and "/u/" in headers["List-Unsubscribe"]
    assert headers["X-Campaign"] == "weekly-Person0"
    assert headers["X-SES-LIST-MANAGEMENT-OPTIONS"] is None
    assert "/preferences/" in received.text() and "{{" not in received.text()
    assert 'href="http' in received.html() and "/preferences/" in received.html()
    got = await welcome_metrics(state, audience.app_id, journey_id)
    # Opted out of the topic: skipped for this list; unsubscribed from all: on the suppression list for every send.
    assert got["SUCCESS"] == "1" and got["UNSUBSCRIBED"] == "1" and got["SUPPRESSED"] == "1"
