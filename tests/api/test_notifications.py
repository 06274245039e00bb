"""Bounce and complaint intake over HTTP (SNS, signed webhook) and SMTP (DSN), into Postgres."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.channels.feedback import sign
from sojourn.settings import Settings
from sojourn.store import suppression_repo
from sojourn.store.db import create_engine
from tests.support.api_server import serve
from tests.support.helpers import free_port
from tests.support.sns import SnsSigner, sns_signer

SECRET = "feedback-secret"


@pytest.fixture(scope="module")
def bounce_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def signer() -> Iterator[SnsSigner]:
    with sns_signer() as s:
        yield s


@pytest.fixture(scope="module")
def api(database_url: str, bounce_port: int, signer: SnsSigner) -> Iterator[str]:
    settings = Settings(
        database_url=database_url,
        feedback_secret=SECRET,
        sns_cert_url_pattern=signer.url_pattern,
        bounce_smtp_port=bounce_port,
        bounce_mailbox="bounces@sojourn.test",
    )
    state = AppState(db=create_engine(database_url, pool_size=2), settings=settings)
    with serve(create_app(settings, state)) as url:
        yield url


async def _sent_message(db: AsyncEngine) -> tuple[str, str, str, str]:
    """An app, an endpoint and a sent message to it: (app id, endpoint id, address, message id)."""
    app_id, address = f"fb{uuid.uuid4().hex[:10]}", f"{uuid.uuid4().hex[:10]}@example.com"
    message_id = uuid.uuid4().hex
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO apps (id, name) VALUES (:a, 'fb')"), {"a": app_id})
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, cohort_id) VALUES (:a, 'ep', 'EMAIL', :x, 0)"
            ),
            {"a": app_id, "x": address},
        )
        await conn.execute(
            text(
                "INSERT INTO messages (message_id, app_id, endpoint_id, channel, address, status, sent_at) "
                "VALUES (:m, :a, 'ep', 'EMAIL', :x, 'sent', now())"
            ),
            {"m": message_id, "a": app_id, "x": address},
        )
    return app_id, "ep", address, message_id


async def _state(db: AsyncEngine, app_id: str, message_id: str) -> tuple[list[str], tuple[str, str]]:
    async with db.connect() as conn:
        events = [
            r[0]
            for r in await conn.execute(
                text("SELECT event_type FROM events WHERE app_id = :a ORDER BY id"), {"a": app_id}
            )
        ]
        row = (
            await conn.execute(
                text("SELECT status, status_message FROM messages WHERE message_id = :m"), {"m": message_id}
            )
        ).one()
    return events, (row.status, row.status_message)


def _sns(signer: SnsSigner, notification: dict[str, Any]) -> str:
    return json.dumps(signer.notification(notification))


async def test_sns_hard_bounce_suppresses_and_fails_the_message(
    api: str, db: AsyncEngine, signer: SnsSigner
) -> None:
    app_id, _, address, message_id = await _sent_message(db)
    bounce = {
        "notificationType": "Bounce",
        "mail": {
            "messageId": "ses-1",
            "headers": [{"name": "Message-ID", "value": f"<{message_id}@sojourn.test>"}],
        },
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "feedbackId": "fb-1",
            "bouncedRecipients": [{"emailAddress": address, "diagnosticCode": "smtp; 550 5.1.1 unknown"}],
        },
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{api}/notifications/ses?token={SECRET}", content=_sns(signer, bounce))
        assert response.status_code == 200, response.text
        assert response.json()["events"] == 1 and response.json()["suppressed"] == 1
        # SNS redelivers: the same notification again records no second event.
        again = await client.post(f"{api}/notifications/ses?token={SECRET}", content=_sns(signer, bounce))
        assert again.json()["events"] == 0
        assert (
            await client.post(f"{api}/notifications/ses", content=_sns(signer, bounce))
        ).status_code == 401
        bad = await client.post(f"{api}/notifications/ses?token={SECRET}", content="{}")
        assert bad.status_code == 400 and "SNS" in bad.json()["message"]
        confirmation = {
            "Type": "SubscriptionConfirmation",
            "MessageId": "m-1",
            "Token": "t-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": "https://sns.example/c",
            "Timestamp": "2026-11-23T12:00:00.000Z",
        }
        confirm = await client.post(
            f"{api}/notifications/ses?token={SECRET}", content=json.dumps(signer.sign(confirmation))
        )
        # Verified, but its SubscribeURL is not SNS's: sojourn does not visit it; an operator may.
        assert confirm.json() == {"subscription": "pending", "subscribe_url": "https://sns.example/c"}
        ours = {**confirmation, "SubscribeURL": f"{signer.base_url}/confirm?Token=t-1"}
        confirmed = await client.post(
            f"{api}/notifications/ses?token={SECRET}", content=json.dumps(signer.sign(ours))
        )
        assert confirmed.json() == {"subscription": "confirmed"}
        assert signer.confirmed == ["/confirm?Token=t-1"]
        # A tampered confirmation is refused and visits nothing.
        forged = {**signer.sign(ours), "SubscribeURL": f"{signer.base_url}/confirm?Token=forged"}
        refused = await client.post(f"{api}/notifications/ses?token={SECRET}", content=json.dumps(forged))
        assert refused.status_code == 403 and signer.confirmed == ["/confirm?Token=t-1"]

    events, (status, why) = await _state(db, app_id, message_id)
    assert events == ["_email.hardbounce"]
    assert status == "failed" and why.startswith("PERMANENT_FAILURE: hard bounce")
    async with db.connect() as conn:
        entry = await suppression_repo.get(conn, address)
    assert entry is not None and entry.reason == "BOUNCE" and entry.message_id == message_id
    assert entry.feedback_id == "fb-1"


async def test_sns_delivery_and_soft_bounce_do_not_suppress(
    api: str, db: AsyncEngine, signer: SnsSigner
) -> None:
    app_id, _, address, message_id = await _sent_message(db)
    mail = {"commonHeaders": {"messageId": f"<{message_id}@sojourn.test>"}}
    async with httpx.AsyncClient() as client:
        for notification in (
            {"notificationType": "Delivery", "mail": mail, "delivery": {"recipients": [address]}},
            {
                "eventType": "Bounce",
                "mail": mail,
                "bounce": {"bounceType": "Transient", "bouncedRecipients": [{"emailAddress": address}]},
            },
        ):
            response = await client.post(
                f"{api}/notifications/ses?token={SECRET}", content=_sns(signer, notification)
            )
            assert response.status_code == 200 and response.json()["suppressed"] == 0
    events, (status, why) = await _state(db, app_id, message_id)
    assert events == ["_email.delivered", "_email.softbounce"]
    assert status == "failed" and why.startswith("TEMPORARY_FAILURE: soft bounce")
    async with db.connect() as conn:
        assert await suppression_repo.get(conn, address) is None


async def test_signed_webhook_complaint(api: str, db: AsyncEngine) -> None:
    app_id, _, address, message_id = await _sent_message(db)
    body = json.dumps(
        {"events": [{"type": "complaint", "recipient": address, "message_id": message_id}]}
    ).encode()
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(f"{api}/notifications/webhook", content=body)
        assert unsigned.status_code == 401 and "X-Sojourn-Signature" in unsigned.json()["message"]
        wrong = await client.post(
            f"{api}/notifications/webhook", content=body, headers={"X-Sojourn-Signature": sign(body, "nope")}
        )
        assert wrong.status_code == 401
        bad = b'{"type": "opened", "recipient": "x@y.z"}'
        invalid = await client.post(
            f"{api}/notifications/webhook", content=bad, headers={"X-Sojourn-Signature": sign(bad, SECRET)}
        )
        assert invalid.status_code == 400 and "type" in invalid.json()["message"]
        ok = await client.post(
            f"{api}/notifications/webhook", content=body, headers={"X-Sojourn-Signature": sign(body, SECRET)}
        )
        assert ok.status_code == 200 and ok.json()["suppressed"] == 1
        # An address sojourn has no endpoint for is still suppressed.
        stranger = f"{uuid.uuid4().hex[:10]}@example.com"
        body2 = json.dumps({"type": "_email.hardbounce", "recipient": stranger}).encode()
        unknown = await client.post(
            f"{api}/notifications/webhook",
            content=body2,
            headers={"X-Sojourn-Signature": sign(body2, SECRET)},
        )
        assert unknown.json() == {"events": 0, "suppressed": 1, "ledger_updates": 0, "unmatched": 1}
    events, (status, why) = await _state(db, app_id, message_id)
    assert events == ["_email.complaint"] and status == "sent" and why == "COMPLAINT"
    async with db.connect() as conn:
        entry = await suppression_repo.get(conn, address)
    assert entry is not None and entry.reason == "COMPLAINT"


async def test_redelivered_feedback_without_message_id_counts_once(api: str, db: AsyncEngine) -> None:
    app_id, _, address, _ = await _sent_message(db)
    body = json.dumps({"type": "softbounce", "recipient": address, "feedback_id": "fb-soft-1"}).encode()
    headers = {"X-Sojourn-Signature": sign(body, SECRET)}
    async with httpx.AsyncClient() as client:
        first = await client.post(f"{api}/notifications/webhook", content=body, headers=headers)
        again = await client.post(f"{api}/notifications/webhook", content=body, headers=headers)
    assert (first.json()["events"], again.json()["events"]) == (1, 0)
    async with db.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM events WHERE app_id = :a"), {"a": app_id})
    assert count == 1


DSN = """From: MAILER-DAEMON@mx.example.com
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

