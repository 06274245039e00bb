"""Delivery feedback parsers: SES notifications over SNS, a signed generic webhook, and DSN/ARF emails.

Pure functions: each turns what arrived into :class:`Feedback` items (one per recipient) or says why it
cannot. What to do with them (events, ledger, suppression) is :mod:`sojourn.store.feedback_repo`'s job.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import parseaddr
from typing import Any

KINDS = ("hardbounce", "softbounce", "complaint", "delivered")
SIGNATURE_HEADER = "X-Sojourn-Signature"

_MESSAGE_ID = re.compile(r"<?\s*([^<>@\s]+)(?:@[^<>\s]*)?\s*>?")


class FeedbackError(ValueError):
    """What arrived is not a feedback notification we understand (the message says why)."""


@dataclass(frozen=True)
class Feedback:
    """One recipient's delivery outcome.

    Attributes:
        kind: hardbounce, softbounce, complaint or delivered.
        recipient: The recipient's address.
        message_id: The message it is about: the local part of its Message-ID, which for sojourn's own
            mail is the message ledger's id; None when unknown.
        feedback_id: The provider's id of this notification, when it has one.
        occurred_at: When it happened, when the notification says.
        detail: Bounce type/subtype, diagnostic code or complaint type, for people.
    """

    kind: str
    recipient: str
    message_id: str | None = None
    feedback_id: str | None = None
    occurred_at: datetime | None = None
    detail: str = ""

    @property
    def event_type(self) -> str:
        """The standard Pinpoint event type, e.g. ``_email.hardbounce``."""
        return f"_email.{self.kind}"

    @property
    def suppression_reason(self) -> str | None:
        """BOUNCE for hard bounces, COMPLAINT for complaints (what SES puts on the suppression list), else None."""
        return {"hardbounce": "BOUNCE", "complaint": "COMPLAINT"}.get(self.kind)


@dataclass(frozen=True)
class SubscriptionConfirmation:
    """An SNS SubscriptionConfirmation: visiting ``subscribe_url`` confirms the subscription."""

    topic_arn: str
    subscribe_url: str


def ledger_message_id(value: str | None) -> str | None:
    """The local part of a Message-ID (``<abc@host>`` → ``abc``); None for an empty value."""
    if not value:
        return None
    match = _MESSAGE_ID.fullmatch(value.strip())
    return match.group(1) if match else None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _mail_message_id(mail: dict[str, Any]) -> str | None:
    """Our Message-ID header if SES passed it on, else SES's own message id."""
    common = mail.get("commonHeaders") or {}
    if common.get("messageId"):
        return ledger_message_id(str(common["messageId"]))
    for header in mail.get("headers") or []:
        if str(header.get("name", "")).lower() == "message-id":
            return ledger_message_id(str(header.get("value", "")))
    return ledger_message_id(str(mail.get("messageId") or "")) if mail.get("messageId") else None


def parse_ses_notification(notification: dict[str, Any]) -> list[Feedback]:
    """An SES bounce, complaint or delivery notification (or event-publishing record) → feedback items.

    Bounces of type Permanent are hard bounces; Transient and Undetermined are soft (SES suppresses only
    Permanent). Other notification types (Send, Open, Reject, ...) give no items.

    Raises:
        FeedbackError: it is not an object, or a bounce/complaint/delivery lacks its recipients.
    """
    if not isinstance(notification, dict):
        raise FeedbackError("the SES notification is not a JSON object")
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    mail = notification.get("mail") or {}
    message_id = _mail_message_id(mail) if isinstance(mail, dict) else None
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        bounce_type = str(bounce.get("bounceType") or "Undetermined")
        sub_type = str(bounce.get("bounceSubType") or "")
        recipients = bounce.get("bouncedRecipients")
        if not isinstance(recipients, list) or not recipients:
            raise FeedbackError("the Bounce notification has no bounce.bouncedRecipients")
        return [
            Feedback(
                kind="hardbounce" if bounce_type == "Permanent" else "softbounce",
                recipient=str(r.get("emailAddress") or ""),
                message_id=message_id,
                feedback_id=bounce.get("feedbackId"),
                occurred_at=_timestamp(bounce.get("timestamp")),
                detail="; ".join(x for x in (f"{bounce_type}/{sub_type}", r.get("diagnosticCode")) if x),
            )
            for r in recipients
            if isinstance(r, dict) and r.get("emailAddress")
        ]
    if kind == "Complaint":
        complaint = notification.get("complaint") or {}
        recipients = complaint.get("complainedRecipients")
        if not isinstance(recipients, list) or not recipients:
            raise FeedbackError("the Complaint notification has no complaint.complainedRecipients")
        return [
            Feedback(
                kind="complaint",
                recipient=str(r.get("emailAddress") or ""),
                message_id=message_id,
                feedback_id=complaint.get("feedbackId"),
                occurred_at=_timestamp(complaint.get("timestamp")),
                detail=str(complaint.get("complaintFeedbackType") or "complaint"),
            )
            for r in recipients
            if isinstance(r, dict) and r.get("emailAddress")
        ]
    if kind == "Delivery":
        delivery = notification.get("delivery") or {}
        recipients = delivery.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            raise FeedbackError("the Delivery notification has no delivery.recipients")
        return [
            Feedback(
                kind="delivered",
                recipient=str(r),
                message_id=message_id,
                occurred_at=_timestamp(delivery.get("timestamp")),
                detail=str(delivery.get("smtpResponse") or ""),
            )
            for r in recipients
            if r
        ]
    return []


