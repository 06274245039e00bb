"""SMS, push and voice templates, ListTemplates and ListTemplateVersions through a real boto3 client over HTTP."""

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
        pinpoint.list_templates(TemplateType="INAPP")
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
