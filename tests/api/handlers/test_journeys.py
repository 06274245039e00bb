"""Journey definitions that cannot run are refused with a message that says what to fix, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.errors import BadRequestError, ConflictError, NotFoundError
from sojourn.api.state import AppState
from sojourn.settings import Settings
from tests.support.seed import Audience, app_with_audience, call, onboarding, set_state


@pytest.fixture
async def setup(db: AsyncEngine) -> tuple[AppState, Audience]:
    state = AppState(db=db, settings=Settings())
    return state, await app_with_audience(state, members=1)


def draft(segment_id: str, **changes: Any) -> dict[str, Any]:
    body = {**onboarding(segment_id), "State": "DRAFT", **changes}
    return {k: v for k, v in body.items() if v is not None}


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "unknown next activity": (
        {
            "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "nowhere"}}},
            "StartActivity": "welcome",
        },
        "activity 'welcome' leads to 'nowhere', which is not an activity of this journey",
    ),
    "cycle without a wait": (
        {
            "Activities": {
                "a": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "b"}},
                "b": {"EMAIL": {"TemplateName": "tips", "NextActivity": "a"}},
            },
            "StartActivity": "a",
        },
        "activities a -> b -> a form a loop with no Wait in it",
    ),
    "missing template": (
        {"Activities": {"a": {"EMAIL": {"TemplateName": "no_such_template"}}}, "StartActivity": "a"},
        "email template 'no_such_template' does not exist",
    ),
    "unknown start activity": (
        {"StartActivity": "zzz"},
        "StartActivity 'zzz' is not one of the journey's activities",
    ),
    "bad wait duration": (
        {"Activities": {"a": {"Wait": {"WaitTime": {"WaitFor": "two days"}}}}, "StartActivity": "a"},
        "is not an ISO-8601 duration",
    ),
    "unknown segment": (
        {"StartCondition": {"SegmentStartCondition": {"SegmentId": "nope"}}},
        "StartCondition.SegmentStartCondition: segment nope not found",
    ),
    "name with spaces": ({"Name": "my journey"}, "Name must be 1-150 characters without spaces"),
    "local time for an event-triggered journey": (
        {
            "LocalTime": True,
            "StartCondition": {
                "EventStartCondition": {"EventFilter": {"FilterType": "ENDPOINT", "Dimensions": {}}}
            },
        },
        "LocalTime applies to journeys that start from a segment",
    ),
    "local time without a start": ({"LocalTime": True, "Schedule": {}}, "LocalTime needs Schedule.StartTime"),
    "quiet time without an end": ({"QuietTime": {"Start": "22:00"}}, "QuietTime needs both Start and End"),
    "quiet time not a clock time": (
        {"QuietTime": {"Start": "10pm", "End": "07:00"}},
        "'10pm' is not a time of day HH:MM",
    ),
    "open hours without a sending schedule": (
        {"OpenHours": {"EMAIL": {"MONDAY": [{"StartTime": "09:00", "EndTime": "17:00"}]}}},
        "OpenHours and ClosedDays apply only with SendingSchedule: true",
    ),
    "open hours on an unknown day": (
        {
            "SendingSchedule": True,
            "OpenHours": {"EMAIL": {"FUNDAY": [{"StartTime": "09:00", "EndTime": "17:00"}]}},
        },
        "EMAIL: OpenHours: 'FUNDAY' is not a day of the week",
    ),
    "closed days ending before they start": (
        {
            "SendingSchedule": True,
            "ClosedDays": {
                "SMS": [{"StartDateTime": "2026-12-26T00:00:00", "EndDateTime": "2026-12-25T00:00:00"}]
            },
        },
        "EndDateTime must be after StartDateTime",
    ),
    "unknown estimation method": (
        {"TimezoneEstimationMethods": ["IP_ADDRESS"]},
        "IP_ADDRESS is not PHONE_NUMBER or POSTAL_CODE",
    ),
    "unknown schedule time zone": (
        {"Schedule": {"Timezone": "Mars/Base"}},
        "Schedule.Timezone 'Mars/Base' is not a time zone",
    ),
    "timeframe cap without days": (
        {"Limits": {"TimeframeCap": {"Cap": 3}}},
        "TimeframeCap.Cap needs Days (1-30)",
    ),
    "contact center without a hand-off": (
        {"Activities": {"a": {"ContactCenter": {}}}, "StartActivity": "a"},
        "ContactCenter needs JourneyChannelSettings.ConnectCampaignArn",
    ),
    "sms template missing": (
        {"Activities": {"a": {"SMS": {"TemplateName": "no-such-sms"}}}, "StartActivity": "a"},
        "SMS template 'no-such-sms' does not exist (create it with CreateSmsTemplate)",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_journeys_are_refused_and_not_stored(
    setup: tuple[AppState, Audience], case: str
) -> None:
    state, audience = setup
    changes, message = INVALID[case]
    with pytest.raises(BadRequestError) as err:
        await call(
            state,
            "CreateJourney",
            ApplicationId=audience.app_id,
            WriteJourneyRequest=draft(audience.segment_id, **changes),
        )
    assert message in err.value.message
    listed = await call(state, "ListJourneys", ApplicationId=audience.app_id)
    assert listed["JourneysResponse"]["Item"] == []


async def test_every_problem_is_reported_at_once(setup: tuple[AppState, Audience]) -> None:
    state, audience = setup
    body = draft(
        audience.segment_id,
        Name="has space",
        Activities={"a": {"EMAIL": {"TemplateName": "missing", "NextActivity": "b"}}},
        StartActivity="a",
    )
    with pytest.raises(BadRequestError) as err:
        await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=body)
    assert "leads to 'b'" in err.value.message and "Name must be" in err.value.message


async def test_create_states_and_lifecycle_rules(setup: tuple[AppState, Audience]) -> None:
    state, audience = setup
    with pytest.raises(BadRequestError, match="State must be DRAFT or ACTIVE"):
        await call(
            state,
            "CreateJourney",
            ApplicationId=audience.app_id,
            WriteJourneyRequest=draft(audience.segment_id, State="PAUSED"),
        )
    created = await call(
        state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=draft(audience.segment_id)
    )
    journey = created["JourneyResponse"]
    assert (
        journey["State"] == "DRAFT" and journey["Activities"]["welcome"]["EMAIL"]["TemplateName"] == "welcome"
    )
    updated = await call(
        state,
        "UpdateJourney",
        ApplicationId=audience.app_id,
        JourneyId=journey["Id"],
        WriteJourneyRequest=draft(audience.segment_id, Name="renamed"),
    )
    assert updated["JourneyResponse"]["Name"] == "renamed"
    with pytest.raises(BadRequestError, match="State must be ACTIVE, PAUSED or CANCELLED"):
        await set_state(state, audience.app_id, journey["Id"], "COMPLETED")
    with pytest.raises(ConflictError, match="is DRAFT: it cannot become PAUSED"):
        await set_state(state, audience.app_id, journey["Id"], "PAUSED")
    cancelled = await set_state(state, audience.app_id, journey["Id"], "CANCELLED")
    assert cancelled["JourneyResponse"]["State"] == "CANCELLED"
    with pytest.raises(ConflictError, match="is CANCELLED: it cannot be changed"):
        await call(
            state,
            "UpdateJourney",
            ApplicationId=audience.app_id,
            JourneyId=journey["Id"],
            WriteJourneyRequest=draft(audience.segment_id),
        )
    with pytest.raises(NotFoundError, match="Journey nope not found"):
        await call(state, "GetJourney", ApplicationId=audience.app_id, JourneyId="nope")
    with pytest.raises(NotFoundError, match="has no activity 'zzz'"):
        await call(
            state,
            "GetJourneyExecutionActivityMetrics",
            ApplicationId=audience.app_id,
            JourneyId=journey["Id"],
            JourneyActivityId="zzz",
        )
