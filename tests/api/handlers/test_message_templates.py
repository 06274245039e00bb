"""SMS, push, voice and in-app templates, ListTemplates and ListTemplateVersions through a real boto3 client over HTTP."""

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


def _error(err: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def test_sms_template_versions_round_trip(pinpoint: Any) -> None:
    name = unique("sms-")
    created = pinpoint.create_sms_template(
        TemplateName=name,
        SMSTemplateRequest={
            "Body": "Hi {{User.UserAttributes.FirstName}}",
            "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "there"}',
            "TemplateDescription": "greeting",
            "tags": {"team": "a"},
        },
    )
    assert created["CreateTemplateMessageBody"]["Arn"].endswith(f"templates/{name}/SMS")
    got = pinpoint.get_sms_template(TemplateName=name)["SMSTemplateResponse"]
    assert (got["Body"], got["Version"], got["TemplateType"], got["tags"]) == (
        "Hi {{User.UserAttributes.FirstName}}",
        "1",
        "SMS",
        {"team": "a"},
    )
    pinpoint.update_sms_template(
        TemplateName=name, CreateNewVersion=True, SMSTemplateRequest={"Body": "Version two"}
    )
    # A new version is not active until made so.
    assert pinpoint.get_sms_template(TemplateName=name)["SMSTemplateResponse"]["Version"] == "1"
    pinpoint.update_template_active_version(
        TemplateName=name, TemplateType="SMS", TemplateActiveVersionRequest={"Version": "latest"}
    )
    active = pinpoint.get_sms_template(TemplateName=name)["SMSTemplateResponse"]
    assert (active["Version"], active["Body"]) == ("2", "Version two")
    versions = pinpoint.list_template_versions(TemplateName=name, TemplateType="SMS")
    assert [v["Version"] for v in versions["TemplateVersionsResponse"]["Item"]] == ["1", "2"]
    pinpoint.delete_sms_template(TemplateName=name, Version="2")
    assert pinpoint.get_sms_template(TemplateName=name)["SMSTemplateResponse"]["Version"] == "1"
    pinpoint.delete_sms_template(TemplateName=name)
    with pytest.raises(ClientError) as err:
        pinpoint.get_sms_template(TemplateName=name)
    assert _error(err)[0] == "NotFoundException"


def test_push_and_voice_templates(pinpoint: Any) -> None:
    push = unique("push-")
    pinpoint.create_push_template(
        TemplateName=push,
        PushNotificationTemplateRequest={
            "Default": {"Title": "Hello", "Body": "Hi {{Attributes.Name}}", "Action": "OPEN_APP"},
            "APNS": {"Body": "Apple {{Attributes.Name}}", "Sound": "default"},
            "GCM": {"RawContent": '{"data": {"name": "{{Attributes.Name}}"}}'},
        },
    )
    got = pinpoint.get_push_template(TemplateName=push)["PushNotificationTemplateResponse"]
    assert got["Default"]["Action"] == "OPEN_APP"
    assert got["APNS"] == {"Body": "Apple {{Attributes.Name}}", "Sound": "default"}
    assert got["TemplateType"] == "PUSH"

    voice = unique("voice-")
    pinpoint.create_voice_template(
        TemplateName=voice,
        VoiceTemplateRequest={
            "Body": "Your code is {{Attributes.Code}}",
            "LanguageCode": "en-US",
            "VoiceId": "Joanna",
        },
    )
    pinpoint.update_voice_template(
        TemplateName=voice,
        Version="1",
        VoiceTemplateRequest={"Body": "Code {{Attributes.Code}}", "VoiceId": "Matthew"},
    )
    got_voice = pinpoint.get_voice_template(TemplateName=voice)["VoiceTemplateResponse"]
    assert (got_voice["Body"], got_voice["VoiceId"], got_voice["Version"]) == (
        "Code {{Attributes.Code}}",
        "Matthew",
        "1",
    )
    # The same name may exist for another type: templates are keyed by name and type.
    pinpoint.create_sms_template(TemplateName=voice, SMSTemplateRequest={"Body": "sms"})
    assert pinpoint.get_sms_template(TemplateName=voice)["SMSTemplateResponse"]["Body"] == "sms"


def test_list_templates_filters_and_pages(pinpoint: Any) -> None:
    prefix = unique("lst")
    for i in range(3):
        pinpoint.create_sms_template(TemplateName=f"{prefix}-s{i}", SMSTemplateRequest={"Body": f"s{i}"})
    pinpoint.create_voice_template(
        TemplateName=f"{prefix}-v", VoiceTemplateRequest={"Body": "v", "TemplateDescription": "voice one"}
    )
    everything = pinpoint.list_templates(Prefix=prefix)["TemplatesResponse"]["Item"]
    assert [(t["TemplateName"], t["TemplateType"]) for t in everything] == [
        (f"{prefix}-s0", "SMS"),
        (f"{prefix}-s1", "SMS"),
        (f"{prefix}-s2", "SMS"),
        (f"{prefix}-v", "VOICE"),
    ]
    assert everything[3]["TemplateDescription"] == "voice one"
    first = pinpoint.list_templates(Prefix=prefix, TemplateType="SMS", PageSize="2")["TemplatesResponse"]
    assert [t["TemplateName"] for t in first["Item"]] == [f"{prefix}-s0", f"{prefix}-s1"]
    second = pinpoint.list_templates(
        Prefix=prefix, TemplateType="SMS", PageSize="2", NextToken=first["NextToken"]
    )["TemplatesResponse"]
    assert [t["TemplateName"] for t in second["Item"]] == [f"{prefix}-s2"]
    assert "NextToken" not in second
    with pytest.raises(ClientError) as err:
        pinpoint.list_templates(TemplateType="INBOX")
    assert _error(err)[0] == "BadRequestException"


@pytest.mark.parametrize(
    ("call", "request_", "expected"),
    [
        ("create_sms_template", {"SMSTemplateRequest": {"Body": "Hi {{#if x}}"}}, "SMSTemplateRequest.Body"),
        ("create_sms_template", {"SMSTemplateRequest": {}}, "SMSTemplateRequest.Body is required"),
        ("create_sms_template", {"SMSTemplateRequest": {"Body": "x" * 1601}}, "at most 1600"),
        (
            "create_sms_template",
            {"SMSTemplateRequest": {"Body": "x", "DefaultSubstitutions": "[1]"}},
            "DefaultSubstitutions",
        ),
        (
            "create_push_template",
            {"PushNotificationTemplateRequest": {"Default": {"Sound": "x"}}},
            "needs a message",
        ),
        (
            "create_push_template",
            {"PushNotificationTemplateRequest": {"GCM": {"Body": "{{"}}},
            "PushNotificationTemplateRequest.GCM.Body",
        ),
        ("create_voice_template", {"VoiceTemplateRequest": {"Body": "{{/if}}"}}, "VoiceTemplateRequest.Body"),
    ],
)
def test_bad_templates_are_refused(pinpoint: Any, call: str, request_: dict[str, Any], expected: str) -> None:
    with pytest.raises(ClientError) as err:
        getattr(pinpoint, call)(TemplateName=unique("bad-"), **request_)
    code, message = _error(err)
    assert code == "BadRequestException"
    assert expected in message


def test_missing_and_duplicate_templates(pinpoint: Any) -> None:
    name = unique("dup-")
    pinpoint.create_push_template(
        TemplateName=name, PushNotificationTemplateRequest={"Default": {"Body": "b"}}
    )
    with pytest.raises(ClientError) as err:
        pinpoint.create_push_template(
            TemplateName=name, PushNotificationTemplateRequest={"Default": {"Body": "b"}}
        )
    assert _error(err)[0] == "BadRequestException"
    with pytest.raises(ClientError) as err:
        pinpoint.update_voice_template(TemplateName=unique("none-"), VoiceTemplateRequest={"Body": "b"})
    assert _error(err)[0] == "NotFoundException"
    with pytest.raises(ClientError) as err:
        pinpoint.list_template_versions(TemplateName=unique("none-"), TemplateType="PUSH")
    assert _error(err)[0] == "NotFoundException"
    with pytest.raises(ClientError) as err:
        pinpoint.update_template_active_version(
            TemplateName=name, TemplateType="PUSH", TemplateActiveVersionRequest={"Version": "7"}
        )
    assert _error(err)[0] == "NotFoundException"


BANNER = {
    "Layout": "TOP_BANNER",
    "Content": [{"BodyConfig": {"Alignment": "LEFT", "Body": "Spring sale", "TextColor": "#000000"}}],
    "CustomConfig": {"deep_link": "app://sale"},
    "TemplateDescription": "sale banner",
}


def test_in_app_template_versions_round_trip(pinpoint: Any) -> None:
    name = unique("inapp-")
    created = pinpoint.create_in_app_template(
        TemplateName=name, InAppTemplateRequest={**BANNER, "tags": {"team": "growth"}}
    )
    assert created["TemplateCreateMessageBody"]["Arn"].endswith(f"templates/{name}/INAPP")
    got = pinpoint.get_in_app_template(TemplateName=name)["InAppTemplateResponse"]
    assert (got["Layout"], got["Version"], got["TemplateType"], got["tags"]) == (
        "TOP_BANNER",
        "1",
        "INAPP",
        {"team": "growth"},
    )
    assert got["Content"][0]["BodyConfig"]["Body"] == "Spring sale"
    assert got["CustomConfig"] == {"deep_link": "app://sale"}
    second = {**BANNER, "Layout": "BOTTOM_BANNER"}
    pinpoint.update_in_app_template(TemplateName=name, CreateNewVersion=True, InAppTemplateRequest=second)
    assert pinpoint.get_in_app_template(TemplateName=name)["InAppTemplateResponse"]["Layout"] == "TOP_BANNER"
    assert (
        pinpoint.get_in_app_template(TemplateName=name, Version="2")["InAppTemplateResponse"]["Layout"]
        == "BOTTOM_BANNER"
    )
    listed = pinpoint.list_templates(Prefix=name, TemplateType="INAPP")["TemplatesResponse"]["Item"]
    assert [(t["TemplateName"], t["TemplateType"]) for t in listed] == [(name, "INAPP")]
    versions = pinpoint.list_template_versions(TemplateName=name, TemplateType="INAPP")
    assert [v["Version"] for v in versions["TemplateVersionsResponse"]["Item"]] == ["1", "2"]
    pinpoint.delete_in_app_template(TemplateName=name)
    with pytest.raises(ClientError) as err:
        pinpoint.get_in_app_template(TemplateName=name)
    assert _error(err) == ("NotFoundException", f"In-app template {name} not found")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"Layout": "TOP_BANNER"}, "InAppTemplateRequest.Content needs at least one message"),
        ({**BANNER, "Layout": "POPUP"}, "InAppTemplateRequest.Layout: 'POPUP' is not a valid value"),
        ({**BANNER, "Content": BANNER["Content"] * 6}, "InAppTemplateRequest.Content has at most 5 messages"),
    ],
)
def test_bad_in_app_templates_are_refused(pinpoint: Any, request_: dict[str, Any], expected: str) -> None:
    with pytest.raises(ClientError) as err:
        pinpoint.create_in_app_template(TemplateName=unique("bad-"), InAppTemplateRequest=request_)
    code, message = _error(err)
    assert code == "BadRequestException" and expected in message
