"""The rules of SendMessages / SendUsersMessages as pure functions: request checks, per-channel content, results.

Pinpoint's MessageRequest names its recipients as ``Addresses`` (raw address + ChannelType) and/or
``Endpoints`` (endpoint ids; each is sent on its own ChannelType); SendUsersMessageRequest names ``Users``
(each user's endpoints). ``MessageConfiguration`` holds a message per channel (``SMSMessage``, ``GCMMessage``,
``APNSMessage``, ``BaiduMessage``, ``ADMMessage``, ``VoiceMessage``, ``EmailMessage``) with
``DefaultPushNotificationMessage`` and ``DefaultMessage`` as fallbacks; each recipient may override the body,
title, raw content and substitutions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sojourn.api.errors import BadRequestError
from sojourn.channels.providers import (
    DUPLICATE,
    OPT_OUT,
    PERMANENT_FAILURE,
    PUSH_CHANNEL_TYPES,
    provider_channel,
)
from sojourn.domain.message_templates import PUSH_SERVICE_OF_CHANNEL
from sojourn.domain.templates import TemplateSyntaxError, build_context, compile_template

#: Most recipients in one request (Addresses + Endpoints, or Users), as Pinpoint's quota.
MAX_RECIPIENTS = 100
SENDABLE_CHANNEL_TYPES = frozenset({"EMAIL", "SMS", "VOICE", "CUSTOM", *PUSH_CHANNEL_TYPES})
_PUSH_MESSAGE = {
    "GCM": "GCMMessage",
    "APNS": "APNSMessage",
    "APNS_SANDBOX": "APNSMessage",
    "APNS_VOIP": "APNSMessage",
    "APNS_VOIP_SANDBOX": "APNSMessage",
    "BAIDU": "BaiduMessage",
    "ADM": "ADMMessage",
}
_UNSUPPORTED_TEMPLATES = ("InAppTemplate",)
#: The TemplateConfiguration member of each channel's template, and the template type stored for it.
CHANNEL_TEMPLATES = {"SMS": "SMSTemplate", "PUSH": "PushTemplate", "VOICE": "VoiceTemplate"}


class ContentError(ValueError):
    """A recipient's message cannot be built (no body for its channel, a broken variable)."""


@dataclass(frozen=True)
class Recipient:
    """One address or endpoint of a request.

    Attributes:
        key: The key of the result map (the address, or the endpoint id).
        channel_type: The ChannelType (the address's, or the endpoint's).
        address: Where the message goes (None: the endpoint has none).
        endpoint: The endpoint's row when the recipient is an endpoint.
        overrides: Its AddressConfiguration / EndpointSendConfiguration.
        skip_reason: Why it cannot be sent to (the ledger's reachability vocabulary), or None.
    """

    key: str
    channel_type: str | None
    address: str | None
    endpoint: Mapping[str, Any] | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None


def check_request(
    config: Mapping[str, Any] | None,
    templates: Mapping[str, Any] | None,
    *,
    addresses: Mapping[str, Any],
    recipients: int,
    what: str,
) -> None:
    """Request-level checks of a MessageRequest or SendUsersMessageRequest.

    Args:
        config: MessageConfiguration.
        templates: TemplateConfiguration.
        addresses: The Addresses map (empty for users and endpoint sends).
        recipients: How many recipients the request names in all.
        what: How the request's recipients are named in messages ("Addresses or Endpoints", "Users").

    Raises:
        BadRequestError: No recipients, too many, a bad ChannelType, an unsupported template or message kind.
    """
    if recipients == 0:
        raise BadRequestError(f"The request names no recipients: give at least one entry in {what}")
    if recipients > MAX_RECIPIENTS:
        raise BadRequestError(
            f"The request names {recipients} recipients in {what}; at most {MAX_RECIPIENTS} per request"
        )
    for address, item in addresses.items():
        if not address.strip():
            raise BadRequestError("Addresses has an empty address key")
        channel_type = (item or {}).get("ChannelType")
        if not channel_type:
            raise BadRequestError(f"Addresses[{address!r}].ChannelType is required (e.g. SMS, EMAIL, GCM)")
        if channel_type not in SENDABLE_CHANNEL_TYPES:
            raise BadRequestError(
                f"Addresses[{address!r}].ChannelType {channel_type} cannot be sent to directly; use one of "
                + ", ".join(sorted(SENDABLE_CHANNEL_TYPES))
            )
    for name in _UNSUPPORTED_TEMPLATES:
        if (templates or {}).get(name):
            raise BadRequestError(
                f"TemplateConfiguration.{name}: in-app messages are not sent by SendMessages; use "
                "EmailTemplate, SMSTemplate, PushTemplate or VoiceTemplate"
            )
    email = (config or {}).get("EmailMessage") or {}
    if email.get("RawEmail"):
        raise BadRequestError(
            "EmailMessage.RawEmail is not supported by sojourn yet; use EmailMessage.SimpleEmail or an EmailTemplate"
        )