Final-Recipient: rfc822; {address}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--BOUND
Content-Type: text/rfc822-headers

From: hello@sojourn.test
To: {address}
Message-ID: <{message_id}@sojourn.test>

--BOUND--
"""


@pytest.mark.usefixtures("api")
async def test_dsn_email_to_the_bounce_mailbox(db: AsyncEngine, bounce_port: int) -> None:
    app_id, _, address, message_id = await _sent_message(db)
    raw = DSN.format(address=address, message_id=message_id).replace("\n", "\r\n")
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=bounce_port)
    await smtp.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await smtp.sendmail("", ["someone@sojourn.test"], raw)
        errors, reply = await smtp.sendmail("", ["bounces@sojourn.test"], raw)
        assert not errors and "1 events, 1 suppressed" in reply
        _, ignored = await smtp.sendmail("", ["bounces@sojourn.test"], "Subject: hi\r\n\r\nhello\r\n")
        assert "ignored" in ignored
    finally:
        await smtp.quit()
    events, (status, _) = await _state(db, app_id, message_id)
    assert events == ["_email.hardbounce"] and status == "failed"
    async with db.connect() as conn:
        entry = await suppression_repo.get(conn, address)
    assert entry is not None and entry.reason == "BOUNCE"


def _bounce_for(address: str, feedback_id: str) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "mail": {"messageId": "ses-x"},
        "bounce": {
            "bounceType": "Permanent",
            "feedbackId": feedback_id,
            "bouncedRecipients": [{"emailAddress": address}],
        },
    }


async def test_sns_signatures_are_verified(api: str, db: AsyncEngine, signer: SnsSigner) -> None:
    address = f"{uuid.uuid4().hex[:10]}@example.com"
    url = f"{api}/notifications/ses?token={SECRET}"
    genuine = signer.notification(_bounce_for(address, "fb-sig"))
    tampered = {**genuine, "Message": json.dumps(_bounce_for(f"x{address}", "fb-sig"))}
    unknown_version = {**genuine, "SignatureVersion": "3"}
    # Signed with SHA1 but claiming SHA256: the signature does not match.
    sha1 = signer.notification(_bounce_for(address, "fb-sig"), version="1")
    mislabelled = {**sha1, "SignatureVersion": "2"}
    foreign_host = signer.sign(
        {
            **signer.notification(_bounce_for(address, "fb-sig")),
            "SigningCertURL": "https://sns.attacker.example/c.pem",
        }
    )
    unsigned = {k: v for k, v in genuine.items() if k != "Signature"}
    async with httpx.AsyncClient() as client:
        for bad, why in (
            (tampered, "does not match"),
            (unknown_version, "SignatureVersion"),
            (mislabelled, "does not match"),
            (foreign_host, "not an SNS host"),
            (unsigned, "no Signature"),
        ):
            response = await client.post(url, content=json.dumps(bad))
            assert response.status_code == 403, response.text
            assert why in response.json()["message"]
        async with db.connect() as conn:
            assert await suppression_repo.get(conn, address) is None
            assert await suppression_repo.get(conn, f"x{address}") is None
        fetches = signer.fetches
        for good in (genuine, sha1):
            response = await client.post(url, content=json.dumps(good))
            assert response.status_code == 200, response.text
        # The certificate is cached per URL: the two genuine messages fetched it no more.
        assert signer.fetches == fetches
        # SNS raw message delivery has no signature: accepted here because the token authenticates it.
        raw = await client.post(url, content=json.dumps(_bounce_for(f"raw{address}", "fb-raw")))
        assert raw.status_code == 200 and raw.json()["suppressed"] == 1
    async with db.connect() as conn:
        entry = await suppression_repo.get(conn, address)
    assert entry is not None and entry.reason == "BOUNCE"


async def test_sns_without_a_feedback_secret_needs_signatures(database_url: str, signer: SnsSigner) -> None:
    settings = Settings(database_url=database_url, sns_cert_url_pattern=signer.url_pattern)
    state = AppState(db=create_engine(database_url, pool_size=1), settings=settings)
    address = f"{uuid.uuid4().hex[:10]}@example.com"
    with serve(create_app(settings, state)) as url:
        async with httpx.AsyncClient() as client:
            raw = await client.post(f"{url}/notifications/ses", content=json.dumps(_bounce_for(address, "r")))
            assert raw.status_code == 403 and "raw message delivery" in raw.json()["message"]
            signed = signer.notification(_bounce_for(address, "s"))
            ok = await client.post(f"{url}/notifications/ses", content=json.dumps(signed))
            assert ok.status_code == 200 and ok.json()["suppressed"] == 1
    await state.db.dispose()
