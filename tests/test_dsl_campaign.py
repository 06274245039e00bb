"""The DSL's Campaign builds the WriteCampaignRequest the API accepts; the example campaign is valid."""

from __future__ import annotations

import runpy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sojourn.domain.campaigns import campaign_problems
from sojourn.dsl import Campaign

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"


def test_a_one_off_campaign_now_is_immediate() -> None:
    request = Campaign("hello", segment="seg", template="welcome").request(now=NOW)
    assert request == {
        "Name": "hello",
        "SegmentId": "seg",
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
        "TemplateConfiguration": {"EmailTemplate": {"Name": "welcome"}},
    }


def test_an_ab_campaign_with_holdout_limits_quiet_time_and_hook() -> None:
    campaign = Campaign(
        "ab",
        segment="seg",
        subject="Hello {{User.UserAttributes.FirstName}}",
        html="<p>A</p>",
        from_address="news@example.com",
        frequency="DAILY",
        start="now",
        end=datetime(2027, 1, 1, tzinfo=UTC),
        timezone="America/New_York",
        quiet_time=("22:00", "07:00"),
        holdout=10,
        daily_cap=1,
        total_cap=5,
        messages_per_second=100,
        hook="https://hooks.example.com/filter",
    ).treatment(30, template="tips", name="B")
    definition = campaign.definition(now=NOW)
    assert campaign_problems(definition, creating=True) == []
    request = campaign.request(now=NOW)
    assert request["Schedule"]["StartTime"] == NOW.isoformat()
    assert request["Schedule"]["QuietTime"] == {"Start": "22:00", "End": "07:00"}
    assert request["MessageConfiguration"]["EmailMessage"] == {
        "Title": "Hello {{User.UserAttributes.FirstName}}",
        "HtmlBody": "<p>A</p>",
        "FromAddress": "news@example.com",
    }
    assert request["AdditionalTreatments"] == [
        {
            "SizePercent": 30,
            "TemplateConfiguration": {"EmailTemplate": {"Name": "tips"}},
            "TreatmentName": "B",
        }
    ]
    assert request["Limits"] == {"Daily": 1, "Total": 5, "MessagesPerSecond": 100}
    assert request["Hook"] == {"Mode": "FILTER", "LambdaFunctionName": "https://hooks.example.com/filter"}


def test_an_event_campaign_filters_on_its_event_type() -> None:
    request = Campaign("on-purchase", segment="seg", template="thanks", event="purchase", start=NOW).request()
    assert request["Schedule"]["Frequency"] == "EVENT"
    assert request["Schedule"]["EventFilter"]["Dimensions"]["EventType"]["Values"] == ["purchase"]


def test_the_example_campaign_is_valid() -> None:
    found = [
        v for v in runpy.run_path(str(WORKFLOWS / "spring_newsletter.py")).values() if isinstance(v, Campaign)
    ]
    assert [c.name for c in found] == ["spring-newsletter"]
    assert campaign_problems(found[0].definition(now=NOW), creating=True) == []


def test_a_campaign_on_every_channel_with_an_sms_treatment() -> None:
    campaign = Campaign(
        "reminder",
        segment="seg",
        template="reminder_email",
        push_template="nudge",
        voice_template="call",
        custom=("https://crm.example.com/hook", "remind"),
        sms="Your appointment is tomorrow",
    ).treatment(20, sms_template="reminder_sms", name="sms-only")
    request = campaign.request(now=NOW)
    assert request["TemplateConfiguration"] == {
        "EmailTemplate": {"Name": "reminder_email"},
        "PushTemplate": {"Name": "nudge"},
        "VoiceTemplate": {"Name": "call"},
    }
    assert request["MessageConfiguration"] == {
        "SMSMessage": {"Body": "Your appointment is tomorrow"},
        "CustomMessage": {"Data": "remind"},
    }
    assert request["CustomDeliveryConfiguration"] == {"DeliveryUri": "https://crm.example.com/hook"}
    assert request["AdditionalTreatments"] == [
        {
            "SizePercent": 20,
            "TemplateConfiguration": {"SMSTemplate": {"Name": "reminder_sms"}},
            "TreatmentName": "sms-only",
        }
    ]
    assert campaign_problems(campaign.definition(now=NOW), creating=True) == []
    with pytest.raises(TypeError, match="fax"):
        campaign.treatment(10, fax="no")


def test_an_in_app_template_makes_an_in_app_campaign() -> None:
    request = Campaign(
        "level-up", segment="seg", in_app_template="banner", event="level.up", start=NOW
    ).request()
    assert request["TemplateConfiguration"] == {"InAppTemplate": {"Name": "banner"}}
    assert request["Schedule"]["Frequency"] == "IN_APP_EVENT"
    assert request["Schedule"]["EventFilter"]["Dimensions"]["EventType"]["Values"] == ["level.up"]
    assert "MessageConfiguration" not in request
    with pytest.raises(ValueError, match="needs the event that shows it"):
        Campaign("no-event", segment="seg", in_app_template="banner")
