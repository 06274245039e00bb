"""Graph rules of journey definitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sojourn.domain.journeys import (
    EventFilterSpec,
    JourneyDefinition,
    WaitTimeSpec,
    event_matches,
    graph_problems,
    journey_window,
)


def journey(activities: dict[str, Any], start: str = "a", **extra: Any) -> JourneyDefinition:
    return JourneyDefinition.model_validate(
        {"Name": "j", "StartActivity": start, "Activities": activities, **extra}
    )


def email(next_activity: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"TemplateName": "t"}
    if next_activity:
        body["NextActivity"] = next_activity
    return {"EMAIL": body}


def opened_split(of: str, yes: str | None, no: str | None, wait: str | None = "P3D") -> dict[str, Any]:
    body: dict[str, Any] = {
        "Condition": {
            "Conditions": [
                {
                    "EventCondition": {
                        "MessageActivity": of,
                        "Dimensions": {"EventType": {"Values": ["_email.open"]}},
                    }
                }
            ]
        }
    }
    if wait:
        body["EvaluationWaitTime"] = {"WaitFor": wait}
    if yes:
        body["TrueActivity"] = yes
    if no:
        body["FalseActivity"] = no
    return {"ConditionalSplit": body}


def test_a_valid_journey_has_no_problems() -> None:
    j = journey(
        {
            "a": email("w"),
            "w": {"Wait": {"WaitTime": {"WaitFor": "P2D"}, "NextActivity": "s"}},
            "s": opened_split("a", "b", "h"),
            "b": email(),
            "h": {"Holdout": {"Percentage": 10}},
        }
    )
    assert graph_problems(j) == []


def test_unknown_next_activity_is_named() -> None:
    problems = graph_problems(journey({"a": email("nope")}))
    assert problems == ["activity 'a' leads to 'nope', which is not an activity of this journey"]


def test_start_activity_must_exist() -> None:
    assert "StartActivity 'x' is not one of the journey's activities" in graph_problems(
        journey({"a": email()}, start="x")
    )


def test_unreachable_activity_is_reported() -> None:
    assert graph_problems(journey({"a": email(), "b": email()})) == [
        "activity 'b' cannot be reached from StartActivity 'a'"
    ]


def test_cycle_without_a_wait_is_refused() -> None:
    problems = graph_problems(journey({"a": email("b"), "b": email("a")}))
    assert problems == ["activities a -> b -> a form a loop with no Wait in it"]


def test_cycle_with_a_wait_is_allowed() -> None:
    j = journey(
        {
            "a": email("w"),
            "w": {"Wait": {"WaitTime": {"WaitFor": "P1D"}, "NextActivity": "s"}},
            "s": opened_split("a", None, "a", wait=None),
        }
    )
    assert graph_problems(j) == []


def test_two_types_in_one_activity() -> None:
    problems = graph_problems(journey({"a": {"EMAIL": {"TemplateName": "t"}, "Holdout": {"Percentage": 5}}}))
    assert problems == ["activity 'a' must have exactly one activity type, it has ['EMAIL', 'Holdout']"]


def test_contact_center_rules() -> None:
    hand_off = {"ConnectCampaignArn": "https://cc.example.com/take"}
    four = {f"c{i}": {"ContactCenter": {"NextActivity": f"c{i + 1}"}} for i in range(1, 4)} | {
        "c4": {"ContactCenter": {}}
    }
    assert graph_problems(journey(four, start="c1", JourneyChannelSettings=hand_off)) == [
        "a journey has at most 3 ContactCenter activities, this one has 4"
    ]
    on_event = journey(
        {"a": {"ContactCenter": {}}},
        JourneyChannelSettings=hand_off,
        StartCondition={"EventStartCondition": {"EventFilter": {"FilterType": "ENDPOINT", "Dimensions": {}}}},
    )
    assert graph_problems(on_event) == [
        "ContactCenter activities are not allowed in event-triggered journeys"
    ]
    assert (
        "ContactCenter needs JourneyChannelSettings.ConnectCampaignArn"
        in graph_problems(journey({"a": {"ContactCenter": {}}}))[0]
    )
    assert (
        "JourneyChannelSettings.ConnectCampaignArn: DeliveryUri"
        in graph_problems(
            journey(
                {"a": {"ContactCenter": {}}},
                JourneyChannelSettings={"ConnectCampaignArn": "arn:aws:connect:x"},
            )
        )[0]
    )
    assert graph_problems(journey({"a": {"ContactCenter": {}}}, JourneyChannelSettings=hand_off)) == []


def test_event_condition_must_name_an_earlier_email() -> None:
    later = journey({"a": opened_split("b", "b", None), "b": email()})
    assert graph_problems(later) == [
        "activity 'a': EventCondition.MessageActivity 'b' does not come before this split"
    ]
    not_email = journey(
        {"a": {"Holdout": {"Percentage": 1, "NextActivity": "s"}}, "s": opened_split("a", None, None)}
    )
    assert graph_problems(not_email) == [
        "activity 's': EventCondition.MessageActivity 'a' is not a message activity (EMAIL, SMS, PUSH, CUSTOM) of this journey"
    ]


def test_random_split_percentages_must_sum_to_100() -> None:
    j = journey(
        {
            "a": {"RandomSplit": {"Branches": [{"Percentage": 50, "NextActivity": "b"}, {"Percentage": 40}]}},
            "b": email(),
        }
    )
    assert graph_problems(j) == [
        "activity 'a': RandomSplit branch percentages must sum to 100, they sum to 90"
    ]


def test_activity_ids_are_alphanumeric() -> None:
    assert "activity id 'a-b' must be 1-100 letters and digits" in graph_problems(
        journey({"a-b": email()}, start="a-b")
    )


def test_wait_time_needs_exactly_one_member() -> None:
    with pytest.raises(ValueError, match="exactly one of WaitFor"):
        WaitTimeSpec.model_validate({})
    with pytest.raises(ValueError, match="not an ISO-8601 duration"):
        WaitTimeSpec.model_validate({"WaitFor": "two days"})


def test_wait_until_in_the_past_moves_on_at_once() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert WaitTimeSpec(WaitUntil="2026-11-23T11:00:00Z").delay(now) == timedelta(0)
    assert WaitTimeSpec(WaitUntil="2026-11-23T12:00:20Z").delay(now) == timedelta(seconds=20)


def test_window_start_now_and_the_540_day_limit() -> None:
    published = datetime(2026, 11, 23, 12, tzinfo=UTC)
    j = journey({"a": email()}, Schedule={"StartTime": "2026-11-23T11:59:00Z"})
    start, end = journey_window(j, published)
    assert start == published
    assert end == published + timedelta(days=540)


def test_window_without_start_has_the_five_minute_entry_delay() -> None:
    published = datetime(2026, 11, 23, 12, tzinfo=UTC)
    start, end = journey_window(
        journey({"a": email()}, Schedule={"EndTime": "2026-12-01T00:00:00Z"}), published
    )
    assert start == published + timedelta(minutes=5)
    assert end == datetime(2026, 12, 1, tzinfo=UTC)


def test_event_filter_matching() -> None:
    f = EventFilterSpec.model_validate(
        {
            "FilterType": "ENDPOINT",
            "Dimensions": {
                "EventType": {"DimensionType": "INCLUSIVE", "Values": ["signup"]},
                "Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["pro", "team"]}},
                "Metrics": {"seats": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 5}},
            },
        }
    )
    assert event_matches(f, "signup", {"plan": "team"}, {"seats": 5})
    assert not event_matches(f, "login", {"plan": "team"}, {"seats": 5})
    assert not event_matches(f, "signup", {"plan": "free"}, {"seats": 5})
    assert not event_matches(f, "signup", {"plan": "pro"}, {"seats": 4})
    assert not event_matches(f, "signup", {"plan": "pro"}, {})


def multi(branches: list[dict[str, Any]], default: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"Branches": branches, "EvaluationWaitTime": {"WaitFor": "P1D"}}
    if default:
        body["DefaultActivity"] = default
    return {"MultiCondition": body}


def test_multi_condition_is_valid_with_up_to_four_branches() -> None:
    opened = {
        "EventCondition": {"MessageActivity": "a", "Dimensions": {"EventType": {"Values": ["_email.open"]}}}
    }
    ok = journey(
        {
            "a": email("m"),
            "m": multi([{"Condition": opened, "NextActivity": "b"}], default="c"),
            "b": email(),
            "c": email(),
        }
    )
    assert graph_problems(ok) == []
    assert ok.Activities["m"].metric_type == "MULTI_CONDITIONAL_SPLIT"
    five = journey({"a": email("m"), "m": multi([{"Condition": opened}] * 5)})
    assert graph_problems(five) == ["activity 'm': MultiCondition needs 1 to 4 branches, it has 5"]
    later = journey({"m": multi([{"Condition": opened, "NextActivity": "a"}]), "a": email()}, start="m")
    assert graph_problems(later) == [
        "activity 'm': EventCondition.MessageActivity 'a' does not come before this split"
    ]
    missing = journey({"a": email("m"), "m": multi([{"NextActivity": "a"}])})
    assert "activity 'm': MultiCondition branch 1 needs a Condition" in graph_problems(missing)


def own_event_split(dimensions: dict[str, Any] | None, kind: str = "ConditionalSplit") -> dict[str, Any]:
    condition = {"Conditions": [{"EventCondition": {"Dimensions": dimensions} if dimensions else {}}]}
    if kind == "MultiCondition":
        return {
            "MultiCondition": {
                "Branches": [{"Condition": condition["Conditions"][0]}],
                "DefaultActivity": None,
            }
        }
    return {"ConditionalSplit": {"Condition": condition, "EvaluationWaitTime": {"WaitFor": "P1D"}}}


def test_wait_for_event_is_a_split_on_the_participants_own_event() -> None:
    purchase = {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase", "upgrade"]}}
    definition = journey({"a": own_event_split(purchase)})
    assert graph_problems(definition) == []
    act = definition.Activities["a"]
    assert act.waits_for_events and act.awaited_event_types() == {"purchase", "upgrade"}
    assert not journey({"a": opened_split("a", None, None)}).Activities["a"].waits_for_events


@pytest.mark.parametrize(
    ("activity", "message"),
    [
        (own_event_split(None), "needs Dimensions.EventType with the event types to wait for"),
        (
            own_event_split({"EventType": {"DimensionType": "EXCLUSIVE", "Values": ["purchase"]}}),
            "waiting for an event needs an INCLUSIVE EventType",
        ),
        (
            own_event_split(
                {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase"]}, "Attributes": {"x": {}}}
            ),
            "attribute and metric filters on a participant's own event are not supported",
        ),
        (
            own_event_split(
                {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["p"]}}, kind="MultiCondition"
            ),
            "works in a ConditionalSplit only",
        ),
    ],
)
def test_wait_for_event_problems(activity: dict[str, Any], message: str) -> None:
    problems = graph_problems(journey({"a": activity}))
    assert any(message in p for p in problems), problems


def test_sms_and_push_activities_are_checked() -> None:
    ok = journey(
        {
            "a": {
                "SMS": {
                    "TemplateName": "s",
                    "MessageConfig": {"MessageType": "PROMOTIONAL"},
                    "NextActivity": "b",
                }
            },
            "b": {
                "PUSH": {"TemplateName": "p", "MessageConfig": {"TimeToLive": "3600"}, "NextActivity": "c"}
            },
            "c": opened_split("a", None, None, wait="PT1H"),
        }
    )
    # The split tests the SMS activity's events: SMS and PUSH are message activities.
    ok.Activities["c"].ConditionalSplit.Condition.Conditions[0].EventCondition.Dimensions.EventType.Values = [  # type: ignore[union-attr]
        "_SMS.SUCCESS"
    ]
    assert graph_problems(ok) == []
    bad = journey(
        {
            "a": {"SMS": {"MessageConfig": {"MessageType": "LOUD"}, "NextActivity": "b"}},
            "b": {
                "PUSH": {"TemplateName": "p", "TemplateVersion": "v2", "MessageConfig": {"TimeToLive": "1h"}}
            },
        }
    )
    problems = graph_problems(bad)
    assert "activity 'a': SMS needs a TemplateName (a SMS template)" in problems
    assert any("MessageType 'LOUD' is not TRANSACTIONAL or PROMOTIONAL" in p for p in problems)
    assert any("PUSH.TemplateVersion must be a version number" in p for p in problems)
    assert any("TimeToLive must be whole seconds" in p for p in problems)


def test_event_conditions_need_a_message_activity() -> None:
    problems = graph_problems(
        journey(
            {
                "a": {"Wait": {"WaitTime": {"WaitFor": "PT1H"}, "NextActivity": "b"}},
                "b": opened_split("a", None, None),
            }
        )
    )
    assert problems == [
        "activity 'b': EventCondition.MessageActivity 'a' is not a message activity (EMAIL, SMS, PUSH, CUSTOM) of this journey"
    ]
