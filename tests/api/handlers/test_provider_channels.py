"""SMS, voice and push channel APIs through the handlers, against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.state import AppState
from tests.api.handlers import call, make_state, new_app


@pytest.fixture
def state(db: AsyncEngine) -> AppState:
    return make_state(db)


async def test_sms_channel_round_trip(state: AppState) -> None:
    app_id = await new_app(state)
    created = (
        await call(
            state,
            "UpdateSmsChannel",
            ApplicationId=app_id,
            SMSChannelRequest={"SenderId": "Sojourn", "Enabled": True},
        )
    )["SMSChannelResponse"]
    assert created["Platform"] == "SMS" and created["Id"] == "sms" and created["ApplicationId"] == app_id
    assert created["SenderId"] == "Sojourn" and created["Enabled"] is True and created["Version"] == 1
    assert created["TransactionalMessagesPerSecond"] > 0 and created["CreationDate"].endswith("Z")

    toggled = (
        await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": False})
    )["SMSChannelResponse"]
    assert toggled["Enabled"] is False and toggled["SenderId"] == "Sojourn" and toggled["Version"] == 2
    assert (await call(state, "GetSmsChannel", ApplicationId=app_id))["SMSChannelResponse"] == toggled

    deleted = await call(state, "DeleteSmsChannel", ApplicationId=app_id)
    assert deleted["SMSChannelResponse"]["SenderId"] == "Sojourn"
    with pytest.raises(
        NotFoundError, match=f"Application {app_id} has no SMS channel; create it with UpdateSmsChannel"
    ):
        await call(state, "GetSmsChannel", ApplicationId=app_id)
    with pytest.raises(NotFoundError, match="has no SMS channel"):
        await call(state, "DeleteSmsChannel", ApplicationId=app_id)


@pytest.mark.parametrize(("operation", "request_key", "response_key", "body", "platform"), [
    ("UpdateVoiceChannel", "VoiceChannelRequest", "VoiceChannelResponse", {"Enabled": True}, "VOICE"),
    ("UpdateGcmChannel", "GCMChannelRequest", "GCMChannelResponse", {"ApiKey": "k"}, "GCM"),
    ("UpdateApnsChannel", "APNSChannelRequest", "APNSChannelResponse", {"Certificate": "c", "PrivateKey": "p"}, "APNS"),
    ("UpdateApnsSandboxChannel", "APNSSandboxChannelRequest", "APNSSandboxChannelResponse",
     {"TokenKey": "t", "TokenKeyId": "i", "TeamId": "team", "BundleId": "b", "DefaultAuthenticationMethod": "TOKEN"},
     "APNS_SANDBOX"),
    ("UpdateApnsVoipChannel", "APNSVoipChannelRequest", "APNSVoipChannelResponse", {"Certificate": "c", "PrivateKey": "p"}, "APNS_VOIP"),
    ("UpdateApnsVoipSandboxChannel", "APNSVoipSandboxChannelRequest", "APNSVoipSandboxChannelResponse",
     {"Certificate": "c", "PrivateKey": "p"}, "APNS_VOIP_SANDBOX"),
    ("UpdateBaiduChannel", "BaiduChannelRequest", "BaiduChannelResponse", {"ApiKey": "a", "SecretKey": "s"}, "BAIDU"),
    ("UpdateAdmChannel", "ADMChannelRequest", "ADMChannelResponse", {"ClientId": "c", "ClientSecret": "s"}, "ADM"),
])  # fmt: skip
async def test_every_channel_stores_and_hides_its_secrets(
    state: AppState, operation: str, request_key: str, response_key: str, body: dict[str, Any], platform: str
) -> None:
    app_id = await new_app(state)
    response = (await call(state, operation, ApplicationId=app_id, **{request_key: body}))[response_key]
    assert (
        response["Platform"] == platform and response["Enabled"] is True and response["HasCredential"] is True
    )
    for secret in ("Certificate", "PrivateKey", "TokenKey", "ApiKey", "SecretKey", "ClientSecret"):
        assert secret not in response
    if platform.startswith("APNS"):
        assert response["HasTokenKey"] == ("TokenKey" in body)
    fetched = await call(state, operation.replace("Update", "Get"), ApplicationId=app_id)
    assert fetched[response_key] == response


async def test_get_channels_lists_every_channel(state: AppState) -> None:
    app_id = await new_app(state)
    await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
    await call(
        state, "UpdateGcmChannel", ApplicationId=app_id, GCMChannelRequest={"ApiKey": "k", "Enabled": False}
    )
    await call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "a@sojourn.test", "Identity": "sojourn.test"},
    )
    channels = (await call(state, "GetChannels", ApplicationId=app_id))["ChannelsResponse"]["Channels"]
    assert set(channels) == {"SMS", "GCM", "EMAIL"}
    assert channels["GCM"]["Enabled"] is False and channels["SMS"]["Version"] == 1
    assert "ApiKey" not in channels["GCM"] and "FromAddress" not in channels["EMAIL"]


@pytest.mark.parametrize(("operation", "request_key", "body", "message"), [
    ("UpdateSmsChannel", "SMSChannelRequest", {"SenderId": "this-is-far-too-long"}, "SenderId must be 1-11"),
    ("UpdateSmsChannel", "SMSChannelRequest", {"ShortCode": "12ab"}, "ShortCode must be digits"),
    ("UpdateGcmChannel", "GCMChannelRequest", {"Enabled": True}, "needs ApiKey .* or ServiceJson"),
    ("UpdateGcmChannel", "GCMChannelRequest", {"ServiceJson": "{nope"}, "ServiceJson is not JSON"),
    ("UpdateGcmChannel", "GCMChannelRequest", {"ApiKey": "k", "DefaultAuthenticationMethod": "X"}, "KEY or TOKEN"),
    ("UpdateApnsChannel", "APNSChannelRequest", {"Certificate": "c"}, "Certificate and PrivateKey .* or TokenKey"),
    ("UpdateApnsChannel", "APNSChannelRequest",
     {"Certificate": "c", "PrivateKey": "p", "DefaultAuthenticationMethod": "TOKEN"}, "TOKEN needs TokenKey"),
    ("UpdateAdmChannel", "ADMChannelRequest", {"ClientId": "c", "ClientSecret": ""}, "needs ClientSecret"),
])  # fmt: skip
async def test_bad_channel_requests(
    state: AppState, operation: str, request_key: str, body: dict[str, Any], message: str
) -> None:
    app_id = await new_app(state)
    with pytest.raises(BadRequestError, match=message):
        await call(state, operation, ApplicationId=app_id, **{request_key: body})


async def test_unknown_app(state: AppState) -> None:
    with pytest.raises(NotFoundError, match="Application nope not found"):
        await call(state, "UpdateVoiceChannel", ApplicationId="nope", VoiceChannelRequest={"Enabled": True})
