"""Rules for SMS, push, voice and in-app templates (the email rules live in the email template handlers), and how
a journey renders them for one endpoint.

Every text field is a Handlebars-subset source (:mod:`sojourn.domain.templates`); a template whose source does
not compile is refused when it is stored, not when a journey sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sojourn.domain.templates import TemplateSyntaxError, build_context, compile_template

SMS_MAX_CHARS = 1600
VOICE_MAX_CHARS = 10_000
PUSH_MAX_CHARS = {"Default": 4000, "GCM": 4000, "APNS": 4000, "Baidu": 4000, "ADM": 6000}
PUSH_SERVICES = ("Default", "GCM", "APNS", "ADM", "Baidu")
PUSH_ACTIONS = ("OPEN_APP", "DEEP_LINK", "URL")
#: Fields of a push block that are rendered with the endpoint's variables.
PUSH_TEXT_FIELDS = (
    "Title",
    "Body",
    "RawContent",
    "Url",
    "ImageUrl",
    "ImageIconUrl",
    "SmallImageIconUrl",
    "MediaUrl",
)
#: Which block of a push template an endpoint ChannelType uses (then ``Default`` fills the gaps).
PUSH_SERVICE_OF_CHANNEL = {
    "GCM": "GCM",
    "APNS": "APNS",
    "APNS_SANDBOX": "APNS",
    "APNS_VOIP": "APNS",
    "APNS_VOIP_SANDBOX": "APNS",
    "ADM": "ADM",
    "BAIDU": "Baidu",
}


#: In-app messages: at most 5 messages (a CAROUSEL), one of Pinpoint's layouts.
MAX_IN_APP_MESSAGES = 5
IN_APP_LAYOUTS = ("BOTTOM_BANNER", "TOP_BANNER", "OVERLAYS", "MOBILE_FEED", "MIDDLE_BANNER", "CAROUSEL")


def in_app_content_problems(where: str, in_app: Mapping[str, Any]) -> list[str]:
    """What is wrong with an in-app message's ``Content``, ``Layout`` and ``CustomConfig`` (empty when nothing).

    Used for a campaign's inline ``InAppMessage`` and for an ``InAppTemplateRequest`` alike.
    """
    found: list[str] = []
    content = in_app.get("Content")
    if not content or not isinstance(content, list):
        found.append(f"{where}.Content needs at least one message (a list of InAppMessageContent)")
    elif len(content) > MAX_IN_APP_MESSAGES:
        found.append(f"{where}.Content has at most {MAX_IN_APP_MESSAGES} messages")
    if in_app.get("Layout") not in IN_APP_LAYOUTS:
        found.append(f"{where}.Layout must be one of {', '.join(IN_APP_LAYOUTS)}")
    custom = in_app.get("CustomConfig")
    if custom is not None and not (
        isinstance(custom, Mapping) and all(isinstance(v, str) for v in custom.values())
    ):
        found.append(f"{where}.CustomConfig must map names to strings")
    return found


class TemplateRuleError(ValueError):
    """A template request breaks a rule; the message says which field and how to fix it."""


def _check_source(where: str, source: Any) -> None:
    try:
        compile_template(str(source))
    except TemplateSyntaxError as err:
        raise TemplateRuleError(f"{where} is not a valid template: {err}") from None


def _check_defaults(where: str, content: Mapping[str, Any]) -> None:
    raw = content.get("DefaultSubstitutions")
    if raw:
        try:
            build_context({}, default_substitutions=str(raw))
        except ValueError as err:
            raise TemplateRuleError(f"{where}.DefaultSubstitutions: {err}") from None


def _body_template(where: str, content: Mapping[str, Any], limit: int) -> None:
    body = content.get("Body")
    if not body:
        raise TemplateRuleError(f"{where}.Body is required: the text of the message")
    if len(str(body)) > limit:
        raise TemplateRuleError(f"{where}.Body has {len(str(body))} characters; at most {limit}")
    _check_source(f"{where}.Body", body)
    _check_defaults(where, content)


def check_sms_template(content: Mapping[str, Any]) -> None:
    """An SMSTemplateRequest: Body (≤1,600 characters) compiles; DefaultSubstitutions is a JSON object.

    Raises:
        TemplateRuleError: what is wrong.
    """
    _body_template("SMSTemplateRequest", content, SMS_MAX_CHARS)


def check_voice_template(content: Mapping[str, Any]) -> None:
    """A VoiceTemplateRequest: Body (≤10,000 characters) compiles; DefaultSubstitutions is a JSON object.

    Raises:
        TemplateRuleError: what is wrong.
    """
    _body_template("VoiceTemplateRequest", content, VOICE_MAX_CHARS)


def check_push_template(content: Mapping[str, Any]) -> None:
    """A PushNotificationTemplateRequest: at least one service block with a Body, Title or RawContent; each
    block's text fields compile and stay within the service's limit; Action is OPEN_APP, DEEP_LINK or URL.

    Raises:
        TemplateRuleError: what is wrong.
    """
    where = "PushNotificationTemplateRequest"
    blocks = {name: content.get(name) for name in PUSH_SERVICES if content.get(name)}
    if not any(
        isinstance(block, Mapping) and any(block.get(f) for f in ("Body", "Title", "RawContent"))
        for block in blocks.values()
    ):
        raise TemplateRuleError(
            f"{where} needs a message: set Default.Body (or a Body, Title or RawContent in GCM, APNS, ADM or Baidu)"
        )
    for name, block in blocks.items():
        if not isinstance(block, Mapping):
            raise TemplateRuleError(f"{where}.{name} must be an object")
        size = len(str(block.get("Body") or "")) + len(str(block.get("RawContent") or ""))
        if size > PUSH_MAX_CHARS[name]:
            raise TemplateRuleError(
                f"{where}.{name} has {size} characters in Body and RawContent; at most {PUSH_MAX_CHARS[name]}"
            )
        action = block.get("Action")
        if action is not None and action not in PUSH_ACTIONS:
            raise TemplateRuleError(
                f"{where}.{name}.Action {action!r} is not one of {', '.join(PUSH_ACTIONS)}"
            )
        for field in PUSH_TEXT_FIELDS:
            if block.get(field):
                _check_source(f"{where}.{name}.{field}", block[field])
    _check_defaults(where, content)


def _render(source: Any, context: Mapping[str, Any]) -> str:
    return compile_template(str(source)).render(context, html=False)


def render_sms(template: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The SMS (or voice) message fields of a stored template rendered with ``context``: ``{"Body": ...}``.

    Raises:
        ValueError: the template has no Body or does not render.
    """
    if not template.get("Body"):
        raise ValueError("the template has no Body")
    return {"Body": _render(template["Body"], context)}


