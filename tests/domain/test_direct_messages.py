"""The pure rules of direct sends: request checks, per-channel content, substitution precedence, results."""

from __future__ import annotations

from typing import Any

import pytest

from sojourn.api.errors import BadRequestError
from sojourn.domain.direct_messages import (
    ContentError,
    Recipient,
    check_request,
    email_content,
    message_id,
    provider_content,
    result_entry,
    skip_result,
    template_message,
)


def recipient(channel_type: str, **overrides: Any) -> Recipient:
    return Recipient("addr", channel_type, "addr", None, overrides)


def test_check_request_accepts_a_good_request() -> None:
    check_request({}, None, addresses={"+1": {"ChannelType": "SMS"}}, recipients=1, what="Addresses")


@pytest.mark.parametrize(("config", "templates", "addresses", "count", "message"), [
    ({}, None, {}, 0, "names no recipients"),
    ({}, None, {}, 101, "at most 100"),
    ({}, None, {" ": {"ChannelType": "SMS"}}, 1, "empty address key"),
    ({}, None, {"x": {}}, 1, "ChannelType is required"),
    ({}, None, {"x": {"ChannelType": "IN_APP"}}, 1, "cannot be sent to directly"),
    ({}, {"InAppTemplate": {"Name": "t"}}, {"x": {"ChannelType": "GCM"}}, 1, "InAppTemplate: in-app messages"),
    ({"EmailMessage": {"RawEmail": {"Data": "eA=="}}}, None, {"x": {"ChannelType": "EMAIL"}}, 1, "RawEmail"),
])  # fmt: skip
def test_check_request_errors(
    config: dict[str, Any],
    templates: dict[str, Any] | None,
    addresses: dict[str, Any],
    count: int,
    message: str,
) -> None:
    with pytest.raises(BadRequestError, match=message):
        check_request(config, templates, addresses=addresses, recipients=count, what="Addresses")


def test_message_ids_are_deterministic_per_request_and_recipient() -> None:
    assert message_id("a", "r1", "address", "+1") == message_id("a", "r1", "address", "+1")
    assert message_id("a", "r1", "address", "+1") != message_id("a", "r2", "address", "+1")
    assert message_id("a", "r1", "address", "+1") != message_id("a", "r1", "endpoint", "+1")


def test_sms_content_and_substitution_precedence() -> None:
    config = {
        "DefaultMessage": {"Body": "default"},
        "SMSMessage": {
            "Body": "{{a}} {{b}}",
            "Substitutions": {"a": ["msg-a"], "b": ["msg-b"]},
            "SenderId": "S",
        },
    }
    content = provider_content(recipient("SMS", Substitutions={"b": ["mine"]}), config)
    assert content == {"Body": "msg-a mine", "SenderId": "S"}


def test_overrides_win_over_the_message() -> None:
    config = {"GCMMessage": {"Title": "t", "Body": "b", "RawContent": "{}"}}
    content = provider_content(
        recipient("GCM", BodyOverride="B", TitleOverride="T", RawContent='{"x":1}'), config
    )
    assert content == {"Title": "T", "Body": "B", "RawContent": '{"x":1}'}


@pytest.mark.parametrize(("channel_type", "expected"), [
    ("GCM", {"Title": "d", "Body": "gcm", "Sound": "ding"}),
    ("APNS_SANDBOX", {"Title": "d", "Body": "apns", "Sound": "ding"}),
    ("BAIDU", {"Title": "d", "Body": "push default", "Sound": "ding"}),
    ("ADM", {"Title": "d", "Body": "push default", "Sound": "ding"}),
])  # fmt: skip
def test_push_picks_the_service_message_over_the_default(channel_type: str, expected: dict[str, Any]) -> None:
    config = {
        "DefaultPushNotificationMessage": {"Title": "d", "Body": "push default", "Sound": "ding"},
        "GCMMessage": {"Body": "gcm"},
        "APNSMessage": {"Body": "apns"},
    }
    assert provider_content(recipient(channel_type), config) == expected


def test_endpoint_variables_render_from_the_endpoint() -> None:
    r = Recipient("ep", "VOICE", "+1", {"id": "ep"}, {})
    view = {"Id": "ep", "Attributes": {"plan": ["pro"]}, "User": {"UserAttributes": {"FirstName": ["Ada"]}}}
    content = provider_content(
        r, {"VoiceMessage": {"Body": "{{User.UserAttributes.FirstName}} {{Attributes.plan}}"}}, view
    )
    assert content == {"Body": "Ada pro"}


