"""The copy of a journey that ``sojourn journeys test`` sends test participants through (Pinpoint's "Test-<name>").

Like Pinpoint's test: every wait and evaluation wait becomes ``wait`` (compressed), quiet time, the sending
schedule and the caps are left out (test messages do not count), and the copy is entered by an event only the
test sends, so nobody but the test participants enters it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sojourn.domain.journeys import JourneyDefinition

_DROPPED = (
    "QuietTime",
    "WaitForQuietTime",
    "SendingSchedule",
    "OpenHours",
    "ClosedDays",
    "Limits",
    "RefreshFrequency",
    "RefreshOnSegmentUpdate",
    "LocalTime",
    "TimezoneEstimationMethods",
)


def build_test_copy(
    definition: JourneyDefinition, *, entry_event: str, wait: str, now: datetime, lifetime: timedelta
) -> dict[str, Any]:
    """The WriteJourneyRequest of the test copy.

    Args:
        definition: The journey under test.
        entry_event: The event type that enters a test participant.
        wait: ISO-8601 duration every wait and evaluation wait becomes (e.g. ``PT5S``).
        now: When the copy starts.
        lifetime: How long the copy takes entrants.
    """
    body = definition.model_dump(mode="json", exclude_none=True)
    for name in _DROPPED:
        body.pop(name, None)
    body["Name"] = f"Test-{definition.Name}"[:150]
    body["State"] = "ACTIVE"
    body["Schedule"] = {"StartTime": now.isoformat(), "EndTime": (now + lifetime).isoformat()}
    body["StartCondition"] = {
        "EventStartCondition": {
            "EventFilter": {
                "FilterType": "ENDPOINT",
                "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [entry_event]}},
            }
        }
    }
    for act in body.get("Activities", {}).values():
        if "Wait" in act and act["Wait"].get("WaitTime") is not None:
            act["Wait"]["WaitTime"] = {"WaitFor": wait}
        for split in ("ConditionalSplit", "MultiCondition"):
            if split in act and act[split].get("EvaluationWaitTime") is not None:
                act[split]["EvaluationWaitTime"] = {"WaitFor": wait}
    return body
