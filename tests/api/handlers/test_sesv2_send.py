"""sesv2 SendEmail through a real boto3 client, the real API and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api_server import boto3_client, serve_api
from tests.support.helpers import unique
from tests.support.smtp import Received, SmtpSink

MAILTO = "unsubscribe@lists.example.com"


@pytest.fixture(scope="module")
def api(database_url: str, sink: SmtpSink) -> Iterator[str]:
    with serve_api(
        database_url,
        smtp_url=sink.url,
        default_from_address="news@example.com",
        list_unsubscribe_mailto=MAILTO,
    ) as (url, _):
        yield url


@pytest.fixture(scope="module")
def sesv2(api: str) -> Any:
    return boto3_client("sesv2", api)


def simple(subject: str, body: str = "Hello", html: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}}
    if html is not None:
        content["Body"]["Html"] = {"Data": html}
    return {"Simple": content}


def received(sink: SmtpSink, subject: str) -> list[Received]:
    return [m for m in sink.messages if m.subject == subject]


async def ledger(db: AsyncEngine, message_id: str) -> Any:
    async with db.connect() as conn:
        return (
            await conn.execute(text("SELECT * FROM messages WHERE message_id = :m"), {"m": message_id})
        ).one()


def make_list(sesv2: Any) -> str:
    name = unique("send-")
    sesv2.create_contact_list(
        ContactListName=name,
        Topics=[
            {"TopicName": "weekly", "DisplayName": "Weekly digest", "DefaultSubscriptionStatus": "OPT_IN"},
            {"TopicName": "offers", "DisplayName": "Offers", "DefaultSubscriptionStatus": "OPT_OUT"},
        ],
    )
    return name


async def test_simple_send_is_delivered_and_in_the_ledger(
    sesv2: Any, sink: SmtpSink, db: AsyncEngine
) -> None:
    subject = unique("simple-")
    out = sesv2.send_email(
        FromEmailAddress="Team <team@example.com>",
        Destination={"ToAddresses": ["ada@example.com"], "CcAddresses": ["bob@example.com"]},
        ReplyToAddresses=["help@example.com"],
        Content=simple(subject, "Plain body", "<p>HTML body</p>"),
    )
    [mail] = received(sink, subject)
    assert sorted(mail.rcpt_tos) == ["ada@example.com", "bob@example.com"]
    assert mail.message["Cc"] == "bob@example.com" and mail.message["Reply-To"] == "help@example.com"
    assert mail.text().strip() == "Plain body" and "HTML body" in mail.html()
    assert out["MessageId"] in mail.message_id and "List-Unsubscribe" not in mail.message
    row = await ledger(db, out["MessageId"])
    assert (row.status, row.app_id, row.journey_id, row.campaign_id) == ("sent", "sesv2", None, None)


def test_cc_and_bcc_only_sends(sesv2: Any, sink: SmtpSink) -> None:
    subject = unique("bcc-")
    sesv2.send_email(
        Destination={
            "CcAddresses": ["cc@example.com"],
            "BccAddresses": ["bcc1@example.com", "bcc2@example.com"],
        },
        Content=simple(subject),
    )
    [mail] = received(sink, subject)
    assert mail.rcpt_tos == ["cc@example.com", "bcc1@example.com", "bcc2@example.com"]
    assert "bcc1@example.com" not in str(mail.message) and mail.message["Bcc"] is None


async def test_list_mail_gets_unsubscribe_headers_and_url(
    sesv2: Any, sink: SmtpSink, db: AsyncEngine
) -> None:
    name = make_list(sesv2)
    sesv2.create_contact(ContactListName=name, EmailAddress="ada@example.com")
    subject = unique("list-")
    body = "A {{amazonSESUnsubscribeUrl}} B {{amazonSESUnsubscribeUrl}} C {{amazonSESUnsubscribeUrl}}"
    out = sesv2.send_email(
        Destination={"ToAddresses": ["ada@example.com"]},
        Content=simple(subject, body, '<a href="{{amazonSESUnsubscribeUrl}}">unsubscribe</a>'),
        ListManagementOptions={"ContactListName": name, "TopicName": "weekly"},
    )
    [mail] = received(sink, subject)
    assert mail.mail_from == "news@example.com"  # the configured default From
    header = str(mail.message["List-Unsubscribe"])
    match = re.fullmatch(r"<(http://127\.0\.0\.1:\d+/u/[A-Za-z0-9_.-]+)>, <mailto:(.+)\?subject=.+>", header)
    assert match is not None and match.group(2) == MAILTO
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    urls = re.findall(r"http://127\.0\.0\.1:\d+/preferences/[A-Za-z0-9_.-]+", mail.text())
    assert len(urls) == 2 and mail.text().strip().endswith("C {{amazonSESUnsubscribeUrl}}")
    assert urls[0] in mail.html()
    assert (await ledger(db, out["MessageId"])).status == "sent"

    # The header's one-click URL (RFC 8058) unsubscribes from the topic; the next send is skipped.
    async with httpx.AsyncClient() as http:
        response = await http.post(match.group(1), content="List-Unsubscribe=One-Click")
    assert response.status_code == 200
    contact = sesv2.get_contact(ContactListName=name, EmailAddress="ada@example.com")
    assert contact["TopicPreferences"] == [{"TopicName": "weekly", "SubscriptionStatus": "OPT_OUT"}]
    assert contact["UnsubscribeAll"] is False
    skipped = unique("after-")
    again = sesv2.send_email(
        Destination={"ToAddresses": ["ada@example.com"]},
        Content=simple(skipped),
        ListManagementOptions={"ContactListName": name, "TopicName": "weekly"},
    )
    assert received(sink, skipped) == []
    row = await ledger(db, again["MessageId"])
    assert row.status == "skipped" and "unsubscribed" in row.status_message


async def test_only_subscribed_recipients_get_list_mail(sesv2: Any, sink: SmtpSink, db: AsyncEngine) -> None:
    name = make_list(sesv2)
    sesv2.create_contact(ContactListName=name, EmailAddress="all-out@example.com", UnsubscribeAll=True)
    sesv2.create_contact(
        ContactListName=name,
        EmailAddress="offers-in@example.com",
        TopicPreferences=[{"TopicName": "offers", "SubscriptionStatus": "OPT_IN"}],
    )
    sesv2.create_contact(ContactListName=name, EmailAddress="defaults@example.com")

    def send(to: list[str], topic: str | None) -> tuple[str, list[Received]]:
        subject = unique("who-")
        options = {"ContactListName": name, **({"TopicName": topic} if topic else {})}
        out = sesv2.send_email(
            Destination={"ToAddresses": to}, Content=simple(subject), ListManagementOptions=options
        )
        return out["MessageId"], received(sink, subject)

    # Unsubscribed from all: skipped for a topic and for the whole list.
    for topic in ("weekly", None):
        message_id, mails = send(["all-out@example.com"], topic)
        assert mails == [] and (await ledger(db, message_id)).status == "skipped"
    # Topic defaults: offers is OPT_OUT by default, weekly OPT_IN; a non-contact counts with the defaults.
    assert send(["defaults@example.com"], "offers")[1] == []
    assert len(send(["defaults@example.com"], "weekly")[1]) == 1
    assert send(["stranger@example.com"], "offers")[1] == []
    assert len(send(["Stranger@Example.com"], "weekly")[1]) == 1
    [mail] = send(["offers-in@example.com"], "offers")[1]
    assert "List-Unsubscribe" in mail.message
    # Several recipients: the unsubscribed one is dropped, and SES adds no list headers to such mail.
    [mail] = send(["offers-in@example.com", "all-out@example.com", "defaults@example.com"], "offers")[1]
    assert mail.rcpt_tos == ["offers-in@example.com"]
    [mail] = send(["offers-in@example.com", "defaults@example.com"], "weekly")[1]
    assert sorted(mail.rcpt_tos) == ["defaults@example.com", "offers-in@example.com"]
    assert "List-Unsubscribe" not in mail.message


async def test_template_content_with_list_management(sesv2: Any, sink: SmtpSink) -> None:
    name = make_list(sesv2)
    template = unique("send-tpl-")
    sesv2.create_email_template(
        TemplateName=template,
        TemplateContent={
            "Subject": "Hi {{name}} " + template,
            "Text": "Leave: {{amazonSESUnsubscribeUrl}}",
            "Html": "<p>{{name}}</p><a href='{{amazonSESUnsubscribeUrl}}'>leave</a>",
        },
    )
    sesv2.send_email(
        Destination={"ToAddresses": ["tpl@example.com"]},
        Content={"Template": {"TemplateName": template, "TemplateData": '{"name": "Ada"}'}},
        ListManagementOptions={"ContactListName": name},
    )
    [mail] = received(sink, f"Hi Ada {template}")
    assert re.search(r"Leave: http://127\.0\.0\.1:\d+/preferences/\S+", mail.text())
    assert "<p>Ada</p>" in mail.html() and "/preferences/" in mail.html()
    assert "/u/" in str(mail.message["List-Unsubscribe"])


async def test_raw_content(sesv2: Any, sink: SmtpSink) -> None:
    subject = unique("raw-")
    raw = (
        f"From: raw@example.com\r\nTo: raw-to@example.com\r\nSubject: {subject}\r\n"
        "List-Unsubscribe: <https://old.example.com/x>\r\n\r\nRaw body\r\n"
    ).encode()
    name = make_list(sesv2)
    sesv2.send_email(
        FromEmailAddress="raw@example.com",
        Content={"Raw": {"Data": raw}},
        ListManagementOptions={"ContactListName": name, "TopicName": "weekly"},
    )
    [mail] = received(sink, subject)
    assert mail.rcpt_tos == ["raw-to@example.com"] and mail.text().strip() == "Raw body"
    # The list's header replaces the one the content had.
    assert mail.message.get_all("List-Unsubscribe") == [mail.message["List-Unsubscribe"]]
    assert "/u/" in str(mail.message["List-Unsubscribe"])


async def test_raw_list_management_header(sesv2: Any, sink: SmtpSink, db: AsyncEngine) -> None:
    name = make_list(sesv2)
    sesv2.create_contact(
        ContactListName=name,
        EmailAddress="hdr-out@example.com",
        TopicPreferences=[{"TopicName": "weekly", "SubscriptionStatus": "OPT_OUT"}],
    )

    def raw(to: str, subject: str) -> bytes:
        return (
            f"From: raw@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"X-SES-LIST-MANAGEMENT-OPTIONS: contactListName={name}; topicName=weekly\r\n\r\nBody\r\n"
        ).encode()

    delivered, refused = unique("hdr-in-"), unique("hdr-out-")
    sesv2.send_email(
        FromEmailAddress="raw@example.com", Content={"Raw": {"Data": raw("hdr-in@example.com", delivered)}}
    )
    out = sesv2.send_email(
        FromEmailAddress="raw@example.com", Content={"Raw": {"Data": raw("hdr-out@example.com", refused)}}
    )
    [mail] = received(sink, delivered)
    assert "/u/" in str(mail.message["List-Unsubscribe"])
    assert mail.message["X-SES-LIST-MANAGEMENT-OPTIONS"] is None
    assert received(sink, refused) == [] and (await ledger(db, out["MessageId"])).status == "skipped"
    with pytest.raises(sesv2.exceptions.BadRequestException, match="contactListName"):
        sesv2.send_email(
            FromEmailAddress="raw@example.com",
            Content={"Raw": {"Data": b"To: a@example.com\r\nX-SES-LIST-MANAGEMENT-OPTIONS: oops\r\n\r\nx"}},
        )


def test_send_errors(sesv2: Any) -> None:
    name = make_list(sesv2)
    to = {"ToAddresses": ["x@example.com"]}
    with pytest.raises(sesv2.exceptions.NotFoundException, match="Contact list"):
        sesv2.send_email(
            Destination=to, Content=simple("s"), ListManagementOptions={"ContactListName": unique("none-")}
        )
    with pytest.raises(sesv2.exceptions.NotFoundException, match="Topic 'nope'"):
        sesv2.send_email(
            Destination=to,
            Content=simple("s"),
            ListManagementOptions={"ContactListName": name, "TopicName": "nope"},
        )
    with pytest.raises(sesv2.exceptions.BadRequestException, match="exactly one of Simple, Raw or Template"):
        sesv2.send_email(Destination=to, Content={})
    with pytest.raises(sesv2.exceptions.BadRequestException, match="at least one address"):
        sesv2.send_email(Destination={}, Content=simple("s"))
    with pytest.raises(sesv2.exceptions.BadRequestException, match="not an email address"):
        sesv2.send_email(Destination={"ToAddresses": ["nobody"]}, Content=simple("s"))
    with pytest.raises(sesv2.exceptions.NotFoundException, match="template"):
        sesv2.send_email(Destination=to, Content={"Template": {"TemplateName": unique("none-")}})
    with pytest.raises(sesv2.exceptions.MessageRejected, match="at most 50"):
        sesv2.send_email(
            Destination={"ToAddresses": [f"r{i}@example.com" for i in range(51)]}, Content=simple("s")
        )


async def test_an_unreachable_relay_is_a_500_and_a_failed_ledger_row(
    database_url: str, db: AsyncEngine
) -> None:
    from botocore.exceptions import ClientError

    from tests.support.helpers import free_port

    address = f"{unique('down-')}@example.com"
    with serve_api(database_url, smtp_url=f"smtp://127.0.0.1:{free_port()}") as (url, _):
        client = boto3_client("sesv2", url)
        with pytest.raises(ClientError) as raised:
            client.send_email(
                FromEmailAddress="a@example.com", Destination={"ToAddresses": [address]}, Content=simple("s")
            )
    assert raised.value.response["Error"]["Code"] == "InternalServiceErrorException"
    assert "nothing was sent" in raised.value.response["Error"]["Message"]
    async with db.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM messages WHERE address = :a"), {"a": address})).one()
    assert row.status == "failed" and row.status_message.startswith("TEMPORARY_FAILURE")
