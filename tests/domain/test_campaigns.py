"""Campaign definitions that cannot run are described precisely; valid ones pass; schedules resolve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sojourn.domain.campaign_schedule import LocalSlice, TreatmentSlice, treatment_slices
from sojourn.domain.campaigns import (
    CampaignDefinition,
    ChannelSource,
    campaign_event_matches,
    campaign_problems,
    endpoint_channel,
    in_app_message,
    schedule_rule,
    treatment_channels,
    treatment_delays,
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


EVENT = {"FilterType": "ENDPOINT", "Dimensions": {"EventType": {"Values": ["level.up"]}}}

INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "sms without body": (
        {"MessageConfiguration": {"SMSMessage": {"SenderId": "ACME"}}, "TemplateConfiguration": None},
        "SMSMessage needs a Body (or DefaultMessage.Body)",
    ),
    "sms message type": (
        {"MessageConfiguration": {"SMSMessage": {"Body": "hi", "MessageType": "LOUD"}}},
        "SMSMessage.MessageType must be TRANSACTIONAL or PROMOTIONAL",
    ),
    "push without body": (
        {"MessageConfiguration": {"GCMMessage": {"Url": "https://x"}}, "TemplateConfiguration": None},
        "the push message needs a Body, Title or RawContent",
    ),
    "default message alone": (
        {"MessageConfiguration": {"DefaultMessage": {"Body": "hi"}}, "TemplateConfiguration": None},
        "DefaultMessage alone names no channel",
    ),
    "in-app message on a scheduled campaign": (
        {"MessageConfiguration": {"InAppMessage": {"Body": "hi"}}},
        "InAppMessage is only for Schedule.Frequency IN_APP_EVENT",
    ),
    "in-app template on a scheduled campaign": (
        {"TemplateConfiguration": {"InAppTemplate": {"Name": "banner"}}},
        "TemplateConfiguration.InAppTemplate is only for Schedule.Frequency IN_APP_EVENT",
    ),
    "in-app template and an email template": (
        {
            "Schedule": {
                "StartTime": "2030-01-01T09:00:00Z",
                "Frequency": "IN_APP_EVENT",
                "EventFilter": EVENT,
            },
            "TemplateConfiguration": {"InAppTemplate": {"Name": "banner"}, "EmailTemplate": {"Name": "x"}},
        },
        "sends only an in-app message, not EmailTemplate",
    ),
    "in-app without content": (
        {
            "Schedule": {
                "StartTime": "2030-01-01T09:00:00Z",
                "Frequency": "IN_APP_EVENT",
                "EventFilter": EVENT,
            },
            "TemplateConfiguration": None,
            "MessageConfiguration": {"InAppMessage": {"Layout": "TOP_BANNER"}},
        },
        "needs TemplateConfiguration.InAppTemplate or MessageConfiguration.InAppMessage.Content",
    ),
    "in-app bad layout": (
        {
            "Schedule": {
                "StartTime": "2030-01-01T09:00:00Z",
                "Frequency": "IN_APP_EVENT",
                "EventFilter": EVENT,
            },
            "TemplateConfiguration": None,
            "MessageConfiguration": {"InAppMessage": {"Layout": "POPUP", "Content": [{"ImageUrl": "x"}]}},
        },
        "InAppMessage.Layout must be one of BOTTOM_BANNER",
    ),
    "in-app with an email": (
        {
            "Schedule": {
                "StartTime": "2030-01-01T09:00:00Z",
                "Frequency": "IN_APP_EVENT",
                "EventFilter": EVENT,
            },
            "TemplateConfiguration": None,
            "MessageConfiguration": {
                "InAppMessage": {"Layout": "TOP_BANNER", "Content": [{"ImageUrl": "x"}]},
                "EmailMessage": {"Title": "t", "Body": "b"},
            },
        },
        "sends only an in-app message, not EmailMessage",
    ),
    "in-app without event filter": (
        {"Schedule": {"StartTime": "2030-01-01T09:00:00Z", "Frequency": "IN_APP_EVENT"}},
        "an IN_APP_EVENT campaign needs an EventFilter",
    ),
    "custom message without delivery": (
        {"MessageConfiguration": {"CustomMessage": {"Data": "x"}}, "TemplateConfiguration": None},
        "CustomMessage needs CustomDeliveryConfiguration",
    ),
    "custom delivery to a lambda": (
        {
            "MessageConfiguration": {"CustomMessage": {"Data": "x"}},
            "CustomDeliveryConfiguration": {"DeliveryUri": "arn:aws:lambda:us-east-1:1:function:f"},
        },
        "sojourn cannot call AWS Lambda",
    ),
    "custom delivery unknown type": (
        {
            "MessageConfiguration": {"CustomMessage": {"Data": "x"}},
            "CustomDeliveryConfiguration": {"DeliveryUri": "https://hook.test/x", "EndpointTypes": ["FAX"]},
        },
        "EndpointTypes: FAX is not an endpoint channel type",
    ),
    "treatment starts before the campaign": (
        {"AdditionalTreatments": [{"SizePercent": 10, "Schedule": {"StartTime": "2029-12-31T09:00:00Z"}}]},
        "Schedule.StartTime must not be before the campaign's Schedule.StartTime",
    ),
    "treatment a day later on a daily campaign": (
        {"AdditionalTreatments": [{"SizePercent": 10, "Schedule": {"StartTime": "2030-01-02T09:00:00Z"}}]},
        "must be less than one DAILY period after",
    ),
    "treatment with its own quiet time": (
        {
            "AdditionalTreatments": [
                {
                    "SizePercent": 10,
                    "Schedule": {
                        "StartTime": "2030-01-01T10:00:00Z",
                        "QuietTime": {"Start": "22:00", "End": "07:00"},
                    },
                }
            ]
        },
        "Schedule.QuietTime must be the campaign's or left out",
    ),
    "treatment with another frequency": (
        {
            "AdditionalTreatments": [
                {"SizePercent": 10, "Schedule": {"StartTime": "2030-01-01T10:00:00Z", "Frequency": "WEEKLY"}}
            ]
        },
        "Frequency must be the campaign's (DAILY) or left out",
    ),
    "no content": ({"TemplateConfiguration": None}, "give a message for at least one channel"),
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
    "custom delivery without message": (
        {"CustomDeliveryConfiguration": {"DeliveryUri": "https://x"}},
        "CustomDeliveryConfiguration needs MessageConfiguration.CustomMessage",
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


def test_every_channel_campaign_is_valid() -> None:
    body = campaign(
        TemplateConfiguration={"SMSTemplate": {"Name": "sms"}, "PushTemplate": {"Name": "push"}},
        MessageConfiguration={"CustomMessage": {"Data": "{}"}},
        CustomDeliveryConfiguration={"DeliveryUri": "https://hook.test/deliver", "EndpointTypes": ["CUSTOM"]},
        AdditionalTreatments=[
            {
                "SizePercent": 20,
                "MessageConfiguration": {
                    "SMSMessage": {"Body": "Hi {{User.UserAttributes.FirstName}}", "SenderId": "ACME"},
                    "GCMMessage": {"Title": "Sale", "Body": "Now"},
                },
                "TemplateConfiguration": {"VoiceTemplate": {"Name": "call"}},
                "Schedule": {"StartTime": "2030-01-01T13:00:00Z"},
            }
        ],
    )
    assert problems(body) == []


def sources(**config: Any) -> dict[str, ChannelSource]:
    definition = CampaignDefinition.model_validate(campaign(**{"TemplateConfiguration": None, **config}))
    return treatment_channels(*definition.treatment_content(0))


def test_treatment_channels_say_where_each_message_comes_from() -> None:
    found = sources(
        MessageConfiguration={
            "DefaultMessage": {"Body": "default body"},
            "SMSMessage": {"SenderId": "ACME"},
            "APNSMessage": {"Title": "Hi"},
            "CustomMessage": {"Data": "payload"},
        },
        CustomDeliveryConfiguration={"DeliveryUri": "deliver_fn", "EndpointTypes": ["CUSTOM", "EMAIL"]},
    )
    assert sorted(found) == ["CUSTOM", "PUSH", "SMS"]
    assert found["SMS"].inline == {"Body": "default body"}
    assert found["SMS"].settings == {"SenderId": "ACME"}
    assert found["PUSH"].inline == {"Default": {"Body": "default body"}, "APNS": {"Title": "Hi"}}
    assert found["CUSTOM"].inline == {"Data": "payload"}
    assert found["CUSTOM"].endpoint_types == ("CUSTOM", "EMAIL")


def test_a_template_wins_over_the_inline_message() -> None:
    found = sources(
        MessageConfiguration={"SMSMessage": {"Body": "inline", "OriginationNumber": "+15550000000"}},
        TemplateConfiguration={"SMSTemplate": {"Name": "sms", "Version": "2"}},
    )
    assert found["SMS"].template is not None and found["SMS"].template.Name == "sms"
    assert found["SMS"].inline is None
    assert found["SMS"].settings == {"OriginationNumber": "+15550000000"}


ENDPOINT_CHANNELS = [
    ("EMAIL", {"EMAIL", "SMS"}, "EMAIL"),
    ("SMS", {"EMAIL", "SMS"}, "SMS"),
    ("GCM", {"PUSH"}, "PUSH"),
    ("APNS_SANDBOX", {"PUSH"}, "PUSH"),
    ("BAIDU", {"EMAIL"}, None),
    ("VOICE", {"SMS"}, None),
    ("IN_APP", {"EMAIL", "SMS", "PUSH"}, None),
    (None, {"EMAIL"}, None),
]


@pytest.mark.parametrize(("channel_type", "channels", "expected"), ENDPOINT_CHANNELS)
def test_an_endpoint_gets_its_own_channels_message(
    channel_type: str | None, channels: set[str], expected: str | None
) -> None:
    given = {c: ChannelSource(c) for c in channels}
    assert endpoint_channel(channel_type, given) == expected


def test_custom_delivery_takes_the_endpoint_types_it_lists_first() -> None:
    given = {
        "EMAIL": ChannelSource("EMAIL"),
        "CUSTOM": ChannelSource("CUSTOM", endpoint_types=("EMAIL", "CUSTOM")),
    }
    assert endpoint_channel("EMAIL", given) == "CUSTOM"
    assert endpoint_channel("CUSTOM", given) == "CUSTOM"
    assert endpoint_channel("SMS", given) is None
    assert endpoint_channel("CUSTOM", {"EMAIL": ChannelSource("EMAIL")}) is None


def test_treatment_delays_are_their_start_after_the_campaigns() -> None:
    written = datetime(2029, 6, 1, tzinfo=UTC)
    body = campaign(
        AdditionalTreatments=[
            {"SizePercent": 10, "Schedule": {"StartTime": "2030-01-01T11:30:00Z"}},
            {"SizePercent": 10},
        ]
    )
    definition = CampaignDefinition.model_validate(body)
    assert treatment_delays(definition, written) == [0, 9000, 0]
    assert treatment_delays(CampaignDefinition.model_validate(campaign()), written) == []


def test_treatment_slices_send_each_zone_once_per_distinct_delay() -> None:
    at = datetime(2030, 1, 1, 9, tzinfo=UTC)
    slices = [LocalSlice(at, ("",)), LocalSlice(at + timedelta(hours=1), ("Europe/Paris",))]
    sends = treatment_slices(slices, [0, 5400, 0])
    assert [(s.at - at, s.zones, s.treatments, s.holdout) for s in sends] == [
        (timedelta(0), ("",), (0, 2), True),
        (timedelta(hours=1), ("Europe/Paris",), (0, 2), True),
        (timedelta(hours=1, minutes=30), ("",), (1,), False),
        (timedelta(hours=2, minutes=30), ("Europe/Paris",), (1,), False),
    ]
    assert treatment_slices(slices, []) == [TreatmentSlice(s.at, s.zones, None) for s in slices]


def test_a_valid_in_app_campaign_and_its_message() -> None:
    body = campaign(
        Schedule={"StartTime": "2030-01-01T09:00:00Z", "Frequency": "IN_APP_EVENT", "EventFilter": EVENT},
        TemplateConfiguration=None,
        MessageConfiguration={
            "InAppMessage": {
                "Layout": "MIDDLE_BANNER",
                "Content": [
                    {"BodyConfig": {"Body": "Level up!", "Alignment": "CENTER", "TextColor": "#000"}}
                ],
                "CustomConfig": {"k": "v"},
            }
        },
        Limits={"Session": 2, "Daily": 3},
    )
    assert problems(body) == []
    definition = CampaignDefinition.model_validate(body)
    assert in_app_message(definition, 0) == {
        "Layout": "MIDDLE_BANNER",
        "Content": [{"BodyConfig": {"Body": "Level up!", "Alignment": "CENTER", "TextColor": "#000"}}],
        "CustomConfig": {"k": "v"},
    }
