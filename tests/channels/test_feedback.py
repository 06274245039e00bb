"""Parsers of delivery feedback: SNS/SES JSON, the signed webhook, DSN and ARF emails."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sojourn.channels.feedback import (
    Feedback,
    FeedbackError,
    SubscriptionConfirmation,
    ledger_message_id,
    parse_dsn,
    parse_ses_notification,
    parse_sns,
    parse_webhook,
    sign,
    signature_matches,
)

MAIL = {
    "timestamp": "2026-11-20T10:00:00.000Z",
    "messageId": "0100017f-ses-id",
    "source": "hello@sojourn.test",
    "destination": ["ana@example.com"],
    "headers": [{"name": "Message-ID", "value": "<abc123@sojourn.test>"}],
}


def sns(message: dict[str, Any]) -> bytes:
    return json.dumps({"Type": "Notification", "MessageId": "m1", "Message": json.dumps(message)}).encode()


def test_permanent_bounce_is_hard_transient_is_soft() -> None:
    bounce = {
        "notificationType": "Bounce",
        "mail": MAIL,
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "feedbackId": "fb-1",
            "timestamp": "2026-11-20T10:00:05.000Z",
            "bouncedRecipients": [
                {"emailAddress": "ana@example.com", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
            ],
        },
    }
    (hard,) = parse_sns(sns(bounce))  # type: ignore[misc]
    assert hard.kind == "hardbounce" and hard.recipient == "ana@example.com"
    assert hard.message_id == "abc123" and hard.feedback_id == "fb-1"
    assert hard.event_type == "_email.hardbounce" and hard.suppression_reason == "BOUNCE"
    assert "550 5.1.1" in hard.detail and hard.occurred_at is not None
    # Raw message delivery: SES's JSON without the SNS envelope.
    assert parse_sns(json.dumps(bounce).encode()) == [hard]
    bounce["bounce"]["bounceType"] = "Transient"  # type: ignore[index]
    (soft,) = parse_ses_notification(bounce)
    assert soft.kind == "softbounce" and soft.suppression_reason is None


def test_complaint_and_delivery_and_event_publishing_names() -> None:
    complaint = {
        "eventType": "Complaint",
        "mail": {**MAIL, "headers": [], "commonHeaders": {"messageId": "<xyz@host>"}},
        "complaint": {
            "complainedRecipients": [{"emailAddress": "bo@example.com"}],
            "feedbackId": "fb-2",
            "complaintFeedbackType": "abuse",
        },
    }
    (item,) = parse_ses_notification(complaint)
    assert (item.kind, item.recipient, item.message_id, item.suppression_reason) == (
        "complaint",
        "bo@example.com",
        "xyz",
        "COMPLAINT",
    )
    delivery = {
        "notificationType": "Delivery",
        "mail": MAIL,
        "delivery": {"recipients": ["a@x.io", "b@x.io"]},
    }
    assert [f.kind for f in parse_ses_notification(delivery)] == ["delivered", "delivered"]
    assert parse_ses_notification({"eventType": "Open", "mail": MAIL}) == []


def test_subscription_confirmation_and_errors() -> None:
    body = json.dumps(
        {
            "Type": "SubscriptionConfirmation",
            "TopicArn": "arn:aws:sns:x:1:t",
            "SubscribeURL": "https://sns/confirm",
        }
    ).encode()
    assert parse_sns(body) == SubscriptionConfirmation("arn:aws:sns:x:1:t", "https://sns/confirm")
    with pytest.raises(FeedbackError, match="not JSON"):
        parse_sns(b"<xml/>")
    with pytest.raises(FeedbackError, match="no Type"):
        parse_sns(b"{}")
    with pytest.raises(FeedbackError, match="bouncedRecipients"):
        parse_sns(sns({"notificationType": "Bounce", "bounce": {}}))


def test_webhook_signature_and_body() -> None:
    body = json.dumps(
        {"events": [{"type": "_email.complaint", "recipient": "c@x.io", "message_id": "<m1@h>"}]}
    ).encode()
    assert signature_matches(body, sign(body, "s3cret"), "s3cret")
    assert not signature_matches(body, sign(body, "other"), "s3cret")
    assert not signature_matches(body + b" ", sign(body, "s3cret"), "s3cret")
    assert not signature_matches(body, None, "s3cret")
    assert parse_webhook(body) == [Feedback(kind="complaint", recipient="c@x.io", message_id="m1")]
    single = parse_webhook(
        b'{"type": "delivered", "recipient": "d@x.io", "timestamp": "2026-01-01T00:00:00Z"}'
    )
    assert single[0].kind == "delivered" and single[0].occurred_at is not None
    with pytest.raises(FeedbackError, match=r"events\[0\]\.type"):
        parse_webhook(b'{"type": "opened", "recipient": "d@x.io"}')
    with pytest.raises(FeedbackError, match="recipient"):
        parse_webhook(b'{"type": "delivered", "recipient": "nobody"}')
    with pytest.raises(FeedbackError, match="timestamp"):
        parse_webhook(b'{"type": "delivered", "recipient": "d@x.io", "timestamp": "yesterday"}')


DSN = b"""From: MAILER-DAEMON@mx.example.com
To: bounces@sojourn.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain

Your message could not be delivered.

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; gone@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address
 rejected: User unknown

Final-Recipient: rfc822; full@example.com
Action: failed
Status: 4.2.2
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full

Final-Recipient: rfc822; slow@example.com
Action: delayed
Status: 4.4.1

--BOUND
Content-Type: text/rfc822-headers

From: hello@sojourn.test
To: gone@example.com
Subject: welcome
Message-ID: <d41d8cd98f00b204e9800998ecf8427e@sojourn.test>

--BOUND--
"""

ARF = b"""From: fbl@isp.example
To: bounces@sojourn.test
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B2"

--B2
Content-Type: text/plain

This is an abuse report.

--B2
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: isp-fbl/1.0
Version: 1
Original-Rcpt-To: <angry@example.com>

--B2
Content-Type: message/rfc822

From: hello@sojourn.test
To: angry@example.com
Message-ID: <feedfacefeedfacefeedfacefeedface@sojourn.test>
Subject: hi

hi
--B2--
"""


def test_dsn_per_recipient_outcomes() -> None:
    items = parse_dsn(DSN)
    assert [(f.kind, f.recipient) for f in items] == [
        ("hardbounce", "gone@example.com"),
        ("softbounce", "full@example.com"),
    ]
    assert all(f.message_id == "d41d8cd98f00b204e9800998ecf8427e" for f in items)
    assert "User unknown" in items[0].detail


def test_arf_complaint() -> None:
    (item,) = parse_dsn(ARF)
    assert (item.kind, item.recipient, item.message_id, item.detail) == (
        "complaint",
        "angry@example.com",
        "feedfacefeedfacefeedfacefeedface",
        "abuse",
    )


def test_plain_email_is_not_a_dsn() -> None:
    with pytest.raises(FeedbackError, match="not a delivery status notification"):
        parse_dsn(b"From: a@b\r\nTo: c@d\r\nSubject: hi\r\n\r\nhello\r\n")


def test_ledger_message_id() -> None:
    assert ledger_message_id("<abc@host>") == "abc"
    assert ledger_message_id("abc") == "abc"
    assert ledger_message_id("") is None
