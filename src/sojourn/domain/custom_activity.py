"""The rules of the CUSTOM journey activity: where it delivers, what it sends, what the hook may answer.

A CUSTOM activity calls a webhook (``DeliveryUri`` = ``https://...``; ``http://`` only on the loopback, for
development) or a custom activity function registered from the deployment's ``activities`` package
(``DeliveryUri`` = its activity name), with at most 50 endpoints per call and Pinpoint's payload::

    {"Message": "<MessageConfig.Data>", "Data": "<MessageConfig.Data>", "ApplicationId": "...",
     "JourneyId": "...", "ActivityId": "...", "Endpoints": {"<endpoint id>": <EndpointResponse>, ...},
     "MessageIds": {"<endpoint id>": "<sojourn message id>", ...}}

With a ``TemplateName`` (Pinpoint: "the name of an existing message template", of any type), the payload also
carries ``"Template": {"Name", "Type", "Version"}`` and ``"Messages": {"<endpoint id>": {<the template's fields
rendered for that endpoint>}}``. A name is looked up among the types in :data:`CUSTOM_TEMPLATE_TYPES` order.

The hook may answer, per endpoint, attributes to record (sojourn's shape)::

    {"Endpoints": {"<endpoint id>": {"Attributes": {"answer": "yes"}}}}

Each answered endpoint gets a ``_custom.response`` event with those attributes, tied to its message, so a later
split can test it: ``EventCondition{MessageActivity: <the CUSTOM activity>, Dimensions: {EventType:
_custom.response, Attributes: {answer: {AttributeType: INCLUSIVE, Values: [yes]}}}}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_ENDPOINTS_PER_CALL = 50
MAX_DATA_CHARS = 5000
RESPONSE_EVENT = "_custom.response"
#: The template types a CUSTOM activity's TemplateName is looked up in, first match wins (custom channels are
#: mostly app and chat messages, closest to push and SMS).
CUSTOM_TEMPLATE_TYPES = ("PUSH", "SMS", "VOICE", "EMAIL")
MAX_RESPONSE_ATTRIBUTES = 40
ENDPOINT_TYPES = (
    "PUSH",
    "GCM",
    "APNS",
    "APNS_SANDBOX",
    "APNS_VOIP",
    "APNS_VOIP_SANDBOX",
    "ADM",
    "SMS",
    "VOICE",
    "EMAIL",
    "BAIDU",
    "CUSTOM",
    "IN_APP",
)
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class CustomSpec:
    """A CUSTOM activity, parsed.

    Attributes:
        kind: ``webhook`` or ``function``.
        target: The URL, or the custom activity's name.
        endpoint_types: Endpoint ChannelTypes delivered to the hook (the others pass through).
        data: ``MessageConfig.Data`` (the message).
        next_activity: Where everyone goes next.
        template_name: A message template of any type whose fields are rendered per endpoint (or None).
        template_version: Its version (None: the active version).
    """

    kind: str
    target: str
    endpoint_types: tuple[str, ...]
    data: str
    next_activity: str | None
    template_name: str | None = None
    template_version: str | None = None


def delivery_target(uri: str) -> tuple[str, str]:
    """(``webhook``, url) or (``function``, name) for a DeliveryUri.

    Raises:
        ValueError: the URI is neither an https URL (http on the loopback), nor a custom activity name.
    """
    uri = uri.strip()
    if uri.startswith("arn:"):
        raise ValueError(
            f"DeliveryUri {uri!r}: sojourn cannot call AWS Lambda; use an https:// webhook or a custom activity "
            "registered in the activities package (its activity name)"
        )
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return ("webhook", uri)
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return ("webhook", uri)
    if parts.scheme:
        raise ValueError(
            f"DeliveryUri {uri!r} must be an https:// URL (http:// only on 127.0.0.1 or localhost) or the name "
            "of a custom activity registered in the activities package"
        )
    if not _FUNCTION_NAME.fullmatch(uri):
        raise ValueError(
            f"DeliveryUri {uri!r} is not an https:// URL nor a custom activity name (letters, digits, _ . -)"
        )
    return ("function", uri)


def custom_spec(raw: Mapping[str, Any]) -> CustomSpec:
    """A CustomMessageActivity as a :class:`CustomSpec`.

    Raises:
        ValueError: see :func:`custom_problems`.
    """
    problems = custom_problems(raw)
    if problems:
        raise ValueError("; ".join(problems))
    kind, target = delivery_target(str(raw["DeliveryUri"]))
    return CustomSpec(
        kind=kind,
        target=target,
        endpoint_types=tuple(raw.get("EndpointTypes") or ("CUSTOM",)),
        data=str((raw.get("MessageConfig") or {}).get("Data") or ""),
        next_activity=raw.get("NextActivity"),
        template_name=str(raw["TemplateName"]) if raw.get("TemplateName") else None,
        template_version=str(raw["TemplateVersion"]) if raw.get("TemplateVersion") is not None else None,
    )


def custom_problems(raw: Mapping[str, Any]) -> list[str]:
    """What is wrong with a CustomMessageActivity (empty when it can run)."""
    problems: list[str] = []
    uri = raw.get("DeliveryUri")
    if not uri:
        problems.append("CUSTOM needs a DeliveryUri (an https:// webhook or a custom activity name)")
    else:
        try:
            delivery_target(str(uri))
        except ValueError as err:
            problems.append(str(err))
    unknown = sorted(set(raw.get("EndpointTypes") or ()) - set(ENDPOINT_TYPES))
    if unknown:
        problems.append(f"CUSTOM.EndpointTypes: {', '.join(unknown)} is not an endpoint channel type")
    data = (raw.get("MessageConfig") or {}).get("Data")
    if data is not None and len(str(data)) > MAX_DATA_CHARS:
        problems.append(f"CUSTOM.MessageConfig.Data has at most {MAX_DATA_CHARS} characters")
    if raw.get("TemplateVersion") is not None and not raw.get("TemplateName"):
        problems.append("CUSTOM.TemplateVersion needs a TemplateName")
    return problems


def custom_payload(
    spec: CustomSpec,
    *,
    app_id: str,
    journey_id: str,
    activity_id: str,
    endpoints: Mapping[str, dict[str, Any]],
    message_ids: Mapping[str, str],
    template: tuple[str, Mapping[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The body of one call: Pinpoint's custom-channel payload plus the message id of each endpoint.

    Args:
        spec: The activity.
        app_id: The app.
        journey_id: The journey.
        activity_id: The CUSTOM activity.
        endpoints: EndpointResponse of each endpoint in the call.
        message_ids: The message id of each endpoint.
        template: With a TemplateName: (the template's type, its fields rendered for each endpoint), added as
            ``Template`` and ``Messages``.
    """
    payload: dict[str, Any] = {
        "Message": spec.data,
        "Data": spec.data,
        "ApplicationId": app_id,
        "JourneyId": journey_id,
        "ActivityId": activity_id,
        "Endpoints": dict(endpoints),
        "MessageIds": dict(message_ids),
    }
    if template is not None and spec.template_name is not None:
        template_type, messages = template
        payload["Template"] = {
            "Name": spec.template_name,
            "Type": template_type,
            "Version": spec.template_version,
        }
        payload["Messages"] = dict(messages)
    return payload


