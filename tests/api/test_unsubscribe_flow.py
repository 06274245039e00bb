"""From list mail to suppression, over HTTP: the one-click link unsubscribes from all of the list, and then no
send of any kind reaches the address; the suppression list and the consent ledger say why."""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.api_server import boto3_client, serve_api
from tests.support.smtp import SmtpSink


@pytest.fixture(scope="module")
def api(database_url: str, sink: SmtpSink) -> Iterator[str]:
    with serve_api(database_url, smtp_url=sink.url, default_from_address="news@example.com") as (url, _):
        yield url


def newsletter(list_name: str, to: str, subject: str) -> dict[str, Any]:
    return {
        "Destination": {"ToAddresses": [to]},
        "Content": {"Simple": {"Subject": {"Data": subject}, "Body": {"Text": {"Data": "News"}}}},
        "ListManagementOptions": {"ContactListName": list_name},
    }


async def test_one_click_unsubscribe_from_all_suppresses_everywhere(
    api: str, sink: SmtpSink, db: AsyncEngine
) -> None:
    sesv2, pinpoint = boto3_client("sesv2", api), boto3_client("pinpoint", api)
    address = f"reader-{uuid.uuid4().hex[:8]}@example.com"
    list_name = f"news{uuid.uuid4().hex[:8]}"
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "flow"})["ApplicationResponse"]["Id"]
    pinpoint.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "news@example.com", "Identity": "example.com"},
    )
    pinpoint.update_endpoint(
        ApplicationId=app_id,
        EndpointId="reader",
        EndpointRequest={"ChannelType": "EMAIL", "Address": address},
    )
    sesv2.create_contact_list(ContactListName=list_name)
    sesv2.create_contact(ContactListName=list_name, EmailAddress=address)

    sesv2.send_email(**newsletter(list_name, address, "first issue"))
    (first,) = [m for m in sink.to(address) if m.subject == "first issue"]
    link = re.fullmatch(r"<(http://[^>]+/u/[^>]+)>", str(first.message["List-Unsubscribe"]))
    assert link is not None
    one_click = urllib.request.Request(link.group(1), data=b"List-Unsubscribe=One-Click", method="POST")
    assert await asyncio.to_thread(lambda: urllib.request.urlopen(one_click).status) == 200

    assert sesv2.get_contact(ContactListName=list_name, EmailAddress=address)["UnsubscribeAll"] is True
    entry = sesv2.get_suppressed_destination(EmailAddress=address)["SuppressedDestination"]
    assert entry["Reason"] == "UNSUBSCRIBE"

    # The next list mail, a plain SendEmail, and a direct send to the endpoint or the address: none goes out.
    sesv2.send_email(**newsletter(list_name, address, "second issue"))
    plain = sesv2.send_email(
        Destination={"ToAddresses": [address]},
        Content={"Simple": {"Subject": {"Data": "receipt"}, "Body": {"Text": {"Data": "Thanks"}}}},
    )
    direct = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {address: {"ChannelType": "EMAIL"}},
            "Endpoints": {"reader": {}},
            "MessageConfiguration": {
                "EmailMessage": {"SimpleEmail": {"Subject": {"Data": "direct"}, "TextPart": {"Data": "Hi"}}}
            },
        },
    )["MessageResponse"]
    assert [m.subject for m in sink.to(address)] == ["first issue"]
    assert direct["Result"][address]["DeliveryStatus"] == "OPT_OUT"
    assert direct["EndpointResult"]["reader"]["DeliveryStatus"] == "OPT_OUT"
    async with db.connect() as conn:
        why = await conn.scalar(
            text("SELECT status_message FROM messages WHERE message_id = :m"), {"m": plain["MessageId"]}
        )
        consent = (
            await conn.execute(
                text(
                    "SELECT status, source, reason FROM consent WHERE app_id = :a AND endpoint_id = 'reader'"
                ),
                {"a": app_id},
            )
        ).all()
    assert why is not None and why.startswith("SUPPRESSED")
    assert ("withdrawn", "unsubscribe", f"unsubscribed from all of contact list {list_name}") in consent

    # Subscribing again lifts sojourn's UNSUBSCRIBE entry.
    sesv2.update_contact(ContactListName=list_name, EmailAddress=address, UnsubscribeAll=False)
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.get_suppressed_destination(EmailAddress=address)
