"""Segment journeys over time: refresh (frequency and on update), re-entry on refresh, and the CLOSED state."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sojourn.api.errors import ConflictError, NotFoundError
from sojourn.api.state import AppState
from sojourn.engine import names
from tests.support.helpers import assert_eventually, record_histories, skip_time_until_done
from tests.support.seed import Audience, app_with_audience, call
from tests.support.smtp import SmtpSink


def welcome_journey(segment_id: str, **settings: Any) -> dict[str, Any]:
    return {
        "Name": "refreshing",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
        **settings,
    }


async def join_segment(state: AppState, audience: Audience, endpoint_id: str) -> str:
    address = f"{endpoint_id}@late.example.com"
    await call(
        state,
        "UpdateEndpoint",
        ApplicationId=audience.app_id,
        EndpointId=endpoint_id,
        EndpointRequest={"ChannelType": "EMAIL", "Address": address, "Attributes": {"plan": ["pro"]}},
    )
    return address


async def journey_state(state: AppState, app_id: str, journey_id: str) -> str:
    got = await call(state, "GetJourney", ApplicationId=app_id, JourneyId=journey_id)
    return str(got["JourneyResponse"]["State"])


async def start(state: AppState, audience: Audience, request: dict[str, Any]) -> str:
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    return str(created["JourneyResponse"]["Id"])


async def test_refresh_enrolls_new_members_once_each(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=3, templates=("welcome",))
    now = datetime.now(UTC)
    journey_id = await start(
        state,
        audience,
        welcome_journey(
            audience.segment_id,
            RefreshFrequency="PT1H",
            Schedule={
                "StartTime": now.isoformat(),
                "EndTime": (now + timedelta(hours=3, minutes=30)).isoformat(),
            },
        ),
    )

    async def first_three() -> None:
        assert len(smtp_server.messages) == 3

    await assert_eventually(first_three)
    assert await journey_state(state, audience.app_id, journey_id) == "ACTIVE", "refreshing: open to entrants"
    late = [await join_segment(state, audience, f"late{i}") for i in range(2)]
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    await record_histories(time_skipping_env.client, [handle.id, f"{handle.id}/cohort/1"], "segment_refresh")

    # Without EndpointReentryCap a refresh adds only members new to the journey: one welcome each.
    assert Counter(m.to for m in smtp_server.messages) == Counter(audience.addresses + late)
    metrics = await call(
        state, "GetJourneyExecutionMetrics", ApplicationId=audience.app_id, JourneyId=journey_id
    )
    assert metrics["JourneyExecutionMetricsResponse"]["Metrics"]["ENDPOINT_ENTERED"] == "5"
    await check_runs_and_kpis(state, audience, journey_id)


async def test_refresh_lets_members_enter_again_up_to_the_cap(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=4, templates=("welcome",))
    now = datetime.now(UTC)
    journey_id = await start(
        state,
        audience,
        welcome_journey(
            audience.segment_id,
            RefreshFrequency="PT1H",
            Limits={"EndpointReentryCap": 2},
            Schedule={
                "StartTime": now.isoformat(),
                "EndTime": (now + timedelta(hours=5, minutes=30)).isoformat(),
            },
        ),
    )
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    # Five refreshes, but each member enters at most twice.
    assert Counter(m.to for m in smtp_server.messages) == Counter(audience.addresses * 2)


async def test_an_updated_segment_is_read_again_at_once(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=2, templates=("welcome",))
    now = datetime.now(UTC)
    await start(
        state,
        audience,
        welcome_journey(
            audience.segment_id,
            RefreshOnSegmentUpdate=True,
            Schedule={"StartTime": now.isoformat(), "EndTime": (now + timedelta(days=7)).isoformat()},
        ),
    )

    async def delivered(n: int) -> None:
        assert len(smtp_server.messages) == n

    await assert_eventually(lambda: delivered(2))
    late = await join_segment(state, audience, "late")
    segment = await call(state, "GetSegment", ApplicationId=audience.app_id, SegmentId=audience.segment_id)
    body = {"Name": "pro", "Dimensions": segment["SegmentResponse"]["Dimensions"]}
    await call(
        state,
        "UpdateSegment",
        ApplicationId=audience.app_id,
        SegmentId=audience.segment_id,
        WriteSegmentRequest=body,
    )
    # No timer fires here (nothing skips time): only the update's signal can bring the new member in.
    await assert_eventually(lambda: delivered(3))
    assert smtp_server.messages[-1].to == late


async def test_a_journey_without_refresh_is_closed_once_its_members_entered(
    stack: tuple[AppState, Worker], time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=2, templates=("welcome",))
    request = welcome_journey(audience.segment_id, Schedule={"StartTime": datetime.now(UTC).isoformat()})
    request["Activities"] = {
        "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "later"}},
        "later": {"Wait": {"WaitTime": {"WaitFor": "P2D"}}},
    }
    journey_id = await start(state, audience, request)

    async def closed() -> None:
        assert await journey_state(state, audience.app_id, journey_id) == "CLOSED"

    await assert_eventually(closed)
    with pytest.raises(ConflictError, match="CLOSED: it takes no new entrants and cannot be paused"):
        await call(
            state,
            "UpdateJourneyState",
            ApplicationId=audience.app_id,
            JourneyId=journey_id,
            JourneyStateRequest={"State": "PAUSED"},
        )
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
    assert await journey_state(state, audience.app_id, journey_id) == "COMPLETED"


async def check_runs_and_kpis(state: AppState, audience: Audience, journey_id: str) -> None:
    """The first enrollment and the refresh that found new members are runs; KPIs count the welcomes."""
    ids = {"ApplicationId": audience.app_id, "JourneyId": journey_id}
    runs = (await call(state, "GetJourneyRuns", **ids))["JourneyRunsResponse"]["Item"]
    assert [(r["RunId"], r["Status"]) for r in runs] == [("run-1", "COMPLETED"), ("run-0", "COMPLETED")]
    entered = {}
    for run in runs:
        got = await call(state, "GetJourneyRunExecutionMetrics", RunId=run["RunId"], **ids)
        entered[run["RunId"]] = got["JourneyRunExecutionMetricsResponse"]["Metrics"]["ENDPOINT_ENTERED"]
        activity = await call(
            state,
            "GetJourneyRunExecutionActivityMetrics",
            RunId=run["RunId"],
            JourneyActivityId="welcome",
            **ids,
        )
        response = activity["JourneyRunExecutionActivityMetricsResponse"]
        assert response["ActivityType"] == "MESSAGE"
        assert response["Metrics"]["SUCCESS"] == entered[run["RunId"]]
    assert entered == {"run-0": "3", "run-1": "2"}
    with pytest.raises(NotFoundError, match="has no run 'nope'"):
        await call(state, "GetJourneyRunExecutionMetrics", RunId="nope", **ids)

    sent = await call(state, "GetJourneyDateRangeKpi", KpiName="journey-emails-sent", **ids)
    rows = sent["JourneyDateRangeKpiResponse"]["KpiResult"]["Rows"]
    assert rows == [{"GroupedBys": [], "Values": [{"Key": "EmailsSent", "Type": "Double", "Value": "5.0"}]}]
    grouped = await call(
        state, "GetJourneyDateRangeKpi", KpiName="emails-delivered-grouped-by-journey-activity", **ids
    )
    (row,) = grouped["JourneyDateRangeKpiResponse"]["KpiResult"]["Rows"]
    assert row["GroupedBys"][0]["Value"] == "welcome" and row["Values"][0]["Value"] == "5.0"
    with pytest.raises(NotFoundError, match="'journey-sms-sent' is not a journey KPI"):
        await call(state, "GetJourneyDateRangeKpi", KpiName="journey-sms-sent", **ids)


async def test_update_journey_gives_new_entrants_the_new_version_and_running_ones_keep_theirs(
    stack: tuple[AppState, Worker], smtp_server: SmtpSink, time_skipping_env: WorkflowEnvironment
) -> None:
    state, _ = stack
    audience = await app_with_audience(state, members=2, templates=("welcome", "tips", "nudge"))
    now = datetime.now(UTC)
    request = welcome_journey(
        audience.segment_id,
        RefreshOnSegmentUpdate=True,
        Schedule={"StartTime": now.isoformat(), "EndTime": (now + timedelta(days=5)).isoformat()},
    )
    request["Activities"] = {
        "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "later"}},
        "later": {"Wait": {"WaitTime": {"WaitFor": "P1D"}, "NextActivity": "last"}},
        "last": {"EMAIL": {"TemplateName": "tips"}},
    }
    journey_id = await start(state, audience, request)

    async def welcomed(n: int) -> None:
        assert sum(1 for m in smtp_server.messages if m.subject == "welcome") == n

    await assert_eventually(lambda: welcomed(2))
    # Version 2 ends with "nudge"; the two participants waiting a day entered with version 1.
    request["Activities"]["last"] = {"EMAIL": {"TemplateName": "nudge"}}
    updated = await call(
        state,
        "UpdateJourney",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        WriteJourneyRequest=request,
    )
    assert updated["JourneyResponse"]["State"] == "ACTIVE"
    late = await join_segment(state, audience, "late")
    segment = await call(state, "GetSegment", ApplicationId=audience.app_id, SegmentId=audience.segment_id)
    await call(
        state,
        "UpdateSegment",
        ApplicationId=audience.app_id,
        SegmentId=audience.segment_id,
        WriteSegmentRequest={"Name": "pro", "Dimensions": segment["SegmentResponse"]["Dimensions"]},
    )
    await assert_eventually(lambda: welcomed(3))
    handle = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"

    subjects = smtp_server.subjects_by_recipient()
    for address in audience.addresses:
        assert subjects[address] == ["welcome", "tips"], "running participants finish on their version"
    assert subjects[late] == ["welcome", "nudge"], "a new entrant gets the new version"