def sns_envelope(body: bytes) -> dict[str, Any] | None:
    """The SNS message object of an SNS HTTP(S) delivery, or None for SES's JSON itself (raw delivery).

    Raises:
        FeedbackError: the body is not JSON, or is neither an SNS message nor an SES notification.
    """
    try:
        envelope = json.loads(body)
    except ValueError as err:
        raise FeedbackError(f"the body is not JSON: {err}") from None
    if not isinstance(envelope, dict):
        raise FeedbackError("the body is not an SNS message (no Type)")
    if "Type" in envelope:
        return envelope
    if "notificationType" in envelope or "eventType" in envelope:
        return None
    raise FeedbackError("the body is not an SNS message (no Type)")


def parse_sns(body: bytes) -> SubscriptionConfirmation | list[Feedback]:
    """An SNS HTTP(S) delivery: a SubscriptionConfirmation, or a Notification whose Message is SES's JSON
    (or, with raw message delivery, SES's JSON itself).

    UnsubscribeConfirmation and notifications of other kinds give an empty list.

    Raises:
        FeedbackError: the body is not SNS JSON, or its Message is not SES notification JSON.
    """
    try:
        envelope = json.loads(body)
    except ValueError as err:
        raise FeedbackError(f"the body is not JSON: {err}") from None
    if (
        isinstance(envelope, dict)
        and "Type" not in envelope
        and ("notificationType" in envelope or "eventType" in envelope)
    ):
        return parse_ses_notification(envelope)  # SNS raw message delivery: SES's JSON as is
    if not isinstance(envelope, dict) or "Type" not in envelope:
        raise FeedbackError("the body is not an SNS message (no Type)")
    kind = envelope["Type"]
    if kind == "SubscriptionConfirmation":
        url = envelope.get("SubscribeURL")
        if not isinstance(url, str) or not url:
            raise FeedbackError("the SubscriptionConfirmation has no SubscribeURL")
        return SubscriptionConfirmation(str(envelope.get("TopicArn") or ""), url)
    if kind != "Notification":
        return []
    message = envelope.get("Message")
    try:
        notification = json.loads(message) if isinstance(message, str) else message
    except ValueError:
        raise FeedbackError("the SNS Message is not JSON (enable raw SES notifications)") from None
    if not isinstance(notification, dict):
        raise FeedbackError("the SNS Message is not an SES notification object")
    return parse_ses_notification(notification)


def sign(body: bytes, secret: str) -> str:
    """The ``X-Sojourn-Signature`` value of ``body``: ``sha256=`` + hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant-time)."""
    return bool(header) and hmac.compare_digest(sign(body, secret), str(header).strip())


