"""SMS, voice and push channels of an app: Update/Get/Delete{Sms,Voice,Gcm,Apns*,Baidu,Adm}Channel, GetChannels.

The settings are stored in ``channels`` (one row per app and channel type); an update merges the fields it
gives into the stored ones, so ``{"Enabled": false}`` alone toggles a channel. Credentials (API keys, APNs
certificates and keys) are stored but never returned: responses say ``HasCredential`` / ``HasTokenKey``.
Delivery itself goes through the channel's provider (``SOJOURN_<CHANNEL>_PROVIDER_URL``), which holds its own
credentials for APNs/FCM/carriers; sojourn does not forward these fields to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.server import Handler, RequestContext
from sojourn.store import channels_repo
from sojourn.store.apps_repo import require_app
from sojourn.store.endpoint_rows import iso_timestamp
from sojourn.store.templates_repo import email_channel_response

_APNS_FIELDS = (
    "BundleId",
    "Certificate",
    "DefaultAuthenticationMethod",
    "PrivateKey",
    "TeamId",
    "TokenKey",
    "TokenKeyId",
)
# The stored fields each response shape has (keyed by the channel type's first four letters: APNS covers
# its sandbox and VoIP variants). Credentials are never among them.
_SHOWN = {
    "SMS": ("SenderId", "ShortCode"),
    "GCM": ("DefaultAuthenticationMethod",),
    "APNS": ("DefaultAuthenticationMethod",),
}


def _check_sms(settings: Mapping[str, Any]) -> None:
    sender = settings.get("SenderId")
    if sender is not None and not (1 <= len(str(sender)) <= 11 and str(sender).replace("-", "").isalnum()):
        raise BadRequestError("SMSChannelRequest.SenderId must be 1-11 letters, digits or hyphens")
    code = settings.get("ShortCode")
    if code is not None and not str(code).isdigit():
        raise BadRequestError("SMSChannelRequest.ShortCode must be digits, e.g. 12345")


def _check_gcm(settings: Mapping[str, Any]) -> None:
    if not settings.get("ApiKey") and not settings.get("ServiceJson"):
        raise BadRequestError(
            "GCMChannelRequest needs ApiKey (FCM legacy server key) or ServiceJson (FCM service account JSON)"
        )
    if settings.get("ServiceJson"):
        try:
            json.loads(str(settings["ServiceJson"]))
        except ValueError as err:
            raise BadRequestError(f"GCMChannelRequest.ServiceJson is not JSON: {err}") from err
    method = settings.get("DefaultAuthenticationMethod")
    if method is not None and method not in ("KEY", "TOKEN"):
        raise BadRequestError("GCMChannelRequest.DefaultAuthenticationMethod must be KEY or TOKEN")


def _apns_checker(request: str) -> Callable[[Mapping[str, Any]], None]:
    def check(settings: Mapping[str, Any]) -> None:
        has_cert = bool(settings.get("Certificate") and settings.get("PrivateKey"))
        token_fields = ("TokenKey", "TokenKeyId", "TeamId", "BundleId")
        has_token = all(settings.get(f) for f in token_fields)
        if not (has_cert or has_token):
            raise BadRequestError(
                f"{request} needs credentials: Certificate and PrivateKey (certificate auth) or "
                "TokenKey, TokenKeyId, TeamId and BundleId (token auth)"
            )
        method = settings.get("DefaultAuthenticationMethod")
        if method is not None and method not in ("CERTIFICATE", "TOKEN"):
            raise BadRequestError(f"{request}.DefaultAuthenticationMethod must be CERTIFICATE or TOKEN")
        if method == "TOKEN" and not has_token:
            raise BadRequestError(
                f"{request}: DefaultAuthenticationMethod TOKEN needs " + ", ".join(token_fields)
            )
        if method == "CERTIFICATE" and not has_cert:
            raise BadRequestError(
                f"{request}: DefaultAuthenticationMethod CERTIFICATE needs Certificate and PrivateKey"
            )

    return check


def _require(request: str, *names: str) -> Callable[[Mapping[str, Any]], None]:
    def check(settings: Mapping[str, Any]) -> None:
        missing = [n for n in names if not settings.get(n)]
        if missing:
            raise BadRequestError(f"{request} needs {' and '.join(missing)}")

    return check


@dataclass(frozen=True)
class ChannelSpec:
    """How one channel type looks on the wire."""

    channel_type: str
    op: str  # the operation suffix: UpdateSmsChannel -> "Sms"
    request: str
    response: str
    fields: tuple[str, ...]
    check: Callable[[Mapping[str, Any]], None]


SPECS: tuple[ChannelSpec, ...] = (
    ChannelSpec("SMS", "Sms", "SMSChannelRequest", "SMSChannelResponse", ("SenderId", "ShortCode"), _check_sms),
    ChannelSpec("VOICE", "Voice", "VoiceChannelRequest", "VoiceChannelResponse", (), lambda _s: None),
    ChannelSpec(
        "GCM", "Gcm", "GCMChannelRequest", "GCMChannelResponse",
        ("ApiKey", "DefaultAuthenticationMethod", "ServiceJson"), _check_gcm,
    ),
    ChannelSpec(
        "APNS", "Apns", "APNSChannelRequest", "APNSChannelResponse", _APNS_FIELDS, _apns_checker("APNSChannelRequest")
    ),
    ChannelSpec(
        "APNS_SANDBOX", "ApnsSandbox", "APNSSandboxChannelRequest", "APNSSandboxChannelResponse",
        _APNS_FIELDS, _apns_checker("APNSSandboxChannelRequest"),
    ),
    ChannelSpec(
        "APNS_VOIP", "ApnsVoip", "APNSVoipChannelRequest", "APNSVoipChannelResponse",
        _APNS_FIELDS, _apns_checker("APNSVoipChannelRequest"),
    ),
    ChannelSpec(
        "APNS_VOIP_SANDBOX", "ApnsVoipSandbox", "APNSVoipSandboxChannelRequest", "APNSVoipSandboxChannelResponse",
        _APNS_FIELDS, _apns_checker("APNSVoipSandboxChannelRequest"),
    ),
    ChannelSpec(
        "BAIDU", "Baidu", "BaiduChannelRequest", "BaiduChannelResponse", ("ApiKey", "SecretKey"),
        _require("BaiduChannelRequest", "ApiKey", "SecretKey"),
    ),
    ChannelSpec(
        "ADM", "Adm", "ADMChannelRequest", "ADMChannelResponse", ("ClientId", "ClientSecret"),
        _require("ADMChannelRequest", "ClientId", "ClientSecret"),
    ),
)  # fmt: skip


def channel_response(spec: ChannelSpec, row: Row[Any], messages_per_second: int) -> dict[str, Any]:
    """A ``channels`` row as the channel's response shape (secrets left out)."""
    settings = dict(row.settings or {})
    response: dict[str, Any] = {
        "ApplicationId": row.app_id,
        "Platform": spec.channel_type,
        "Id": spec.channel_type.lower(),
        "Enabled": bool(row.enabled),
        "Version": int(row.version),
        "CreationDate": iso_timestamp(row.created_at),
        "LastModifiedDate": iso_timestamp(row.updated_at),
        "IsArchived": False,
        "HasCredential": True,
    }
    response.update({k: settings[k] for k in _SHOWN.get(spec.channel_type[:4], ()) if settings.get(k)})
    if spec.channel_type == "SMS":
        response["PromotionalMessagesPerSecond"] = messages_per_second
        response["TransactionalMessagesPerSecond"] = messages_per_second
    elif spec.channel_type == "GCM":
        response["HasFcmServiceCredentials"] = bool(settings.get("ServiceJson"))
        response["HasCredential"] = bool(settings.get("ApiKey") or settings.get("ServiceJson"))
    elif spec.channel_type.startswith("APNS"):
        response["HasTokenKey"] = bool(settings.get("TokenKey"))
    elif spec.channel_type == "BAIDU":
        # BaiduChannelResponse.Credential is required by the model; the API key id, never the secret key.
        response["Credential"] = str(settings.get("ApiKey") or "")
    return response