def response_attributes(answer: Any, endpoint_ids: set[str]) -> dict[str, dict[str, str]]:
    """The attributes a hook answered per endpoint of its call (see the module docstring for the shape).

    Anything else in the answer is ignored; endpoints not in the call, non-object entries and attributes past
    the first 40 are dropped; values become strings.
    """
    if not isinstance(answer, Mapping):
        return {}
    per_endpoint = answer.get("Endpoints")
    if not isinstance(per_endpoint, Mapping):
        return {}
    out: dict[str, dict[str, str]] = {}
    for endpoint_id, entry in per_endpoint.items():
        if endpoint_id not in endpoint_ids or not isinstance(entry, Mapping):
            continue
        attributes = entry.get("Attributes")
        if isinstance(attributes, Mapping) and attributes:
            items = list(attributes.items())[:MAX_RESPONSE_ATTRIBUTES]
            out[str(endpoint_id)] = {str(k): str(v) for k, v in items}
    return out


def endpoint_types_sql(types: tuple[str, ...]) -> str:
    """SQL over an endpoint ``e``: its own type when it is one of ``types``, else a value no endpoint has."""
    listed = ", ".join(f"'{t}'" for t in types if t in ENDPOINT_TYPES) or "''"
    return f"(CASE WHEN e.channel_type IN ({listed}) THEN e.channel_type ELSE '-' END)"
