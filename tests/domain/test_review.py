"""Journey review: blocking errors and recommendations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sojourn.domain.journeys import JourneyDefinition
from sojourn.domain.review import review_journey

NOW = datetime(2026, 11, 23, tzinfo=UTC)
SCHEDULE = {"StartTime": "2026-11-23T00:00:00Z", "EndTime": "2026-12-23T00:00:00Z"}


def journey(
    activities: dict[str, Any], start: str = "a", schedule: dict[str, str] | None = SCHEDULE
) -> JourneyDefinition:
    body: dict[str, Any] = {"Name": "j", "StartActivity": start, "Activities": activities}
    if schedule is not None:
        body["Schedule"] = schedule
    return JourneyDefinition.model_validate(body)


OPENED = {
    "Conditions": [
        {"EventCondition": {"MessageActivity": "a", "Dimensions": {"EventType": {"Values": ["_email.open"]}}}}
    ]
}


def test_a_well_paced_journey_has_nothing_to_say() -> None:
    j = journey(
        {
            "a": {"EMAIL": {"TemplateName": "t", "NextActivity": "s"}},
            "s": {
                "ConditionalSplit": {
                    "Condition": OPENED,
                    "EvaluationWaitTime": {"WaitFor": "P1D"},
                    "TrueActivity": "b",
                }
            },
            "b": {"EMAIL": {"TemplateName": "t"}},
        }
    )
    review = review_journey(j, now=NOW)
    assert review.ok and review.recommendations == []


def test_blocking_errors_come_first() -> None:
    review = review_journey(journey({"a": {"EMAIL": {"TemplateName": "t", "NextActivity": "x"}}}), now=NOW)
    assert not review.ok and review.errors == [
        "activity 'a' leads to 'x', which is not an activity of this journey"
    ]


def test_recommendations() -> None:
    j = journey(
        {
            "a": {"EMAIL": {"TemplateName": "t", "NextActivity": "b"}},
            "b": {"EMAIL": {"TemplateName": "t", "NextActivity": "w"}},
            "w": {"Wait": {"WaitTime": {"WaitUntil": "2026-01-01T00:00:00Z"}, "NextActivity": "s"}},
            "s": {"ConditionalSplit": {"Condition": OPENED}},
        },
        schedule=None,
    )
    review = review_journey(j, now=NOW)
    assert review.ok
    assert review.recommendations == [
        "emails 'a' and 'b' go out back to back: put a Wait between them",
        "wait 'w' waits until 2026-01-01T00:00:00Z, which has passed: participants move on at once",
        "the journey has no EndTime: it takes entrants for the maximum of 540 days",
        "the journey has no StartTime: entries begin 5 minutes after it is published",
    ]
    immediate = journey(
        {
            "a": {"EMAIL": {"TemplateName": "t", "NextActivity": "s"}},
            "s": {"ConditionalSplit": {"Condition": OPENED}},
        }
    )
    (advice,) = review_journey(immediate, now=NOW).recommendations
    assert advice.startswith("split 's' is evaluated immediately after a")