def message_id(app_id: str, request_id: str, kind: str, key: str) -> str:
    """The deterministic id of one recipient's message of one request (its ledger key and Idempotency-Key)."""
    return hashlib.md5(f"{app_id}/direct/{request_id}/{kind}/{key}".encode()).hexdigest()


def _render(source: str | None, context: Mapping[str, Any]) -> str | None:
    if source is None:
        return None
    try:
        return compile_template(source).render(context, html=False)
    except TemplateSyntaxError as err:
        raise ContentError(f"the message text does not compile: {err}") from err


def render_context(
    recipient: Recipient,
    message_substitutions: Mapping[str, Any] | None,
    default_substitutions: str | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The render context: the endpoint (or just the address), message Substitutions, then the recipient's.

    Per-recipient ``Substitutions`` win over message-level ones, which win over the template's
    ``DefaultSubstitutions`` (Pinpoint's precedence).
    """
    endpoint: dict[str, Any] = dict(recipient.endpoint or {})
    if recipient.address is not None:
        endpoint.setdefault("Address", recipient.address)
    if recipient.channel_type is not None:
        endpoint.setdefault("ChannelType", recipient.channel_type)
    merged = {**(message_substitutions or {}), **(recipient.overrides.get("Substitutions") or {})}
    return build_context(endpoint, default_substitutions=default_substitutions, substitutions=merged)


def template_message(channel_type: str, template: Mapping[str, Any]) -> dict[str, Any]:
    """A stored SMS, voice or push template as the recipient's channel message (before the request's own fields).

    A push template gives its ``Default`` block under the block of the endpoint's service (APNS, GCM, ...).
    """
    channel = provider_channel(channel_type)
    if channel == "PUSH":
        service = PUSH_SERVICE_OF_CHANNEL.get(channel_type)
        return {**(template.get("Default") or {}), **((template.get(service) or {}) if service else {})}
    keep = ("Body", "LanguageCode", "VoiceId") if channel == "VOICE" else ("Body",)
    return {k: template[k] for k in keep if template.get(k)}


def _pick(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "")), None)


def provider_content(
    recipient: Recipient,
    config: Mapping[str, Any],
    endpoint_view: Mapping[str, Any] | None = None,
    template: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The rendered message fields for an SMS, push, voice or custom recipient.

    Args:
        recipient: The recipient (its channel type picks the message).
        config: MessageConfiguration.
        endpoint_view: The endpoint as an EndpointResponse dict (for ``{{Attributes.x}}`` variables).
        template: The channel's template (TemplateConfiguration.SMSTemplate/PushTemplate/VoiceTemplate),
            whose fields the request's own message fields override.

    Raises:
        ContentError: The request has no body for the recipient's channel, or a variable does not compile.
    """
    channel_type = recipient.channel_type or ""
    channel = provider_channel(channel_type)
    default = config.get("DefaultMessage") or {}
    overrides = recipient.overrides
    view = Recipient(
        recipient.key,
        recipient.channel_type,
        recipient.address,
        endpoint_view or recipient.endpoint,
        overrides,
    )
    if channel == "SMS":
        message = dict(config.get("SMSMessage") or {})
    elif channel == "VOICE":
        message = dict(config.get("VoiceMessage") or {})
    elif channel == "PUSH":
        specific = config.get(_PUSH_MESSAGE.get(channel_type, "")) or {}
        message = {**(config.get("DefaultPushNotificationMessage") or {}), **specific}
    else:
        message = {}
    if template is not None:
        message = {**template_message(channel_type, template), **message}
    substitutions = message.pop("Substitutions", None) or default.get("Substitutions")
    context = render_context(
        view, substitutions, template.get("DefaultSubstitutions") if template is not None else None
    )
    body = _pick(overrides.get("BodyOverride"), message.get("Body"), default.get("Body"))
    title = _pick(overrides.get("TitleOverride"), message.get("Title"))
    raw = _pick(overrides.get("RawContent"), message.get("RawContent"))
    content = {k: v for k, v in message.items() if k not in ("Body", "Title", "RawContent")}
    if body is not None:
        content["Body"] = _render(str(body), context)
    if title is not None and channel in ("PUSH", "CUSTOM"):
        content["Title"] = _render(str(title), context)
    if raw is not None and channel in ("PUSH", "CUSTOM"):
        content["RawContent"] = str(raw)
    silent = bool(content.get("SilentPush")) or bool(content.get("Data"))
    if "Body" not in content and "RawContent" not in content and not (channel == "PUSH" and silent):
        names = {
            "SMS": "SMSMessage.Body",
            "VOICE": "VoiceMessage.Body",
            "PUSH": f"{_PUSH_MESSAGE.get(channel_type, 'DefaultPushNotificationMessage')}.Body",
            "CUSTOM": "DefaultMessage.Body",
        }
        raise ContentError(
            f"no message body for a {channel_type} recipient: set MessageConfiguration."
            f"{names.get(channel or '', 'DefaultMessage.Body')} or DefaultMessage.Body (or the recipient's BodyOverride)"
        )
    return content


@dataclass(frozen=True)
class EmailContent:
    """The email a request sends: a template-shaped dict (Subject, HtmlPart, TextPart) and its defaults."""

    template: dict[str, Any]
    default_substitutions: str | None = None


def email_content(config: Mapping[str, Any], template: Mapping[str, Any] | None) -> EmailContent | None:
    """The email of a request: an EmailTemplate, else EmailMessage.SimpleEmail, else a plain body; None if none.

    Args:
        config: MessageConfiguration.
        template: The loaded EmailTemplate (TemplateConfiguration.EmailTemplate), if the request names one.
    """
    if template is not None:
        return EmailContent(dict(template), template.get("DefaultSubstitutions"))
    email = config.get("EmailMessage") or {}
    simple = email.get("SimpleEmail") or {}
    if simple:

        def part(name: str) -> str | None:
            value = (simple.get(name) or {}).get("Data")
            return str(value) if value is not None else None

        shaped = {
            "Subject": part("Subject") or "",
            "HtmlPart": part("HtmlPart"),
            "TextPart": part("TextPart"),
        }
        if simple.get("Headers"):
            shaped["Headers"] = simple["Headers"]
        return EmailContent(shaped)
    body = _pick(email.get("Body"), (config.get("DefaultMessage") or {}).get("Body"))
    if body is not None:
        return EmailContent({"Subject": "", "TextPart": str(body)})
    return None


def skip_result(reason: str) -> tuple[str, int, str]:
    """(DeliveryStatus, StatusCode, StatusMessage) of a recipient that is not sent to, by the ledger's reason."""
    table = {
        "ENDPOINT_MISSING": (PERMANENT_FAILURE, 404, "Endpoint not found"),
        "ENDPOINT_OPT_OUT": (OPT_OUT, 400, "The endpoint has opted out (OptOut is ALL)"),
        "ADDRESS_OPT_OUT": (OPT_OUT, 400, "The address has opted out of this channel"),
        "SUPPRESSED": (OPT_OUT, 400, "The address is on the suppression list"),
        "ENDPOINT_INACTIVE": (PERMANENT_FAILURE, 400, "The endpoint is INACTIVE"),
        "ENDPOINT_MISSING_ADDRESS": (PERMANENT_FAILURE, 400, "The endpoint has no Address"),
        "ENDPOINT_MISSING_CHANNEL": (PERMANENT_FAILURE, 400, "The endpoint has no ChannelType"),
        "UNSUPPORTED_CHANNEL": (PERMANENT_FAILURE, 400, "sojourn cannot send to this ChannelType directly"),
        "DUPLICATE": (DUPLICATE, 200, "The address is a duplicate of another recipient of this request"),
    }
    return table.get(reason, (PERMANENT_FAILURE, 400, reason))


def result_entry(
    delivery_status: str,
    status_code: int,
    status_message: str,
    *,
    message_id: str | None = None,
    address: str | None = None,
    updated_token: str | None = None,
) -> dict[str, Any]:
    """A MessageResult (or, with ``address``, an EndpointMessageResult) as the API returns it."""
    entry: dict[str, Any] = {
        "DeliveryStatus": delivery_status,
        "StatusCode": status_code,
        "StatusMessage": status_message,
    }
    if message_id is not None:
        entry["MessageId"] = message_id
    if address is not None:
        entry["Address"] = address
    if updated_token:
        entry["UpdatedToken"] = updated_token
    return entry
