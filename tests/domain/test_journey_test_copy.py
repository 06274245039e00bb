"""The test copy of a journey: compressed waits, no delivery rules or caps, entered by the test's own event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sojourn.domain.journey_test_copy import build_test_copy
from sojourn.domain.journeys import JourneyDefinition, graph_problems
from sojourn.dsl import Journey, email, split_on, wait


def test_copy_compresses_every_delay_and_enters_by_event() -> None:
    original = (
        Journey("onboarding", segment="SEG", quiet_time=("21:00", "08:00"), daily_cap=1, timeframe_cap=(2, 7))
        .then(
            email("welcome"),
            wait(days=2),
            split_on("opened", of="welcome", within=wait(days=3), yes=[email("tips")], no=[email("nudge")]),
        )
        .definition()
    )
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    copy = build_test_copy(
        original, entry_event="sojourn.test.abc", wait="PT5S", now=now, lifetime=timedelta(hours=1)
    )
    assert copy["Name"] == "Test-onboarding" and copy["State"] == "ACTIVE"
    assert copy["Schedule"] == {
        "StartTime": now.isoformat(),
        "EndTime": (now + timedelta(hours=1)).isoformat(),
    }
    event = copy["StartCondition"]["EventStartCondition"]["EventFilter"]["Dimensions"]["EventType"]
    assert event == {"DimensionType": "INCLUSIVE", "Values": ["sojourn.test.abc"]}
    assert not {"QuietTime", "Limits", "WaitForQuietTime"} & set(copy)
    waits = [a["Wait"]["WaitTime"] for a in copy["Activities"].values() if "Wait" in a]
    splits = [
        a["ConditionalSplit"]["EvaluationWaitTime"]
        for a in copy["Activities"].values()
        if "ConditionalSplit" in a
    ]
    assert waits == [{"WaitFor": "PT5S"}] and splits == [{"WaitFor": "PT5S"}]
    assert graph_problems(JourneyDefinition.model_validate(copy)) == []
    assert original.QuietTime is not None, "the original is left as it was"
