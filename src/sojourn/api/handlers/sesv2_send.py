"""sesv2 SendEmail: Simple, Template or Raw content, with ListManagementOptions.

What sojourn does (and SES does, per the spec §7.3):

* With ListManagementOptions{ContactListName, TopicName?} (for Raw content also SES's
  ``X-SES-LIST-MANAGEMENT-OPTIONS`` header, which is removed from the message) only subscribed recipients
  get the mail: a contact unsubscribed from all, or from the topic (explicitly, or by the topic's OPT_OUT default), is dropped; a
  recipient who is not a contact of the list counts with the topic defaults. When nobody is left the call
  still succeeds with a MessageId (SES accepts and then bounces the message); the ledger row is ``skipped``
  with the reason.
* For a single-recipient message (SES adds them only then) it sets ``List-Unsubscribe`` (one-click URL, plus
  ``mailto:`` when ``SOJOURN_LIST_UNSUBSCRIBE_MAILTO`` is set) and ``List-Unsubscribe-Post``, replacing any
  such header of the content, and replaces up to two ``{{amazonSESUnsubscribeUrl}}`` in each of the text
  and HTML parts with the contact's preference-page URL.
* The message is in the ledger (``messages``, app_id ``sesv2``) as ``pending`` before it goes to the relay,
  and ``sent`` at SMTP's commit point, so it is sent at most once; a relay that refuses it gives
  ``MessageRejected``, an unreachable relay a 500 (nothing sent; the call can be repeated).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import SMTP as SMTP_POLICY
from email.utils import getaddresses
from typing import Any

from sojourn.api.errors import ApiError, BadRequestError, InternalServerError, NotFoundError
from sojourn.api.handlers.sesv2_lists import load_topics
from sojourn.api.handlers.sesv2_templates import render_with_data, stored_from_ses
from sojourn.api.server import Handler, RequestContext
from sojourn.channels.email import OutgoingEmail, transport_from_url
from sojourn.channels.list_unsubscribe import (
    UNSUBSCRIBE_PLACEHOLDER,
    list_unsubscribe,
    replace_unsubscribe_placeholder,
)
from sojourn.domain import lists as rules
from sojourn.domain.lists import ListRuleError
from sojourn.settings import Settings
from sojourn.store import lists_repo, message_ledger, sesv2_messages, templates_repo
from sojourn.store.suppression_repo import suppressed_addresses

MAX_RECIPIENTS = 50


class MessageRejectedError(ApiError):
    """400: the message cannot be sent as it is (SESv2's ``MessageRejected``)."""

    code, status = "MessageRejected", 400


def _addresses(values: Sequence[str] | None, where: str) -> list[str]:
    out = []
    for value in values or ():
        _, address = getaddresses([value])[0]
        if not rules.EMAIL.fullmatch(address or ""):
            raise BadRequestError(f"{where}: {value!r} is not an email address such as ada@example.com")
        out.append(value)
    return out


def _bare(value: str) -> str:
    """The address of ``"Ada <ada@example.com>"``, normalized (the contact key)."""
    return rules.normalize_email(getaddresses([value])[0][1])


def _content_kind(content: dict[str, Any]) -> str:
    kinds = [k for k in ("Simple", "Raw", "Template") if content.get(k)]
    if len(kinds) != 1:
        raise BadRequestError("Content must have exactly one of Simple, Raw or Template")
    return kinds[0]


async def _template_parts(ctx: RequestContext, template: dict[str, Any]) -> dict[str, Any]:
    if template.get("TemplateContent"):
        return stored_from_ses(template["TemplateContent"])
    arn = str(template.get("TemplateArn") or "")
    # SES template ARNs end in ":template/NAME"; sojourn's (Pinpoint's) in ":templates/NAME/EMAIL".
    name = template.get("TemplateName") or (arn.split("/")[1] if "/" in arn else "")
    if not name:
        raise BadRequestError("Content.Template needs TemplateName, TemplateArn or TemplateContent")
    async with ctx.state.db.connect() as conn:
        stored = await templates_repo.load_email_template(conn, name, None)
    if stored is None:
        raise NotFoundError(f"Email template {name!r} does not exist")
    return stored


def _headers(raw: Sequence[dict[str, Any]] | None) -> dict[str, str]:
    return {str(h["Name"]): str(h["Value"]) for h in raw or ()}


async def _allowed(
    ctx: RequestContext, options: dict[str, Any], recipients: list[str]
) -> tuple[list[str], str]:
    """The recipients subscribed to the list/topic, and why the others are not."""
    list_name, topic = options["ContactListName"], options.get("TopicName")
    async with ctx.state.db.connect() as conn:
        topics = await load_topics(conn, list_name)
        if topic is not None and topic not in {t.name for t in topics}:
            raise NotFoundError(f"Topic {topic!r} is not a topic of contact list {list_name!r}")
        contacts = await lists_repo.contacts_by_address(conn, list_name, {_bare(r) for r in recipients})
    allowed = []
    for recipient in recipients:
        contact = contacts.get(_bare(recipient))
        if rules.may_send(
            topics,
            topic,
            unsubscribe_all=bool(contact and contact.unsubscribe_all),
            preferences=dict(contact.topic_preferences) if contact else {},
        ):
            allowed.append(recipient)
    where = f"topic {topic!r} of contact list {list_name!r}" if topic else f"contact list {list_name!r}"
    return allowed, f"UNSUBSCRIBED: the recipients are unsubscribed from {where}"


@dataclass
class _Recipients:
    """Destination's To, Cc and Bcc (as given: display names are kept)."""

    to: list[str]
    cc: list[str]
    bcc: list[str]

    @property
    def all(self) -> list[str]:
        return [*self.to, *self.cc, *self.bcc]

    def keep(self, allowed: Sequence[str]) -> _Recipients:
        return _Recipients(*([a for a in group if a in allowed] for group in (self.to, self.cc, self.bcc)))


@dataclass
class _Content:
    """What a message says: subject, parts, headers (or a raw message)."""

    subject: str = ""
    html: str | None = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


def _recipients(destination: dict[str, Any], raw: bytes | None) -> _Recipients:
    """Destination, checked; for a raw message without one, its To and Cc headers (as SES does)."""
    recipients = _Recipients(
        _addresses(destination.get("ToAddresses"), "Destination.ToAddresses"),
        _addresses(destination.get("CcAddresses"), "Destination.CcAddresses"),
        _addresses(destination.get("BccAddresses"), "Destination.BccAddresses"),
    )
    if raw is not None and not recipients.all:
        parsed = message_from_bytes(raw, policy=SMTP_POLICY)
        recipients.to = [a for _, a in getaddresses(parsed.get_all("To", []))]
        recipients.cc = [a for _, a in getaddresses(parsed.get_all("Cc", []))]
    if not recipients.all:
        raise BadRequestError(
            "Destination needs at least one address in ToAddresses, CcAddresses or BccAddresses"
        )
    if len(recipients.all) > MAX_RECIPIENTS:
        raise MessageRejectedError(
            f"A message has at most {MAX_RECIPIENTS} recipients (To, Cc and Bcc together)"
        )
    return recipients


async def _compose(ctx: RequestContext, content: dict[str, Any], raw: bytes | None) -> _Content:
    """The message's content from Simple, Template (rendered with TemplateData) or Raw."""
    if raw is not None:
        return _Content(raw=raw)
    if content.get("Simple"):
        simple = content["Simple"]
        body = simple.get("Body") or {}
        return _Content(
            subject=str((simple.get("Subject") or {}).get("Data") or ""),
            html=(body.get("Html") or {}).get("Data"),
            text=(body.get("Text") or {}).get("Data"),
            headers=_headers(simple.get("Headers")),
        )
    template = content["Template"]
    parts = dict(await _template_parts(ctx, template))
    rendered = render_with_data(_keep_placeholder(parts), template.get("TemplateData"))
    return _Content(
        subject=rendered.subject,
        html=_restore(rendered.html),
        text=_restore(rendered.text),
        headers={**dict(rendered.headers), **_headers(template.get("Headers"))},
    )


def _add_list_links(settings: Settings, options: dict[str, Any], recipient: str, content: _Content) -> None:
    """List-Unsubscribe headers and the unsubscribe URL for the one recipient of list mail."""
    links = list_unsubscribe(
        public_url=settings.effective_public_url,
        secret=settings.page_key,
        list_name=options["ContactListName"],
        topic=options.get("TopicName"),
        email_address=_bare(recipient),
        now=datetime.now(UTC),
        ttl=timedelta(days=settings.page_token_ttl_days),
        mailto=settings.list_unsubscribe_mailto,
    )
    content.headers.update(links.headers)
    content.html = replace_unsubscribe_placeholder(content.html, links.preferences_url)
    content.text = replace_unsubscribe_placeholder(content.text, links.preferences_url)


def _outgoing(
    message_id: str, from_address: str, recipients: _Recipients, reply_to: Sequence[str], content: _Content
) -> OutgoingEmail:
    # The first address (of To, else Cc, else Bcc) heads the envelope; the rest stay in their groups.
    groups = [list(recipients.to), list(recipients.cc), list(recipients.bcc)]
    first_group = next(g for g in groups if g)
    primary = first_group.pop(0)
    rest = _Recipients(*groups)
    return OutgoingEmail(
        message_id=message_id,
        from_address=from_address,
        to_address=primary,
        also_to=tuple(rest.to),
        cc=tuple(rest.cc),
        bcc=tuple(rest.bcc),
        reply_to=tuple(reply_to),
        subject=content.subject,
        html=content.html,
        text=content.text,
        headers=content.headers,
        raw=content.raw,
    )


async def send_email(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """sesv2 SendEmail (see the module docstring for what list management does)."""
    settings: Settings = ctx.state.settings
    from_address = params.get("FromEmailAddress") or settings.default_from_address
    if not from_address:
        raise BadRequestError(
            "FromEmailAddress is required (or set SOJOURN_DEFAULT_FROM_ADDRESS on the server)"
        )
    content = params.get("Content") or {}
    raw: bytes | None = content["Raw"]["Data"] if _content_kind(content) == "Raw" else None
    options = params.get("ListManagementOptions")
    if raw is not None:
        raw, header_options = _take_list_management_header(raw)
        options = options or header_options
    recipients = _recipients(params.get("Destination") or {}, raw)
    try:
        first = _bare(recipients.all[0])
    except ListRuleError as err:
        raise BadRequestError(str(err)) from None
    message_id = str(uuid.uuid4())
    endpoint_id = params.get("EndpointId") or first

    if options:
        allowed, why = await _allowed(ctx, options, recipients.all)
        if not allowed:
            async with ctx.state.db.begin() as conn:
                await sesv2_messages.record_send(
                    conn,
                    message_id=message_id,
                    endpoint_id=endpoint_id,
                    address=", ".join(recipients.all),
                    status="skipped",
                    status_message=why,
                )
            return {"MessageId": message_id}
        recipients = recipients.keep(allowed)

    async with ctx.state.db.connect() as conn:
        suppressed = await suppressed_addresses(conn, [_bare(r) for r in recipients.all])
    if suppressed:
        # As SES: the call succeeds, the suppressed recipients get nothing (the ledger says why).
        kept = [r for r in recipients.all if _bare(r) not in suppressed]
        if not kept:
            async with ctx.state.db.begin() as conn:
                await sesv2_messages.record_send(
                    conn,
                    message_id=message_id,
                    endpoint_id=endpoint_id,
                    address=", ".join(recipients.all),
                    status="skipped",
                    status_message="SUPPRESSED: every recipient is on the account suppression list",
                )
            return {"MessageId": message_id}
        recipients = recipients.keep(kept)

    composed = await _compose(ctx, content, raw)
    if options and len(recipients.all) == 1:  # SES adds list links to single-recipient mail only
        _add_list_links(settings, options, recipients.all[0], composed)
    email = _outgoing(message_id, from_address, recipients, params.get("ReplyToAddresses") or (), composed)
    async with ctx.state.db.begin() as conn:
        await sesv2_messages.record_send(
            conn,
            message_id=message_id,
            endpoint_id=endpoint_id,
            address=", ".join(recipients.all),
            status="pending",
        )
    await _deliver(ctx, email)
    return {"MessageId": message_id}


def _take_list_management_header(raw: bytes) -> tuple[bytes, dict[str, str] | None]:
    """A raw message without its X-SES-LIST-MANAGEMENT-OPTIONS header, and the options that header gave."""
    parsed = message_from_bytes(raw, policy=SMTP_POLICY)
    value = parsed.get(rules.LIST_MANAGEMENT_HEADER)
    if value is None:
        return raw, None
    try:
        options = rules.parse_list_management_header(str(value))
    except ListRuleError as err:
        raise BadRequestError(str(err)) from None
    del parsed[rules.LIST_MANAGEMENT_HEADER]
    return parsed.as_bytes(), options


_PLACEHOLDER_GUARD = "\x00sojourn-unsubscribe-url\x00"


def _keep_placeholder(template: dict[str, Any]) -> dict[str, Any]:
    # The template engine would render {{amazonSESUnsubscribeUrl}} as an empty variable: shield it.
    return {
        k: v.replace(UNSUBSCRIBE_PLACEHOLDER, _PLACEHOLDER_GUARD) if isinstance(v, str) else v
        for k, v in template.items()
    }


def _restore(part: str | None) -> str | None:
    return part.replace(_PLACEHOLDER_GUARD, UNSUBSCRIBE_PLACEHOLDER) if part is not None else None


async def _deliver(ctx: RequestContext, email: OutgoingEmail) -> None:
    """Send through the configured relay; the ledger says ``sent`` at SMTP's commit point."""

    async def commit(ids: Sequence[str]) -> None:
        async with ctx.state.db.begin() as conn:
            await message_ledger.mark_sent(conn, ids)

    transport = transport_from_url(ctx.state.settings.smtp_url)
    try:
        results = await transport.send_batch([email], commit)
    except Exception as err:
        async with ctx.state.db.begin() as conn:
            await message_ledger.mark_failed(conn, [(email.message_id, "TEMPORARY_FAILURE", str(err))])
        raise InternalServerError(
            f"The SMTP relay could not take the message ({type(err).__name__}: {err}); nothing was sent, "
            "so the call can be repeated"
        ) from None
    finally:
        await transport.close()
    result = results[email.message_id]
    if not result.ok:
        metric = "PERMANENT_FAILURE" if result.permanent else "TEMPORARY_FAILURE"
        async with ctx.state.db.begin() as conn:
            await message_ledger.mark_failed(
                conn, [(email.message_id, metric, f"{result.code} {result.message}")]
            )
        raise MessageRejectedError(f"The SMTP relay refused the message: {result.code} {result.message}")


HANDLERS: dict[str, Handler] = {"sesv2:SendEmail": send_email}
