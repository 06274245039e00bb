"""Campaigns on the time-skipping server with the real PostgreSQL and a real SMTP server.

Months of schedule pass in seconds; every assertion is on what reached the SMTP server, the message ledger
and GetCampaignActivities.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.campaigns import (
    activities,
    campaign_messages,
    create_campaign,
    email_campaign,
    event_schedule,
    iso,
    status_counts,
    zoned_audience,
)
from tests.support.helpers import assert_eventually, record_histories, skip_time_until_done
from tests.support.seed import call
from tests.support.smtp import SmtpSink

Stack = tuple[AppState, Worker]


async def run_to_end(env: WorkflowEnvironment, app_id: str, campaign_id: str) -> Any:
    handle = env.client.get_workflow_handle(names.campaign_workflow_id(app_id, campaign_id))
    return await skip_time_until_done(env, handle)


SCHEDULES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "daily 09:00 New York across the March change": (
        {
            "StartTime": "2027-03-12T09:00:00",
            "EndTime": "2027-03-16T09:00:00",
            "Timezone": "America/New_York",
            "Frequency": "DAILY",
        },
        [
            "2027-03-12T14:00:00.000Z",
            "2027-03-13T14:00:00.000Z",
            "2027-03-14T13:00:00.000Z",
            "2027-03-15T13:00:00.000Z",
            "2027-03-16T13:00:00.000Z",
        ],
    ),
    "monthly on the 31st across month ends": (
        {"StartTime": "2027-01-31T10:00:00Z", "EndTime": "2027-04-30T10:00:00Z", "Frequency": "MONTHLY"},
        [
            "2027-01-31T10:00:00.000Z",
            "2027-02-28T10:00:00.000Z",
            "2027-03-31T10:00:00.000Z",
            "2027-04-30T10:00:00.000Z",
        ],
    ),
    "hourly": (
        {"StartTime": "2027-05-01T22:30:00Z", "EndTime": "2027-05-02T00:30:00Z", "Frequency": "HOURLY"},
        ["2027-05-01T22:30:00.000Z", "2027-05-01T23:30:00.000Z", "2027-05-02T00:30:00.000Z"],
    ),
    "weekly": (
        {"StartTime": "2027-06-07T08:00:00Z", "EndTime": "2027-06-22T00:00:00Z", "Frequency": "WEEKLY"},
        ["2027-06-07T08:00:00.000Z", "2027-06-14T08:00:00.000Z", "2027-06-21T08:00:00.000Z"],
    ),
    "once at its start time": (
        {"StartTime": "2027-08-01T12:34:00Z", "Frequency": "ONCE"},
        ["2027-08-01T12:34:00.000Z"],
    ),
}


@pytest.mark.parametrize("case", list(SCHEDULES))
async def test_each_frequency_runs_at_its_times(
    case: str, stack: Stack, smtp_server: SmtpSink, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    schedule, expected = SCHEDULES[case]
    audience = await zoned_audience(state, [None, None])
    campaign_id = await create_campaign(state, audience.app_id, email_campaign(audience.segment_id, schedule))

    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"

    runs = await activities(state, audience.app_id, campaign_id)
    assert [r["ScheduledStart"] for r in runs] == expected
    assert all(r["State"] == "COMPLETED" and r["Result"] == "SUCCESS" for r in runs)
    assert [r["SuccessfulEndpointCount"] for r in runs] == [2] * len(expected)
    rows = await campaign_messages(db, campaign_id)
    # Messages are stamped with the instant their run went out (the workflow's clock).
    assert sorted({iso(r.created_at.replace(microsecond=0)) for r in rows}) == [
        e.replace(".000", "") for e in expected
    ]
    subjects = smtp_server.subjects_by_recipient()
    assert {a: subjects[a] for a in audience.addresses.values()} == {
        a: ["welcome"] * len(expected) for a in audience.addresses.values()
    }
    got = await call(state, "GetCampaign", ApplicationId=audience.app_id, CampaignId=campaign_id)
    assert got["CampaignResponse"]["State"]["CampaignStatus"] == "COMPLETED"


async def test_local_time_delivers_at_the_wall_time_in_each_endpoints_zone(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await zoned_audience(state, ["Asia/Tokyo", "America/New_York", None, "Not/AZone"])
    schedule = {"StartTime": "2027-07-01T09:00:00", "Timezone": "UTC", "IsLocalTime": True}
    campaign_id = await create_campaign(state, audience.app_id, email_campaign(audience.segment_id, schedule))

    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"

    sent_at = {
        r.endpoint_id: iso(r.created_at.replace(microsecond=0))
        for r in await campaign_messages(db, campaign_id)
    }
    assert sent_at == {
        "ep0": "2027-07-01T00:00:00Z",  # 09:00 in Tokyo
        "ep1": "2027-07-01T13:00:00Z",  # 09:00 in New York (EDT)
        "ep2": "2027-07-01T09:00:00Z",  # no zone: the schedule's zone
        "ep3": "2027-07-01T09:00:00Z",  # an unknown zone: the schedule's zone
    }
    (run,) = await activities(state, audience.app_id, campaign_id)
    assert run["TimezonesTotalCount"] == 3 and run["TimezonesCompletedCount"] == 3
    assert run["SuccessfulEndpointCount"] == 4


async def test_quiet_time_drops_messages_whose_local_send_time_is_quiet(
    stack: Stack, smtp_server: SmtpSink, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await zoned_audience(state, ["Europe/London", "Asia/Tokyo", None])
    schedule = {"StartTime": "2027-01-10T23:00:00Z", "QuietTime": {"Start": "22:00", "End": "07:00"}}
    campaign_id = await create_campaign(state, audience.app_id, email_campaign(audience.segment_id, schedule))

    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"

    rows = {r.endpoint_id: (r.status, r.status_message) for r in await campaign_messages(db, campaign_id)}
    # 23:00 in London is quiet; 08:00 in Tokyo is not; quiet time needs a known zone.
    assert rows == {"ep0": ("skipped", "QUIET_TIME"), "ep1": ("sent", None), "ep2": ("sent", None)}
    assert not smtp_server.to(audience.addresses["ep0"])
    (run,) = await activities(state, audience.app_id, campaign_id)
    assert run["ExecutionMetrics"]["QUIET_TIME"] == "1" and run["SuccessfulEndpointCount"] == 2


async def test_app_quiet_time_applies_when_the_campaign_sets_none(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await zoned_audience(state, ["UTC"])
    await call(
        state,
        "UpdateApplicationSettings",
        ApplicationId=audience.app_id,
        WriteApplicationSettingsRequest={"QuietTime": {"Start": "12:00", "End": "13:00"}},
    )
    schedule = {"StartTime": "2027-01-10T12:30:00Z"}
    campaign_id = await create_campaign(state, audience.app_id, email_campaign(audience.segment_id, schedule))
    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"
    assert status_counts(await campaign_messages(db, campaign_id)) == Counter({"QUIET_TIME": 1})


async def test_daily_cap_holds_across_hourly_runs(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await zoned_audience(state, [None, None])
    schedule = {"StartTime": "2027-02-01T00:00:00Z", "EndTime": "2027-02-02T02:00:00Z", "Frequency": "HOURLY"}
    body = email_campaign(audience.segment_id, schedule, Limits={"Daily": 2})
    campaign_id = await create_campaign(state, audience.app_id, body)
    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"

    rows = await campaign_messages(db, campaign_id)
    sent = [r for r in rows if r.status == "sent"]
    # 27 hourly runs: 2 in the first 24 hours, 2 more once the first ones are 24 hours old (the window is
    # the 24 hours before the send, a message exactly 24 hours old no longer counts).
    assert Counter(r.endpoint_id for r in sent) == {"ep0": 4, "ep1": 4}
    assert [iso(r.created_at) for r in sent if r.endpoint_id == "ep0"] == [
        "2027-02-01T00:00:00Z",
        "2027-02-01T01:00:00Z",
        "2027-02-02T00:00:00Z",
        "2027-02-02T01:00:00Z",
    ]
    assert status_counts(rows)["DAILY_CAP"] == 2 * (27 - 4)


async def test_total_cap_counts_every_run_and_project_daily_counts_every_campaign(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await zoned_audience(state, [None])
    schedule = {"StartTime": "2027-02-01T09:00:00Z", "EndTime": "2027-02-05T09:00:00Z", "Frequency": "DAILY"}
    capped = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, schedule, Limits={"Total": 2})
    )
    assert await run_to_end(time_skipping_env, audience.app_id, capped) == "COMPLETED"
    assert status_counts(await campaign_messages(db, capped)) == Counter({"sent": 2, "TOTAL_CAP": 3})

    # The project's Daily (1) counts messages of every campaign: a second campaign the same day gets nothing.
    await call(
        state,
        "UpdateApplicationSettings",
        ApplicationId=audience.app_id,
        WriteApplicationSettingsRequest={"Limits": {"Daily": 1}},
    )
    first = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, {"StartTime": "2027-03-01T09:00:00Z"})
    )
    second = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, {"StartTime": "2027-03-01T10:00:00Z"})
    )
    assert await run_to_end(time_skipping_env, audience.app_id, second) == "COMPLETED"
    assert await run_to_end(time_skipping_env, audience.app_id, first) == "COMPLETED"
    # Whichever runs second (time skipping may start them in either order) is capped.
    both = status_counts(await campaign_messages(db, first)) + status_counts(
        await campaign_messages(db, second)
    )
    assert both == Counter({"sent": 1, "DAILY_CAP": 1})


async def test_ab_treatments_and_holdout_get_their_shares(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    state, _ = stack
    n = 2000
    audience = await zoned_audience(state, [None] * n)
    body = email_campaign(
        audience.segment_id,
        {"StartTime": "2027-04-01T09:00:00Z"},
        HoldoutPercent=10,
        AdditionalTreatments=[
            {
                "SizePercent": 30,
                "TemplateConfiguration": {"EmailTemplate": {"Name": "tips"}},
                "TreatmentName": "B",
            },
            {
                "SizePercent": 20,
                "MessageConfiguration": {
                    "EmailMessage": {"Title": "C {{User.UserAttributes.FirstName}}", "HtmlBody": "<p>C</p>"}
                },
                "TemplateConfiguration": {},
            },
        ],
    )
    campaign_id = await create_campaign(state, audience.app_id, body)
    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"

    rows = await campaign_messages(db, campaign_id)
    per_treatment = Counter(r.activity_id.rsplit("-t", 1)[1] for r in rows if r.status == "sent")
    held_out = n - sum(per_treatment.values())
    for share, count in (
        (0.10, held_out),
        (0.40, per_treatment["0"]),
        (0.30, per_treatment["1"]),
        (0.20, per_treatment["2"]),
    ):
        sigma = (n * share * (1 - share)) ** 0.5
        assert abs(count - n * share) <= 4 * sigma, (share, count)
    runs = await activities(state, audience.app_id, campaign_id)
    assert {r["TreatmentId"]: r["SuccessfulEndpointCount"] for r in runs} == {
        "0": per_treatment["0"],
        "1": per_treatment["1"],
        "2": per_treatment["2"],
    }
    default = next(r for r in runs if r["TreatmentId"] == "0")
    assert default["ExecutionMetrics"]["HOLDOUT"] == str(held_out)
    subjects = Counter(m.subject.split(" ")[0] for m in smtp_server.messages)
    assert subjects == {"welcome": per_treatment["0"], "tips": per_treatment["1"], "C": per_treatment["2"]}


async def test_pause_skips_runs_and_resume_continues_with_the_next_future_run(
    stack: Stack, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await zoned_audience(state, [None])
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    schedule = {"StartTime": iso(start), "EndTime": iso(start + timedelta(days=3)), "Frequency": "DAILY"}
    campaign_id = await create_campaign(state, audience.app_id, email_campaign(audience.segment_id, schedule))
    paused = await call(
        state,
        "UpdateCampaign",
        ApplicationId=audience.app_id,
        CampaignId=campaign_id,
        WriteCampaignRequest={"IsPaused": True},
    )
    assert paused["CampaignResponse"]["State"]["CampaignStatus"] == "PAUSED"
    await time_skipping_env.sleep(timedelta(hours=26))
    assert await activities(state, audience.app_id, campaign_id) == []

    await call(
        state,
        "UpdateCampaign",
        ApplicationId=audience.app_id,
        CampaignId=campaign_id,
        WriteCampaignRequest={"IsPaused": False},
    )
    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"
    runs = await activities(state, audience.app_id, campaign_id)
    assert [r["ScheduledStart"] for r in runs] == [
        iso(start + timedelta(days=2)).replace("Z", ".000Z"),
        iso(start + timedelta(days=3)).replace("Z", ".000Z"),
    ]


async def test_an_update_applies_from_the_next_run(
    stack: Stack, smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await zoned_audience(state, [None])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    schedule = {"StartTime": iso(start), "EndTime": iso(start + timedelta(days=2)), "Frequency": "DAILY"}
    campaign_id = await create_campaign(state, audience.app_id, email_campaign(audience.segment_id, schedule))

    async def first_run_done() -> None:
        runs = await activities(state, audience.app_id, campaign_id)
        assert [r["State"] for r in runs] == ["COMPLETED"]

    await assert_eventually(first_run_done)
    updated = await call(
        state,
        "UpdateCampaign",
        ApplicationId=audience.app_id,
        CampaignId=campaign_id,
        WriteCampaignRequest={"TemplateConfiguration": {"EmailTemplate": {"Name": "tips"}}},
    )
    assert updated["CampaignResponse"]["Version"] == 2
    assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"
    (address,) = audience.addresses.values()
    assert [m.subject for m in smtp_server.to(address)] == ["welcome", "tips", "tips"]
    runs = await activities(state, audience.app_id, campaign_id)
    assert [r["Id"] for r in runs] == ["v1-0-t0", "v2-1-t0", "v2-2-t0"]


async def test_an_event_campaign_sends_to_segment_members_whose_events_match(
    stack: Stack, smtp_server: SmtpSink
) -> None:
    state, _ = stack
    outsider = {
        "Id": "outsider",
        "ChannelType": "EMAIL",
        "Address": "out@example.com",
        "Attributes": {"plan": ["free"]},
    }
    audience = await zoned_audience(state, [None, None, None], extra=[outsider])
    now = datetime.now(UTC)
    schedule = event_schedule("purchase", now)
    campaign_id = await create_campaign(state, audience.app_id, email_campaign(audience.segment_id, schedule))

    def event(kind: str, at: datetime) -> dict[str, Any]:
        return {"Events": {kind + at.isoformat(): {"EventType": kind, "Timestamp": iso(at)}}}

    await call(
        state,
        "PutEvents",
        ApplicationId=audience.app_id,
        EventsRequest={
            "BatchItem": {
                "ep0": event("purchase", now),
                "ep1": event("purchase", now - timedelta(minutes=10)),  # after StartTime, but too old to send
                "ep2": event("purchase", now - timedelta(hours=1)),  # before StartTime: does not trigger
                "outsider": event("purchase", now),  # not in the segment
            }
        },
    )
    await call(
        state,
        "PutEvents",
        ApplicationId=audience.app_id,
        EventsRequest={"BatchItem": {"ep1": event("signup", now)}},
    )

    async def sent() -> None:
        assert [m.subject for m in smtp_server.to(audience.addresses["ep0"])] == ["welcome"]
        runs = await activities(state, audience.app_id, campaign_id)
        assert runs and runs[0]["State"] == "COMPLETED"

    await assert_eventually(sent)
    assert not smtp_server.to(audience.addresses["ep1"]) and not smtp_server.to("out@example.com")
    assert not smtp_server.to(audience.addresses["ep2"])
    (run,) = await activities(state, audience.app_id, campaign_id)
    assert (
        run["ExecutionMetrics"]["EVENT_EXPIRED"] == "1" and run["ExecutionMetrics"]["NOT_IN_SEGMENT"] == "1"
    )
    got = await call(state, "GetCampaign", ApplicationId=audience.app_id, CampaignId=campaign_id)
    assert got["CampaignResponse"]["State"]["CampaignStatus"] == "EXECUTING"
    await call(state, "DeleteCampaign", ApplicationId=audience.app_id, CampaignId=campaign_id)


async def test_a_pinned_segment_version_is_used_and_a_deleted_segment_fails_the_campaign(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    free = {
        "Id": "free0",
        "ChannelType": "EMAIL",
        "Address": "free@example.com",
        "Attributes": {"plan": ["free"]},
    }
    audience = await zoned_audience(state, [None], extra=[free])
    await call(
        state,
        "UpdateSegment",
        ApplicationId=audience.app_id,
        SegmentId=audience.segment_id,
        WriteSegmentRequest={
            "Dimensions": {"Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["free"]}}}
        },
    )
    pinned = await create_campaign(
        state,
        audience.app_id,
        email_campaign(audience.segment_id, {"StartTime": "2027-09-01T09:00:00Z"}, SegmentVersion=1),
    )
    latest = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, {"StartTime": "2027-09-01T09:00:00Z"})
    )
    assert await run_to_end(time_skipping_env, audience.app_id, pinned) == "COMPLETED"
    assert await run_to_end(time_skipping_env, audience.app_id, latest) == "COMPLETED"
    assert [r.endpoint_id for r in await campaign_messages(db, pinned)] == ["ep0"]
    assert [r.endpoint_id for r in await campaign_messages(db, latest)] == ["free0"]

    doomed = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, {"StartTime": "2027-10-01T09:00:00Z"})
    )
    await call(state, "DeleteSegment", ApplicationId=audience.app_id, SegmentId=audience.segment_id)
    assert await run_to_end(time_skipping_env, audience.app_id, doomed) == "DELETED"
    got = await call(state, "GetCampaign", ApplicationId=audience.app_id, CampaignId=doomed)
    assert got["CampaignResponse"]["State"]["CampaignStatus"] == "DELETED"
    (run,) = await activities(state, audience.app_id, doomed)
    assert run["Result"] == "FAIL" and run["ExecutionMetrics"]["SEGMENT_DELETED"] == "1"


async def test_a_run_is_sent_in_parts_for_two_worker_processes(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}",
        temporal_search_attributes=False,
        smtp_url=smtp_server.url,
        worker_processes=2,
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(time_skipping_env.client)
    # One worker here (the SDK allows one per task queue per process): it runs both parts at once, as two
    # worker processes polling the queue would share them.
    worker = build_worker(
        time_skipping_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp_server.url))
    )
    async with worker:
        audience = await zoned_audience(state, [None] * 200)
        campaign_id = await create_campaign(
            state,
            audience.app_id,
            email_campaign(audience.segment_id, {"StartTime": "2027-04-01T09:00:00Z"}, HoldoutPercent=10),
        )
        assert await run_to_end(time_skipping_env, audience.app_id, campaign_id) == "COMPLETED"
        workflow_id = names.campaign_workflow_id(audience.app_id, campaign_id)
        history = await time_skipping_env.client.get_workflow_handle(workflow_id).fetch_history()
        await record_histories(time_skipping_env.client, [workflow_id], "run_in_parts")

    sends = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "send_campaign_slice"
    ]
    assert len(sends) == 2, "one activity per part"
    rows = await campaign_messages(db, campaign_id)
    sent = [r.endpoint_id for r in rows if r.status == "sent"]
    assert len(sent) == len(set(sent)) == len(smtp_server.messages) == len(rows)
    runs = await activities(state, audience.app_id, campaign_id)
    (run,) = runs
    assert run["SuccessfulEndpointCount"] == len(sent)
    assert int(run["ExecutionMetrics"]["HOLDOUT"]) == 200 - len(sent) > 0
