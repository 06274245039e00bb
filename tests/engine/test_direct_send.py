"""Direct sends under pressure: the priority lane, and a provider that is not configured."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.errors import NotFoundError
from sojourn.api.state import AppState
from sojourn.channels.email import OutgoingEmail
from sojourn.channels.priority import Lane
from sojourn.channels.senders import SendLanes
from sojourn.settings import Settings
from tests.api.handlers import call, new_app
from tests.support.helpers import assert_eventually
from tests.support.smtp_pressure import PressureSmtpSink

BACKGROUND = 5000


def bulk_email(i: int) -> OutgoingEmail:
    return OutgoingEmail(
        message_id=f"bulk-{uuid.uuid4().hex}",
        from_address="news@sojourn.test",
        to_address=f"reader{i}@example.com",
        subject="newsletter",
        html=None,
        text="news",
    )


async def test_a_transactional_send_completes_while_a_large_blast_is_in_progress(
    db: AsyncEngine, tmp_path: Path
) -> None:
    sink = PressureSmtpSink(delay=0.05)  # a slow relay: the blast takes far longer than one message
    sink.start()
    settings = Settings(smtp_url=sink.url, data_dir=tmp_path, smtp_max_rate=100000)
    lanes = SendLanes(settings)
    state = AppState(db=db, settings=settings)
    state.use_send_lanes(lanes)
    app_id = await new_app(state)
    await call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "hello@sojourn.test", "Identity": "sojourn.test"},
    )

    async def ignore(_ids: Sequence[str]) -> None:
        pass

    blast = asyncio.create_task(
        lanes.email(Lane.BULK).send_batch([bulk_email(i) for i in range(BACKGROUND)], ignore)
    )
    try:

        async def blast_running() -> None:
            assert len(sink.messages) >= 16

        await assert_eventually(blast_running, timeout=60)

        response = await call(
            state,
            "SendMessages",
            ApplicationId=app_id,
            MessageRequest={
                "Addresses": {"vip@example.com": {"ChannelType": "EMAIL"}},
                "MessageConfiguration": {
                    "EmailMessage": {
                        "SimpleEmail": {"Subject": {"Data": "Your code"}, "TextPart": {"Data": "1234"}}
                    }
                },
            },
        )

        result = response["MessageResponse"]["Result"]["vip@example.com"]
        assert result["DeliveryStatus"] == "SUCCESSFUL"
        assert [m.subject for m in sink.to("vip@example.com")] == ["Your code"]
        # The blast is still going: the transactional message did not wait for it.
        assert not blast.done() and len(sink.messages) < BACKGROUND
    finally:
        blast.cancel()
        await asyncio.gather(blast, return_exceptions=True)
        await lanes.close()
        sink.stop()


async def test_a_channel_without_a_provider_answers_a_clear_failure(db: AsyncEngine, tmp_path: Path) -> None:
    state = AppState(db=db, settings=Settings(data_dir=tmp_path))
    app_id = await new_app(state)
    await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": True})

    response = await call(
        state,
        "SendMessages",
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {"+12065550100": {"ChannelType": "SMS"}, "token": {"ChannelType": "CUSTOM"}},
            "MessageConfiguration": {"DefaultMessage": {"Body": "hi"}},
        },
    )

    results = response["MessageResponse"]["Result"]
    for address, channel in (("+12065550100", "SMS"), ("token", "CUSTOM")):
        assert results[address]["DeliveryStatus"] == "PERMANENT_FAILURE"
        assert (
            f"no {channel} provider is configured: set SOJOURN_{channel}_PROVIDER_URL"
            in results[address]["StatusMessage"]
        )


async def test_an_unreachable_relay_is_a_temporary_failure(db: AsyncEngine, tmp_path: Path) -> None:
    from tests.support.helpers import free_port

    state = AppState(db=db, settings=Settings(data_dir=tmp_path, smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    app_id = await new_app(state)
    await call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "hello@sojourn.test", "Identity": "sojourn.test"},
    )
    try:
        response = await call(
            state,
            "SendMessages",
            ApplicationId=app_id,
            MessageRequest={
                "Addresses": {"a@example.com": {"ChannelType": "EMAIL"}},
                "MessageConfiguration": {
                    "EmailMessage": {"SimpleEmail": {"Subject": {"Data": "s"}, "TextPart": {"Data": "t"}}}
                },
            },
        )
    finally:
        await state.send_lanes.close()
    result = response["MessageResponse"]["Result"]["a@example.com"]
    assert result["DeliveryStatus"] == "TEMPORARY_FAILURE" and result["StatusCode"] == 503
    assert "the EMAIL transport failed" in result["StatusMessage"]


async def test_sms_push_and_voice_through_the_file_provider(db: AsyncEngine, tmp_path: Path) -> None:
    import json

    settings = Settings(
        data_dir=tmp_path,
        sms_provider_url="file://",
        push_provider_url="file://",
        voice_provider_url="file://",
    )
    state = AppState(db=db, settings=settings)
    app_id = await new_app(state)
    await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
    await call(state, "UpdateVoiceChannel", ApplicationId=app_id, VoiceChannelRequest={"Enabled": True})
    await call(
        state,
        "UpdateApnsChannel",
        ApplicationId=app_id,
        APNSChannelRequest={"Certificate": "c", "PrivateKey": "k"},
    )

    response = await call(
        state,
        "SendMessages",
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {
                "+12065550123": {"ChannelType": "SMS"},
                "apns-token": {"ChannelType": "APNS"},
                "+12065550124": {"ChannelType": "VOICE"},
            },
            "MessageConfiguration": {
                "DefaultMessage": {"Body": "hello"},
                "APNSMessage": {"Body": "push", "Badge": 2},
            },
        },
    )

    results = response["MessageResponse"]["Result"]
    assert {r["DeliveryStatus"] for r in results.values()} == {"SUCCESSFUL"}
    for name, address, message in (
        ("sms-messages.jsonl", "+12065550123", {"Body": "hello"}),
        ("push-messages.jsonl", "apns-token", {"Body": "push", "Badge": 2}),
        ("voice-messages.jsonl", "+12065550124", {"Body": "hello"}),
    ):
        [line] = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        assert line["Address"] == address and line["Message"] == message
        assert line["MessageId"] == results[address]["MessageId"]


async def test_sms_push_and_voice_templates_in_send_messages(db: AsyncEngine, tmp_path: Path) -> None:
    import json

    settings = Settings(
        data_dir=tmp_path,
        sms_provider_url="file://",
        push_provider_url="file://",
        voice_provider_url="file://",
    )
    state = AppState(db=db, settings=settings)
    app_id = await new_app(state)
    await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
    await call(state, "UpdateVoiceChannel", ApplicationId=app_id, VoiceChannelRequest={"Enabled": True})
    await call(state, "UpdateGcmChannel", ApplicationId=app_id, GCMChannelRequest={"ApiKey": "k"})
    names = {kind: f"direct-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("sms", "push", "voice")}
    await call(
        state,
        "CreateSmsTemplate",
        TemplateName=names["sms"],
        SMSTemplateRequest={
            "Body": "Code {{code}} for {{name}}",
            "DefaultSubstitutions": '{"name": "friend", "code": "0000"}',
        },
    )
    await call(
        state,
        "CreatePushTemplate",
        TemplateName=names["push"],
        PushNotificationTemplateRequest={
            "Default": {"Title": "Hello {{name}}", "Body": "default"},
            "GCM": {"Body": "Android {{code}}"},
        },
    )
    await call(
        state,
        "CreateVoiceTemplate",
        TemplateName=names["voice"],
        VoiceTemplateRequest={"Body": "Your code is {{code}}", "LanguageCode": "en-US", "VoiceId": "Joanna"},
    )

    response = await call(
        state,
        "SendMessages",
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {
                "+12065550123": {"ChannelType": "SMS", "Substitutions": {"code": ["4242"]}},
                "gcm-token": {"ChannelType": "GCM", "Substitutions": {"code": ["77"], "name": ["Ann"]}},
                "+12065550124": {"ChannelType": "VOICE", "Substitutions": {"code": ["9"]}},
            },
            "MessageConfiguration": {"SMSMessage": {"MessageType": "TRANSACTIONAL"}},
            "TemplateConfiguration": {
                "SMSTemplate": {"Name": names["sms"]},
                "PushTemplate": {"Name": names["push"]},
                "VoiceTemplate": {"Name": names["voice"], "Version": "1"},
            },
        },
    )

    results = response["MessageResponse"]["Result"]
    assert {r["DeliveryStatus"] for r in results.values()} == {"SUCCESSFUL"}, results
    for name, address, message in (
        (
            "sms-messages.jsonl",
            "+12065550123",
            {"Body": "Code 4242 for friend", "MessageType": "TRANSACTIONAL"},
        ),
        ("push-messages.jsonl", "gcm-token", {"Title": "Hello Ann", "Body": "Android 77"}),
        (
            "voice-messages.jsonl",
            "+12065550124",
            {"Body": "Your code is 9", "LanguageCode": "en-US", "VoiceId": "Joanna"},
        ),
    ):
        [line] = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        assert line["Address"] == address and line["Message"] == message


async def test_an_unknown_sms_template_is_not_found(db: AsyncEngine, tmp_path: Path) -> None:
    state = AppState(db=db, settings=Settings(data_dir=tmp_path, sms_provider_url="file://"))
    app_id = await new_app(state)
    with pytest.raises(
        NotFoundError, match="SMS template 'no-such-sms' not found; create it with CreateSmsTemplate"
    ):
        await call(
            state,
            "SendMessages",
            ApplicationId=app_id,
            MessageRequest={
                "Addresses": {"+12065550123": {"ChannelType": "SMS"}},
                "TemplateConfiguration": {"SMSTemplate": {"Name": "no-such-sms"}},
            },
        )
