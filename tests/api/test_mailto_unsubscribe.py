"""RFC 2369 mailto unsubscribes: list mail offers a mailto URI with the one-click token, and a mail to it,
sent over real SMTP to sojourn's listener, unsubscribes exactly as the one-click POST does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.settings import Settings
from sojourn.store import subscription_repo, suppression_repo
from tests.support.api_server import boto3_client, serve_api
from tests.support.helpers import free_port, unique
from tests.support.lists import TOPICS, stored_contact
from tests.support.smtp import SmtpSink

MAILTO = "unsubscribe@lists.example.com"


@pytest.fixture(scope="module")
def listener_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def api(database_url: str, sink: SmtpSink, listener_port: int) -> Iterator[tuple[str, Settings]]:
    with serve_api(
        database_url,
        smtp_url=sink.url,
        default_from_address="news@example.com",
        list_unsubscribe_mailto=MAILTO,
        bounce_smtp_port=listener_port,
        bounce_mailbox="bounces@lists.example.com",
    ) as served:
        yield served


@pytest.fixture(scope="module")
def sesv2(api: tuple[str, Settings]) -> Any:
    return boto3_client("sesv2", api[0])


def _list_mail_mailto(sesv2: Any, sink: SmtpSink, name: str, to: str, topic: str | None) -> tuple[str, str]:
    """Send list mail to ``to`` and return the (address, subject) of its List-Unsubscribe mailto URI."""
    subject = unique("mailto-")
    options = {"ContactListName": name, **({"TopicName": topic} if topic else {})}
    sesv2.send_email(
        Destination={"ToAddresses": [to]},
        Content={"Simple": {"Subject": {"Data": subject}, "Body": {"Text": {"Data": "news"}}}},
        ListManagementOptions=options,
    )
    [mail] = [m for m in sink.messages if m.subject == subject]
    match = re.search(r"<mailto:([^>]+)>", str(mail.message["List-Unsubscribe"]))
    assert match is not None
    uri = urlsplit("mailto:" + match.group(1))
    return unquote(uri.path), parse_qs(uri.query)["subject"][0]


async def _mail(port: int, sender: str, to: str, subject: str) -> str:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content("Sent by the mail client's unsubscribe button.")
    _errors, reply = await aiosmtplib.send(message, hostname="127.0.0.1", port=port)
    return reply


async def test_a_mail_to_the_mailto_address_unsubscribes_from_the_list(
    sesv2: Any, sink: SmtpSink, db: AsyncEngine, listener_port: int
) -> None:
    email = f"mailto-{uuid.uuid4().hex[:8]}@example.com"
    name = unique("mailto-")
    sesv2.create_contact_list(ContactListName=name, Topics=TOPICS)
    sesv2.create_contact(ContactListName=name, EmailAddress=email)
    address, subject = _list_mail_mailto(sesv2, sink, name, email, topic=None)
    assert address == MAILTO and subject.startswith("unsubscribe ")

    for _ in range(2):  # a second mail (a double click) changes nothing more
        reply = await _mail(listener_port, email, address, subject)
        assert "unsubscribed" in reply
    contact = await stored_contact(db, name, email)
    assert contact.unsubscribe_all is True
    async with db.connect() as conn:
        entry = await suppression_repo.get(conn, email)
        events = await subscription_repo.list_events(conn, list_name=name, email=email)
    assert entry is not None and entry.reason == "UNSUBSCRIBE"
    assert [e["subscription"]["source"] for e in events] == ["UnsubscribeFromMailto"]


async def test_a_topic_mailto_leaves_only_the_topic(
    sesv2: Any, sink: SmtpSink, db: AsyncEngine, listener_port: int
) -> None:
    email = f"topic-{uuid.uuid4().hex[:8]}@example.com"
    name = unique("mailto-")
    sesv2.create_contact_list(ContactListName=name, Topics=TOPICS)
    sesv2.create_contact(ContactListName=name, EmailAddress=email)
    address, subject = _list_mail_mailto(sesv2, sink, name, email, topic="weekly")
    # A reply keeps the token after "Re:".
    assert "unsubscribed" in await _mail(listener_port, email, address, f"Re: {subject}")
    contact = await stored_contact(db, name, email)
    assert contact.topic_preferences == {"weekly": "OPT_OUT"} and contact.unsubscribe_all is False


async def test_invalid_tokens_are_ignored(
    sesv2: Any, sink: SmtpSink, db: AsyncEngine, listener_port: int
) -> None:
    email = f"bad-{uuid.uuid4().hex[:8]}@example.com"
    name = unique("mailto-")
    sesv2.create_contact_list(ContactListName=name, Topics=TOPICS)
    sesv2.create_contact(ContactListName=name, EmailAddress=email)
    address, subject = _list_mail_mailto(sesv2, sink, name, email, topic=None)
    payload, tag = subject.removeprefix("unsubscribe ").split(".")
    forged = f"unsubscribe {payload}.{tag[::-1]}"
    assert "not a valid unsubscribe token; ignored" in await _mail(listener_port, email, address, forged)
    assert "no unsubscribe token; ignored" in await _mail(listener_port, email, address, "please stop")
    # Other recipients than the bounce mailbox and the unsubscribe address are refused.
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await _mail(listener_port, email, "someone@lists.example.com", subject)
    contact = await stored_contact(db, name, email)
    assert contact.unsubscribe_all is False and contact.topic_preferences == {}
    async with db.connect() as conn:
        assert await subscription_repo.list_events(conn, list_name=name, email=email) == []