def render_push(template: Mapping[str, Any], channel_type: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The push message for one endpoint: the block of its service (GCM, APNS, ...) over ``Default``, rendered.

    Args:
        template: The stored PushNotificationTemplateRequest.
        channel_type: The endpoint's ChannelType (GCM, APNS, APNS_SANDBOX, ADM, BAIDU, ...).
        context: The render context (see :func:`sojourn.domain.templates.build_context`).

    Returns:
        The message fields (Title, Body, Action, Url, RawContent, ...) as Pinpoint's GCMMessage/APNSMessage.

    Raises:
        ValueError: the template has nothing for this endpoint, or does not render.
    """
    service = PUSH_SERVICE_OF_CHANNEL.get(channel_type)
    merged = {**(template.get("Default") or {}), **((template.get(service) or {}) if service else {})}
    if not any(merged.get(f) for f in ("Body", "Title", "RawContent")):
        raise ValueError(f"the push template has no Body, Title or RawContent for a {channel_type} endpoint")
    return {k: (_render(v, context) if k in PUSH_TEXT_FIELDS and v else v) for k, v in merged.items()}


#: Stored template fields that describe the template rather than make up the message.
_TEMPLATE_METADATA = frozenset(
    {"TemplateDescription", "DefaultSubstitutions", "RecommenderId", "tags", "Headers"}
)
#: Fields rendered as HTML (values escaped); every other text field is rendered as plain text.
_HTML_FIELDS = frozenset({"HtmlPart"})


def render_template_fields(template: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Every message field of a stored template of any type, rendered with ``context``.

    A CUSTOM activity may name a template of any type; the hook receives the template's own fields (an email's
    Subject/HtmlPart/TextPart, an SMS's Body, a push template's Default/GCM/APNS blocks ...) rendered for each
    endpoint, so it can deliver them however its channel needs.

    Raises:
        ValueError: a field does not render.
    """

    def render(key: str, value: Any) -> Any:
        if isinstance(value, str):
            return compile_template(value).render(context, html=key in _HTML_FIELDS)
        if isinstance(value, Mapping):
            return {k: render(k, v) for k, v in value.items()}
        return value

    return {k: render(k, v) for k, v in template.items() if k not in _TEMPLATE_METADATA}


def check_in_app_template(content: Mapping[str, Any]) -> None:
    """An InAppTemplateRequest: 1-5 messages in ``Content``, a Pinpoint ``Layout``, string ``CustomConfig``.

    Raises:
        TemplateRuleError: what is wrong.
    """
    problems = in_app_content_problems("InAppTemplateRequest", content)
    if problems:
        raise TemplateRuleError("; ".join(problems))
