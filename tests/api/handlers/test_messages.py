"""SendMessages and SendUsersMessages with a real boto3 client over HTTP, real SMTP and a real webhook provider."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.direct_stack import DirectStack, direct_stack


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[DirectStack]:
    with direct_stack(database_url) as running:
        yield running


@pytest.fixture
def pinpoint(stack: DirectStack) -> Any:
    return stack.pinpoint()


def new_app(pinpoint: Any, *, sms: bool | None = True, voice: bool = True) -> str:
    """An app with email, push (GCM, APNS) and, as asked, SMS and voice channels."""
    app_id: str = pinpoint.create_app(CreateApplicationRequest={"Name": "direct"})["ApplicationResponse"][
        "Id"
    ]
    pinpoint.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest={
            "FromAddress": "hello@sojourn.test",
            "Identity": "sojourn.test",
            "Enabled": True,
        },
    )
    if sms is not None:
        pinpoint.update_sms_channel(
            ApplicationId=app_id, SMSChannelRequest={"Enabled": sms, "SenderId": "Sojourn"}
        )
    if voice:
        pinpoint.update_voice_channel(ApplicationId=app_id, VoiceChannelRequest={"Enabled": True})
    pinpoint.update_gcm_channel(
        ApplicationId=app_id, GCMChannelRequest={"ApiKey": "fcm-key", "Enabled": True}
    )
    pinpoint.update_apns_channel(
        ApplicationId=app_id,
        APNSChannelRequest={"Certificate": "cert", "PrivateKey": "key", "Enabled": True},
    )
    return app_id


def phone() -> str:
    return "+1206" + str(uuid.uuid4().int)[:7]


async def ledger(db: AsyncEngine, message_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT m.*, d.provider_message_id, d.delivery_status, d.request_id, d.trace_id, d.context "
                    "FROM messages m LEFT JOIN message_deliveries d USING (message_id) WHERE m.message_id = :m"
                ),
                {"m": message_id},
            )
        ).one()
    return dict(row._mapping)


async def test_send_to_addresses_on_every_channel(stack: DirectStack, pinpoint: Any, db: AsyncEngine) -> None:
    app_id = new_app(pinpoint)
    sms, voice, mail = phone(), phone(), f"{uuid.uuid4().hex[:8]}@example.com"
    response = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {
                sms: {"ChannelType": "SMS", "Substitutions": {"Code": ["4242"]}},
                voice: {"ChannelType": "VOICE"},
                mail: {"ChannelType": "EMAIL", "Substitutions": {"Name": ["Ada"]}},
                "gcm-token": {"ChannelType": "GCM", "TitleOverride": "Psst"},
                "apns-token": {"ChannelType": "APNS"},
                "custom-1": {"ChannelType": "CUSTOM"},
            },
            "Context": {"order": "o-1"},
            "TraceId": "trace-7",
            "MessageConfiguration": {
                "DefaultMessage": {"Body": "Default for {{Name}}", "Substitutions": {"Name": ["there"]}},
                "SMSMessage": {"Body": "Your code is {{Code}}", "MessageType": "TRANSACTIONAL"},
                "VoiceMessage": {"Body": "Your code is one two three", "LanguageCode": "en-US"},
                "GCMMessage": {"Title": "Hello", "Body": "From FCM", "Data": {"k": "v"}},
                "DefaultPushNotificationMessage": {"Title": "Default title", "Body": "Default push"},
                "EmailMessage": {
                    "SimpleEmail": {
                        "Subject": {"Data": "Hello {{Name}}"},
                        "TextPart": {"Data": "Text for {{Name}}"},
                        "HtmlPart": {"Data": "<p>Html for {{Name}}</p>"},
                    }
                },
            },
        },
    )["MessageResponse"]

    assert response["ApplicationId"] == app_id and response["RequestId"]
    results = response["Result"]
    assert set(results) == {sms, voice, mail, "gcm-token", "apns-token", "custom-1"}
    for result in results.values():
        assert result["DeliveryStatus"] == "SUCCESSFUL" and result["StatusCode"] == 200
        assert result["StatusMessage"] == f"MessageId: {result['MessageId']}"
    assert "EndpointResult" not in response

    [sms_delivery] = stack.webhook.delivered_to(sms)
    assert sms_delivery.path == "/sms" and sms_delivery.key == results[sms]["MessageId"]
    assert sms_delivery.payload["Message"] == {"Body": "Your code is 4242", "MessageType": "TRANSACTIONAL"}
    assert (
        sms_delivery.payload["Context"] == {"order": "o-1"} and sms_delivery.payload["TraceId"] == "trace-7"
    )
    [voice_delivery] = stack.webhook.delivered_to(voice)
    assert voice_delivery.path == "/voice"
    assert voice_delivery.payload["Message"] == {
        "Body": "Your code is one two three",
        "LanguageCode": "en-US",
    }
    [gcm] = stack.webhook.delivered_to("gcm-token")
    assert gcm.path == "/push" and gcm.payload["ChannelType"] == "GCM"
    assert gcm.payload["Message"] == {"Title": "Psst", "Body": "From FCM", "Data": {"k": "v"}}
    [apns] = stack.webhook.delivered_to("apns-token")
    assert apns.payload["ChannelType"] == "APNS"
    assert apns.payload["Message"] == {"Title": "Default title", "Body": "Default push"}
    [received] = stack.smtp.to(mail)
    assert received.subject == "Hello Ada" and received.text().strip() == "Text for Ada"
    assert "Html for Ada" in received.html()
    assert received.message_id.startswith(f"<{results[mail]['MessageId']}@")
    lines = [json.loads(line) for line in (stack.data_dir / "custom.jsonl").read_text().splitlines()]
    [custom] = [line for line in lines if line["Address"] == "custom-1"]
    assert (
        custom["Message"] == {"Body": "Default for there"}
        and custom["MessageId"] == results["custom-1"]["MessageId"]
    )

    row = await ledger(db, results[sms]["MessageId"])
    assert row["status"] == "sent" and row["journey_id"] is None and row["campaign_id"] is None
    assert row["channel"] == "SMS" and row["address"] == sms and row["endpoint_id"] == ""
    assert row["provider_message_id"] == sms_delivery.provider_message_id
    assert row["delivery_status"] == "SUCCESSFUL" and row["trace_id"] == "trace-7"
    assert row["context"] == {"order": "o-1"} and row["request_id"] == response["RequestId"]
    assert (await ledger(db, results[mail]["MessageId"]))["status"] == "sent"


async def test_send_to_endpoints_follows_reachability(
    stack: DirectStack, pinpoint: Any, db: AsyncEngine
) -> None:
    app_id = new_app(pinpoint)
    number, shared = phone(), phone()
    pinpoint.update_endpoints_batch(
        ApplicationId=app_id,
        EndpointBatchRequest={
            "Item": [
                {
                    "Id": "ok",
                    "ChannelType": "SMS",
                    "Address": number,
                    "User": {"UserAttributes": {"FirstName": ["Ada"]}},
                },
                {"Id": "opted-out", "ChannelType": "SMS", "Address": phone(), "OptOut": "ALL"},
                {"Id": "old", "ChannelType": "SMS", "Address": shared},
                {"Id": "in-app", "ChannelType": "IN_APP", "Address": "x"},
            ]
        },
    )
    # The same address on a newer endpoint makes "old" INACTIVE.
    pinpoint.update_endpoint(
        ApplicationId=app_id, EndpointId="new", EndpointRequest={"ChannelType": "SMS", "Address": shared}
    )

    response = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Endpoints": {"ok": {}, "opted-out": {}, "old": {}, "ghost": {}, "in-app": {}},
            "MessageConfiguration": {"SMSMessage": {"Body": "Hi {{User.UserAttributes.FirstName}}"}},
        },
    )["MessageResponse"]

    results = response["EndpointResult"]
    assert results["ok"]["DeliveryStatus"] == "SUCCESSFUL" and results["ok"]["Address"] == number
    assert stack.webhook.delivered_to(number)[0].payload["Message"] == {"Body": "Hi Ada"}
    assert stack.webhook.delivered_to(number)[0].payload["EndpointId"] == "ok"
    assert results["opted-out"]["DeliveryStatus"] == "OPT_OUT" and results["opted-out"]["StatusCode"] == 400
    assert results["old"]["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert results["old"]["StatusMessage"] == "The endpoint is INACTIVE"
    assert results["ghost"] == {
        "DeliveryStatus": "PERMANENT_FAILURE",
        "StatusCode": 404,
        "StatusMessage": "Endpoint not found",
        "Address": "",
    }
    assert results["in-app"]["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert "cannot send to this ChannelType" in results["in-app"]["StatusMessage"]
    assert not stack.webhook.delivered_to(shared)
    skipped = await ledger(db, results["opted-out"]["MessageId"])
    assert skipped["status"] == "skipped" and skipped["status_message"] == "ENDPOINT_OPT_OUT"
    assert skipped["delivery_status"] == "OPT_OUT"
    assert (await ledger(db, results["ok"]["MessageId"]))["endpoint_id"] == "ok"


async def test_failures_duplicates_disabled_channels_and_updated_tokens(
    stack: DirectStack, pinpoint: Any, db: AsyncEngine
) -> None:
    app_id = new_app(pinpoint, sms=False, voice=False)
    number = phone()
    pinpoint.update_endpoint(
        ApplicationId=app_id, EndpointId="gcm", EndpointRequest={"ChannelType": "GCM", "Address": "dup-token"}
    )
    stack.webhook.status_for_address["bad-token"] = 400

    response = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {
                number: {"ChannelType": "SMS"},
                "+15550000000": {"ChannelType": "VOICE"},
                "bad-token": {"ChannelType": "GCM"},
                "token-to-refresh": {"ChannelType": "GCM"},
                "dup-token": {"ChannelType": "GCM"},
                "no-body": {"ChannelType": "CUSTOM"},
            },
            "Endpoints": {"gcm": {}},
            "MessageConfiguration": {
                "SMSMessage": {"Body": "x"},
                "VoiceMessage": {"Body": "x"},
                "GCMMessage": {"Body": "push"},
            },
        },
    )["MessageResponse"]

    results = response["Result"]
    assert results[number]["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert "SMS channel is disabled; enable it with UpdateSmsChannel" in results[number]["StatusMessage"]
    assert (
        "has no VOICE channel; set it up with UpdateVoiceChannel" in results["+15550000000"]["StatusMessage"]
    )
    bad = results["bad-token"]
    assert bad["DeliveryStatus"] == "PERMANENT_FAILURE" and bad["StatusCode"] == 400
    assert bad["StatusMessage"] == "refused with 400"
    assert (await ledger(db, bad["MessageId"]))["status"] == "failed"
    refreshed = results["token-to-refresh"]
    assert refreshed["DeliveryStatus"] == "SUCCESSFUL" and refreshed["UpdatedToken"] == "token-refreshed"
    assert results["dup-token"]["DeliveryStatus"] == "SUCCESSFUL"
    assert response["EndpointResult"]["gcm"]["DeliveryStatus"] == "DUPLICATE"
    assert len(stack.webhook.delivered_to("dup-token")) == 1
    assert results["no-body"]["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert "no message body for a CUSTOM recipient" in results["no-body"]["StatusMessage"]


async def test_send_users_messages(stack: DirectStack, pinpoint: Any) -> None:
    app_id = new_app(pinpoint)
    number, mail = phone(), f"{uuid.uuid4().hex[:8]}@example.com"
    user = {"UserId": "ada", "UserAttributes": {"FirstName": ["Ada"]}}
    pinpoint.update_endpoint(
        ApplicationId=app_id,
        EndpointId="ada-sms",
        EndpointRequest={"ChannelType": "SMS", "Address": number, "User": user},
    )
    pinpoint.update_endpoint(
        ApplicationId=app_id,
        EndpointId="ada-mail",
        EndpointRequest={"ChannelType": "EMAIL", "Address": mail, "User": user},
    )

    response = pinpoint.send_users_messages(
        ApplicationId=app_id,
        SendUsersMessageRequest={
            "Users": {"ada": {"Substitutions": {"Greeting": ["Howdy"]}}, "nobody": {}},
            "MessageConfiguration": {
                "SMSMessage": {"Body": "{{Greeting}} {{User.UserAttributes.FirstName}}"},
                "EmailMessage": {
                    "SimpleEmail": {"Subject": {"Data": "{{Greeting}}"}, "TextPart": {"Data": "Hi"}}
                },
            },
        },
    )["SendUsersMessageResponse"]

    assert response["ApplicationId"] == app_id
    ada = response["Result"]["ada"]
    assert set(ada) == {"ada-sms", "ada-mail"}
    assert ada["ada-sms"]["DeliveryStatus"] == "SUCCESSFUL" and ada["ada-sms"]["Address"] == number
    assert ada["ada-mail"]["DeliveryStatus"] == "SUCCESSFUL"
    assert response["Result"]["nobody"] == {}
    assert stack.webhook.delivered_to(number)[0].payload["Message"]["Body"] == "Howdy Ada"
    assert stack.smtp.to(mail)[0].subject == "Howdy"


async def test_email_template_send(stack: DirectStack, pinpoint: Any) -> None:
    app_id = new_app(pinpoint)
    name = f"direct-{uuid.uuid4().hex[:8]}"
    pinpoint.create_email_template(
        TemplateName=name,
        EmailTemplateRequest={
            "Subject": "Welcome {{User.UserAttributes.FirstName}}",
            "TextPart": "Hello {{User.UserAttributes.FirstName}}",
            "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "friend"}',
        },
    )
    mail = f"{uuid.uuid4().hex[:8]}@example.com"
    result = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {mail: {"ChannelType": "EMAIL"}},
            "MessageConfiguration": {},
            "TemplateConfiguration": {"EmailTemplate": {"Name": name}},
        },
    )["MessageResponse"]["Result"][mail]
    assert result["DeliveryStatus"] == "SUCCESSFUL"
    assert stack.smtp.to(mail)[0].subject == "Welcome friend"


@pytest.mark.parametrize(
    ("request_body", "error", "message"),
    [
        ({"MessageConfiguration": {}}, "BadRequestException", "names no recipients"),
        (
            {"Addresses": {"x": {"ChannelType": "IN_APP"}}, "MessageConfiguration": {}},
            "BadRequestException",
            "ChannelType IN_APP cannot be sent to directly",
        ),
        (
            {
                "Addresses": {f"+1555{i:07d}": {"ChannelType": "SMS"} for i in range(101)},
                "MessageConfiguration": {},
            },
            "BadRequestException",
            "101 recipients in Addresses or Endpoints; at most 100",
        ),
        (
            {"Addresses": {"+15550001": {}}, "MessageConfiguration": {}},
            "BadRequestException",
            r"Addresses\['\+15550001'\].ChannelType is required",
        ),
        (
            {
                "Addresses": {"+15550001": {"ChannelType": "SMS"}},
                "MessageConfiguration": {},
                "TemplateConfiguration": {"SMSTemplate": {"Name": "no-such-otp"}},
            },
            "NotFoundException",
            "SMS template 'no-such-otp' not found; create it with CreateSmsTemplate",
        ),
        (
            {
                "Addresses": {"+15550001": {"ChannelType": "SMS"}},
                "MessageConfiguration": {},
                "TemplateConfiguration": {"InAppTemplate": {"Name": "banner"}},
            },
            "BadRequestException",
            "in-app messages are not sent by SendMessages",
        ),
        (
            {
                "Addresses": {"a@example.com": {"ChannelType": "EMAIL"}},
                "MessageConfiguration": {"EmailMessage": {"RawEmail": {"Data": b"x"}}},
            },
            "BadRequestException",
            "RawEmail is not supported",
        ),
        (
            {
                "Addresses": {"a@example.com": {"ChannelType": "EMAIL"}},
                "MessageConfiguration": {},
                "TemplateConfiguration": {"EmailTemplate": {"Name": "no-such-template"}},
            },
            "NotFoundException",
            "email template 'no-such-template' not found",
        ),
        (
            {"Addresses": {"x": {"ChannelType": "FAX"}}, "MessageConfiguration": {}},
            "BadRequestException",
            "ChannelType",
        ),
    ],
)
def test_bad_requests(pinpoint: Any, request_body: dict[str, Any], error: str, message: str) -> None:
    app_id = new_app(pinpoint)
    with pytest.raises(getattr(pinpoint.exceptions, error), match=message):
        pinpoint.send_messages(ApplicationId=app_id, MessageRequest=request_body)


def test_unknown_app_and_bad_users(pinpoint: Any) -> None:
    with pytest.raises(pinpoint.exceptions.NotFoundException, match="Application nope not found"):
        pinpoint.send_messages(
            ApplicationId="nope",
            MessageRequest={"Addresses": {"+15550001": {"ChannelType": "SMS"}}, "MessageConfiguration": {}},
        )
    app_id = new_app(pinpoint)
    with pytest.raises(
        pinpoint.exceptions.BadRequestException, match="names no recipients: give at least one entry in Users"
    ):
        pinpoint.send_users_messages(
            ApplicationId=app_id, SendUsersMessageRequest={"Users": {}, "MessageConfiguration": {}}
        )


def test_channel_apis_over_boto3(pinpoint: Any) -> None:
    app_id = new_app(pinpoint)
    adm = pinpoint.update_adm_channel(
        ApplicationId=app_id, ADMChannelRequest={"ClientId": "c", "ClientSecret": "s"}
    )
    assert adm["ADMChannelResponse"]["Platform"] == "ADM" and "ClientSecret" not in adm["ADMChannelResponse"]
    baidu = pinpoint.update_baidu_channel(
        ApplicationId=app_id, BaiduChannelRequest={"ApiKey": "a", "SecretKey": "s"}
    )
    assert baidu["BaiduChannelResponse"]["Credential"] == "a"
    voip = pinpoint.update_apns_voip_sandbox_channel(
        ApplicationId=app_id, APNSVoipSandboxChannelRequest={"Certificate": "c", "PrivateKey": "k"}
    )
    assert voip["APNSVoipSandboxChannelResponse"]["HasTokenKey"] is False
    channels = pinpoint.get_channels(ApplicationId=app_id)["ChannelsResponse"]["Channels"]
    assert set(channels) == {"EMAIL", "SMS", "VOICE", "GCM", "APNS", "ADM", "BAIDU", "APNS_VOIP_SANDBOX"}
    assert pinpoint.get_sms_channel(ApplicationId=app_id)["SMSChannelResponse"]["SenderId"] == "Sojourn"
    pinpoint.delete_voice_channel(ApplicationId=app_id)
    with pytest.raises(pinpoint.exceptions.NotFoundException, match="has no VOICE channel"):
        pinpoint.get_voice_channel(ApplicationId=app_id)
    with pytest.raises(pinpoint.exceptions.BadRequestException, match="needs credentials"):
        pinpoint.update_apns_sandbox_channel(
            ApplicationId=app_id, APNSSandboxChannelRequest={"BundleId": "b"}
        )
