"""Campaign definitions that cannot run are described precisely; valid ones pass; schedules resolve."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sojourn.domain.campaigns import (
    CampaignDefinition,
    campaign_event_matches,
    campaign_problems,
    schedule_rule,
)


def campaign(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": "spring-sale",
        "SegmentId": "seg",
        "Schedule": {
            "StartTime": "2030-01-01T09:00:00Z",
            "Frequency": "DAILY",
            "EndTime": "2030-02-01T00:00:00Z",
        },
        "TemplateConfiguration": {"EmailTemplate": {"Name": "welcome"}},
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def problems(body: dict[str, Any]) -> list[str]:
    return campaign_problems(CampaignDefinition.model_validate(body), creating=True)


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "sms campaign": (
        {"MessageConfiguration": {"SMSMessage": {"Body": "hi"}}, "TemplateConfiguration": None},
        "SMSMessage: only EMAIL campaigns are supported; SMS, push, voice, in-app and custom channel campaigns are not supported by sojourn yet",
    ),
    "no content": ({"TemplateConfiguration": None}, "give TemplateConfiguration.EmailTemplate.Name"),
    "inline without subject": (
        {"TemplateConfiguration": None, "MessageConfiguration": {"EmailMessage": {"HtmlBody": "<p>x</p>"}}},
        "EmailMessage needs a Title",
    ),
    "six treatments": (
        {"AdditionalTreatments": [{"SizePercent": 5}] * 5},
        "at most 5 treatments including the default one",
    ),
    "shares over 100": (
        {"HoldoutPercent": 50, "AdditionalTreatments": [{"SizePercent": 40}, {"SizePercent": 20}]},
        "must be at most 100 (got 110)",
    ),
    "negative size": (
        {"AdditionalTreatments": [{"SizePercent": -1}]},
        "SizePercent must be a whole number 0-100",
    ),
    "unknown frequency": (
        {"Schedule": {"StartTime": "2030-01-01T09:00:00Z", "Frequency": "YEARLY"}},
        "Schedule.Frequency must be one of ONCE, HOURLY, DAILY, WEEKLY, MONTHLY, EVENT",
    ),
    "immediate recurring": (
        {"Schedule": {"StartTime": "IMMEDIATE", "Frequency": "DAILY"}},
        "StartTime IMMEDIATE is only for Frequency ONCE",
    ),
    "end before start": (
        {"Schedule": {"StartTime": "2030-01-02T00:00:00Z", "EndTime": "2030-01-01T00:00:00Z"}},
        "Schedule.EndTime must be after StartTime",
    ),
    "bad start": ({"Schedule": {"StartTime": "next tuesday"}}, "is not an ISO-8601 date and time"),
    "unknown zone": (
        {"Schedule": {"StartTime": "2030-01-01T09:00:00", "Timezone": "Mars/Olympus"}},
        "Schedule.Timezone 'Mars/Olympus' is not a time zone",
    ),
    "quiet time half": (
        {"Schedule": {"StartTime": "IMMEDIATE", "QuietTime": {"Start": "22:00"}}},
        "Schedule.QuietTime needs both Start and End",
    ),
    "quiet time format": (
        {"Schedule": {"StartTime": "IMMEDIATE", "QuietTime": {"Start": "10pm", "End": "07:00"}}},
        "Schedule.QuietTime.Start must be a 24-hour time HH:MM",
    ),
    "event without filter": (
        {"Schedule": {"StartTime": "2030-01-01T09:00:00Z", "Frequency": "EVENT"}},
        "an EVENT campaign needs an EventFilter",
    ),
    "filter without event": (
        {
            "Schedule": {
                "StartTime": "IMMEDIATE",
                "EventFilter": {"FilterType": "ENDPOINT", "Dimensions": {"EventType": {"Values": ["x"]}}},
            }
        },
        "Schedule.EventFilter is only for Frequency EVENT",
    ),
    "no segment": ({"SegmentId": None}, "SegmentId is required"),
    "no schedule": ({"Schedule": None}, "Schedule is required"),
    "hook without function": ({"Hook": {"Mode": "FILTER"}}, "Hook.Mode FILTER needs LambdaFunctionName"),
    "plain http hook": (
        {"Hook": {"Mode": "FILTER", "LambdaFunctionName": "http://example.com/hook"}},
        "must be an https:// URL or a custom activity name",
    ),
    "custom delivery": (
        {"CustomDeliveryConfiguration": {"DeliveryUri": "https://x"}},
        "custom channel campaigns are not supported by sojourn yet",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_definitions_say_what_to_fix(case: str) -> None:
    changes, expected = INVALID[case]
    found = problems(campaign(**changes))
    assert any(expected in p for p in found), found


def test_a_valid_ab_campaign_with_holdout_has_no_problems() -> None:
    body = campaign(
        HoldoutPercent=10,
        AdditionalTreatments=[
            {"SizePercent": 30, "TemplateConfiguration": {"EmailTemplate": {"Name": "tips"}}},
            {
                "SizePercent": 30,
                "MessageConfiguration": {"EmailMessage": {"Title": "Hi", "HtmlBody": "<p>B</p>"}},
            },
        ],
        Limits={"Daily": 1, "Total": 3, "MessagesPerSecond": 50, "MaximumDuration": 60},
    )
    assert problems(body) == []
    assert CampaignDefinition.model_validate(body).treatment_sizes() == [30, 30]


def test_a_naive_start_time_is_read_on_the_schedule_zones_clock() -> None:
    schedule = CampaignDefinition.model_validate(
        campaign(Schedule={"StartTime": "2030-07-01T09:00:00", "Timezone": "America/New_York"})
    ).Schedule
    assert schedule is not None
    rule = schedule_rule(schedule, datetime(2029, 1, 1, tzinfo=UTC))
    assert rule.start == datetime(2030, 7, 1, 13, tzinfo=UTC) and rule.frequency == "ONCE"
    immediate = CampaignDefinition.model_validate(campaign(Schedule={"StartTime": "IMMEDIATE"})).Schedule
    assert immediate is not None
    written = datetime(2029, 5, 5, 5, tzinfo=UTC)
    assert schedule_rule(immediate, written).start == written


def test_event_filters_match_type_and_attributes_with_repeated_values_ored() -> None:
    definition = CampaignDefinition.model_validate(
        campaign(
            Schedule={
                "StartTime": "2030-01-01T00:00:00Z",
                "Frequency": "EVENT",
                "EventFilter": {
                    "FilterType": "ENDPOINT",
                    "Dimensions": {
                        "EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase"]},
                        "Attributes": {"sku": {"AttributeType": "INCLUSIVE", "Values": ["a", "b"]}},
                    },
                },
            }
        )
    )
    assert campaign_event_matches(definition, "purchase", {"sku": "b"}, {})
    assert not campaign_event_matches(definition, "purchase", {"sku": "c"}, {})
    assert not campaign_event_matches(definition, "signup", {"sku": "a"}, {})


def test_only_events_between_start_and_end_trigger() -> None:
    definition = CampaignDefinition.model_validate(
        campaign(
            Schedule={
                "StartTime": "2030-01-01T00:00:00Z",
                "EndTime": "2030-02-01T00:00:00Z",
                "Frequency": "EVENT",
                "EventFilter": {"FilterType": "ENDPOINT", "Dimensions": {"EventType": {"Values": ["buy"]}}},
            }
        )
    )
    inside, before = datetime(2030, 1, 5, tzinfo=UTC), datetime(2029, 12, 31, tzinfo=UTC)
    assert campaign_event_matches(definition, "buy", {}, {}, at=inside)
    assert not campaign_event_matches(definition, "buy", {}, {}, at=before)
    assert not campaign_event_matches(definition, "buy", {}, {}, at=datetime(2030, 3, 1, tzinfo=UTC))