def _handlers(spec: ChannelSpec) -> dict[str, Handler]:
    def no_channel(app_id: str) -> NotFoundError:
        return NotFoundError(
            f"Application {app_id} has no {spec.channel_type} channel; create it with Update{spec.op}Channel"
        )

    def rate(ctx: RequestContext) -> int:
        return int(ctx.state.settings.provider_max_rate)

    async def update(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        app_id = params["ApplicationId"]
        request = params.get(spec.request) or {}
        given = {k: request[k] for k in spec.fields if request.get(k) not in (None, "")}
        async with ctx.state.db.begin() as conn:
            await require_app(conn, app_id)
            current = await channels_repo.channel_row(conn, app_id, spec.channel_type, lock=True)
            settings = {**(dict(current.settings) if current is not None else {}), **given}
            spec.check(settings)
            row = await channels_repo.put_channel(
                conn, app_id, spec.channel_type, settings, enabled=request.get("Enabled")
            )
        return {spec.response: channel_response(spec, row, rate(ctx))}

    async def get(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        app_id = params["ApplicationId"]
        async with ctx.state.db.connect() as conn:
            await require_app(conn, app_id)
            row = await channels_repo.channel_row(conn, app_id, spec.channel_type)
        if row is None:
            raise no_channel(app_id)
        return {spec.response: channel_response(spec, row, rate(ctx))}

    async def delete(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        app_id = params["ApplicationId"]
        async with ctx.state.db.begin() as conn:
            await require_app(conn, app_id)
            row = await channels_repo.delete_channel(conn, app_id, spec.channel_type)
        if row is None:
            raise no_channel(app_id)
        return {spec.response: channel_response(spec, row, rate(ctx))}

    return {f"Update{spec.op}Channel": update, f"Get{spec.op}Channel": get, f"Delete{spec.op}Channel": delete}


_BY_TYPE = {spec.channel_type: spec for spec in SPECS}
_COMMON = (
    "ApplicationId",
    "CreationDate",
    "Enabled",
    "HasCredential",
    "Id",
    "IsArchived",
    "LastModifiedDate",
    "Version",
)


async def get_channels(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetChannels: every channel of the app, keyed by channel type."""
    app_id = params["ApplicationId"]
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        rows = await channels_repo.all_channels(conn, app_id)
    channels: dict[str, Any] = {}
    for row in rows:
        spec = _BY_TYPE.get(row.channel_type)
        if spec is not None:
            full = channel_response(spec, row, int(ctx.state.settings.provider_max_rate))
        elif row.channel_type == "EMAIL":
            full = email_channel_response(row)
        else:
            continue
        channels[row.channel_type] = {k: full[k] for k in _COMMON if k in full}
    return {"ChannelsResponse": {"Channels": channels}}


HANDLERS: dict[str, Handler] = {"GetChannels": get_channels}
for _spec in SPECS:
    HANDLERS.update(_handlers(_spec))