def parse_webhook(body: bytes) -> list[Feedback]:
    """The generic webhook: one event object or ``{"events": [...]}``.

    An event is ``{"type": "hardbounce"|"softbounce"|"complaint"|"delivered" (or "_email.<type>"),
    "recipient": address, "message_id"?: str, "feedback_id"?: str, "timestamp"?: ISO 8601, "detail"?: str}``.

    Raises:
        FeedbackError: the body is not such JSON; the message names the first bad field.
    """
    try:
        payload = json.loads(body)
    except ValueError as err:
        raise FeedbackError(f"the body is not JSON: {err}") from None
    items = payload.get("events") if isinstance(payload, dict) and "events" in payload else [payload]
    if not isinstance(items, list) or not items:
        raise FeedbackError('send one event object or {"events": [event, ...]}')
    out: list[Feedback] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise FeedbackError(f"events[{i}] is not an object")
        kind = str(item.get("type") or "").removeprefix("_email.")
        if kind not in KINDS:
            raise FeedbackError(f"events[{i}].type {item.get('type')!r} is not one of {', '.join(KINDS)}")
        recipient = str(item.get("recipient") or "").strip()
        if "@" not in recipient:
            raise FeedbackError(f"events[{i}].recipient {recipient!r} is not an email address")
        when = item.get("timestamp")
        occurred_at = _timestamp(when)
        if when is not None and occurred_at is None:
            raise FeedbackError(f"events[{i}].timestamp {when!r} is not an ISO 8601 timestamp")
        out.append(
            Feedback(
                kind=kind,
                recipient=recipient,
                message_id=ledger_message_id(item.get("message_id")),
                feedback_id=item.get("feedback_id"),
                occurred_at=occurred_at,
                detail=str(item.get("detail") or ""),
            )
        )
    return out


def _original_message_id(report: Message) -> str | None:
    for part in report.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            original: Message | None = None
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                original = payload[0]
            elif isinstance(payload, str):
                original = email.message_from_string(payload, policy=email.policy.compat32)
            if original is not None and original.get("Message-ID"):
                return ledger_message_id(str(original["Message-ID"]))
    return None


def _address_field(value: str | None) -> str:
    """``rfc822; ana@example.com`` → ``ana@example.com``."""
    if not value:
        return ""
    _type, _, address = str(value).partition(";")
    return parseaddr((address or _type).strip())[1]


def parse_dsn(raw: bytes) -> list[Feedback]:
    """A bounce email: an RFC 3464 delivery status notification (or an RFC 5965 ARF complaint).

    Per recipient: Action failed with a 5.x.x Status is a hard bounce, with 4.x.x a soft bounce;
    Action delivered/relayed is a delivery; delayed is not final and gives nothing.

    Raises:
        FeedbackError: the email is not a multipart/report of report-type delivery-status or feedback-report.
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    report_type = str(message.get_param("report-type") or "").lower()
    if message.get_content_type() != "multipart/report" or report_type not in (
        "delivery-status",
        "feedback-report",
    ):
        raise FeedbackError(
            "not a delivery status notification (multipart/report; report-type=delivery-status)"
        )
    message_id = _original_message_id(message)
    if report_type == "feedback-report":
        return _parse_arf(message, message_id)
    out: list[Feedback] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in [
            b for b in blocks[1:] if isinstance(b, Message)
        ]:  # the first block is per-message; then one per recipient
            recipient = _address_field(block.get("Final-Recipient") or block.get("Original-Recipient"))
            action = str(block.get("Action") or "").strip().lower()
            status = str(block.get("Status") or "").strip()
            if not recipient:
                continue
            diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
            if action == "failed":
                kind = "hardbounce" if status.startswith("5") else "softbounce"
            elif action in ("delivered", "relayed"):
                kind = "delivered"
            else:
                continue
            out.append(
                Feedback(
                    kind=kind,
                    recipient=recipient,
                    message_id=message_id,
                    detail="; ".join(x for x in (f"{action} {status}".strip(), diagnostic) if x),
                )
            )
    if not out and not any(p.get_content_type() == "message/delivery-status" for p in message.walk()):
        raise FeedbackError("the report has no message/delivery-status part")
    return out


def _parse_arf(message: Message, message_id: str | None) -> list[Feedback]:
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        fields: Message | None = None
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            fields = payload[0]
        elif isinstance(payload, str):
            fields = email.message_from_string(payload, policy=email.policy.compat32)
        if fields is None:
            continue
        recipient = _address_field(fields.get("Original-Rcpt-To"))
        if not recipient:
            for inner in message.walk():
                originals = inner.get_payload() if inner.get_content_type() == "message/rfc822" else None
                if isinstance(originals, list) and originals and isinstance(originals[0], Message):
                    recipient = parseaddr(str(originals[0].get("To") or ""))[1]
        if recipient:
            return [
                Feedback(
                    kind="complaint",
                    recipient=recipient,
                    message_id=message_id,
                    detail=str(fields.get("Feedback-Type") or "abuse").strip(),
                )
            ]
    raise FeedbackError("the feedback report names no recipient (Original-Rcpt-To)")
