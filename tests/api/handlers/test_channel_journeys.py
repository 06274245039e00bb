"""Journeys with SMS, PUSH, CUSTOM and ContactCenter activities through a real boto3 client over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.api_server import boto3_client, serve_api
from tests.support.helpers import unique


@pytest.fixture(scope="module")
def pinpoint(database_url: str) -> Iterator[Any]:
    with serve_api(database_url, smtp_url="null://") as (url, _):
        yield boto3_client("pinpoint", url)


def test_channel_activities_round_trip(pinpoint: Any) -> None:
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "channels"})["ApplicationResponse"]["Id"]
    segment_id = pinpoint.create_segment(
        ApplicationId=app_id, WriteSegmentRequest={"Name": "everyone", "Dimensions": {}}
    )["SegmentResponse"]["Id"]
    sms, push = unique("sms-"), unique("push-")
    pinpoint.create_sms_template(TemplateName=sms, SMSTemplateRequest={"Body": "Hi"})
    pinpoint.create_push_template(
        TemplateName=push, PushNotificationTemplateRequest={"Default": {"Body": "Hi"}}
    )
    activities = {
        "text": {
            "SMS": {
                "TemplateName": sms,
                "MessageConfig": {"MessageType": "PROMOTIONAL", "SenderId": "ACME"},
                "NextActivity": "notify",
            }
        },
        "notify": {
            "PUSH": {"TemplateName": push, "MessageConfig": {"TimeToLive": "300"}, "NextActivity": "crm"}
        },
        "crm": {
            "CUSTOM": {
                "DeliveryUri": "https://crm.example.com/hook",
                "EndpointTypes": ["CUSTOM", "SMS"],
                "MessageConfig": {"Data": "lead"},
                "NextActivity": "dial",
            }
        },
        "dial": {"ContactCenter": {}},
    }
    created = pinpoint.create_journey(
        ApplicationId=app_id,
        WriteJourneyRequest={
            "Name": "channels",
            "StartActivity": "text",
            "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
            "JourneyChannelSettings": {"ConnectCampaignArn": "https://cc.example.com/take"},
            "Activities": activities,
        },
    )["JourneyResponse"]
    got = pinpoint.get_journey(ApplicationId=app_id, JourneyId=created["Id"])["JourneyResponse"]
    assert got["Activities"] == activities
    assert got["JourneyChannelSettings"] == {"ConnectCampaignArn": "https://cc.example.com/take"}

    with pytest.raises(ClientError) as err:
        pinpoint.create_journey(
            ApplicationId=app_id,
            WriteJourneyRequest={
                "Name": "bad",
                "StartActivity": "crm",
                "Activities": {"crm": {"CUSTOM": {"DeliveryUri": "arn:aws:lambda:us-east-1:1:function:f"}}},
            },
        )
    assert err.value.response["Error"]["Code"] == "BadRequestException"
    assert "sojourn cannot call AWS Lambda" in err.value.response["Error"]["Message"]