def test_silent_push_needs_no_body() -> None:
    assert provider_content(recipient("APNS"), {"APNSMessage": {"SilentPush": True}}) == {"SilentPush": True}


@pytest.mark.parametrize(("channel_type", "field"), [
    ("SMS", "SMSMessage.Body"), ("VOICE", "VoiceMessage.Body"), ("GCM", "GCMMessage.Body"), ("CUSTOM", "DefaultMessage.Body"),
])  # fmt: skip
def test_missing_body(channel_type: str, field: str) -> None:
    with pytest.raises(ContentError, match=f"set MessageConfiguration.{field}"):
        provider_content(recipient(channel_type), {})


def test_broken_variable() -> None:
    with pytest.raises(ContentError, match="does not compile"):
        provider_content(recipient("SMS"), {"SMSMessage": {"Body": "{{#if}}"}})


def test_email_content_sources() -> None:
    template = {"Subject": "s", "TextPart": "t", "DefaultSubstitutions": '{"x": "y"}'}
    assert (
        email_content({}, template) is not None
        and email_content({}, template).default_substitutions == '{"x": "y"}'
    )  # type: ignore[union-attr]
    simple = email_content(
        {"EmailMessage": {"SimpleEmail": {"Subject": {"Data": "Hi"}, "HtmlPart": {"Data": "<p/>"}}}}, None
    )
    assert simple is not None and simple.template == {"Subject": "Hi", "HtmlPart": "<p/>", "TextPart": None}
    body = email_content({"DefaultMessage": {"Body": "plain"}}, None)
    assert body is not None and body.template == {"Subject": "", "TextPart": "plain"}
    assert email_content({}, None) is None


@pytest.mark.parametrize(("reason", "status", "code"), [
    ("ENDPOINT_MISSING", "PERMANENT_FAILURE", 404), ("ENDPOINT_OPT_OUT", "OPT_OUT", 400),
    ("ADDRESS_OPT_OUT", "OPT_OUT", 400), ("SUPPRESSED", "OPT_OUT", 400), ("ENDPOINT_INACTIVE", "PERMANENT_FAILURE", 400),
    ("DUPLICATE", "DUPLICATE", 200), ("SOMETHING_NEW", "PERMANENT_FAILURE", 400),
])  # fmt: skip
def test_skip_results(reason: str, status: str, code: int) -> None:
    assert skip_result(reason)[:2] == (status, code)


def test_result_entry() -> None:
    assert result_entry("SUCCESSFUL", 200, "ok", message_id="m", address="+1", updated_token="t") == {
        "DeliveryStatus": "SUCCESSFUL", "StatusCode": 200, "StatusMessage": "ok",
        "MessageId": "m", "Address": "+1", "UpdatedToken": "t",
    }  # fmt: skip
    assert result_entry("OPT_OUT", 400, "no") == {
        "DeliveryStatus": "OPT_OUT",
        "StatusCode": 400,
        "StatusMessage": "no",
    }


def test_a_channel_template_is_the_base_the_request_message_overrides() -> None:
    push = {
        "Default": {"Title": "Hi {{name}}", "Body": "default"},
        "APNS": {"Body": "apple", "Sound": "ping"},
    }
    assert template_message("APNS_SANDBOX", push) == {
        "Title": "Hi {{name}}",
        "Body": "apple",
        "Sound": "ping",
    }
    assert template_message("GCM", push) == {"Title": "Hi {{name}}", "Body": "default"}
    assert template_message("VOICE", {"Body": "b", "LanguageCode": "en-US", "VoiceId": "Joanna"}) == {
        "Body": "b",
        "LanguageCode": "en-US",
        "VoiceId": "Joanna",
    }
    recipient = Recipient("+1555", "SMS", "+1555", None, {"Substitutions": {"name": ["Ann"]}})
    content = provider_content(
        recipient,
        {"SMSMessage": {"SenderId": "ACME"}},
        template={"Body": "Hi {{name}} {{code}}", "DefaultSubstitutions": '{"code": "0", "name": "x"}'},
    )
    assert content == {"Body": "Hi Ann 0", "SenderId": "ACME"}
    overridden = provider_content(
        recipient, {"SMSMessage": {"Body": "own {{name}}"}}, template={"Body": "template"}
    )
    assert overridden == {"Body": "own Ann"}
