"""Delivery callbacks over real HTTP: signatures, ledger updates, standard events, STOP → OptOut ALL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.callbacks import ReportError, parse_reports, report_event_type
from sojourn.channels.signing import signed_headers
from tests.support.direct_stack import PROVIDER_SECRET, DirectStack, direct_stack


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[DirectStack]:
    with direct_stack(database_url) as running:
        yield running


def post(
    stack: DirectStack, channel: str, body: Any, *, secret: str = PROVIDER_SECRET, at: int | None = None
) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **signed_headers(secret, at or int(time.time()), raw)}
    return httpx.post(f"{stack.url}/callbacks/{channel}", content=raw, headers=headers)


def app_with_sms_endpoint(stack: DirectStack) -> tuple[Any, str, str, str]:
    """An app with an SMS channel and endpoint; returns (client, app id, endpoint id, number)."""
    pinpoint = stack.pinpoint()
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "callbacks"})["ApplicationResponse"]["Id"]
    pinpoint.update_sms_channel(ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
    number = "+1206" + str(uuid.uuid4().int)[:7]
    pinpoint.update_endpoint(
        ApplicationId=app_id, EndpointId="phone", EndpointRequest={"ChannelType": "SMS", "Address": number}
    )
    return pinpoint, app_id, "phone", number


def send_sms(pinpoint: Any, app_id: str, endpoint_id: str) -> dict[str, Any]:
    response = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Endpoints": {endpoint_id: {}},
            "Context": {"campaign": "otp"},
            "MessageConfiguration": {"SMSMessage": {"Body": "code 1234"}},
        },
    )
    return dict(response["MessageResponse"]["EndpointResult"][endpoint_id])


async def events_of(db: AsyncEngine, message_id: str) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM events WHERE message_id = :m ORDER BY id"), {"m": message_id}
        )
        return [dict(r._mapping) for r in rows]


async def message_row(db: AsyncEngine, message_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = await conn.execute(
            text(
                "SELECT m.status, m.status_message, d.delivery_status FROM messages m "
                "JOIN message_deliveries d USING (message_id) WHERE m.message_id = :m"
            ),
            {"m": message_id},
        )
        return dict(row.one()._mapping)


async def test_delivered_report_by_provider_id_records_the_standard_event(
    stack: DirectStack, db: AsyncEngine
) -> None:
    pinpoint, app_id, endpoint_id, number = app_with_sms_endpoint(stack)
    result = send_sms(pinpoint, app_id, endpoint_id)
    [delivery] = stack.webhook.delivered_to(number)

    report = {
        "ProviderMessageId": delivery.provider_message_id,
        "Status": "DELIVERED",
        "Timestamp": "2026-11-23T12:00:00Z",
    }
    response = post(stack, "sms", {"Reports": [report]})
    again = post(stack, "sms", {"Reports": [report]})

    assert response.status_code == 200 and response.json() == {"Accepted": 1, "Unknown": []}
    assert again.json() == {"Accepted": 1, "Unknown": []}
    [event] = await events_of(db, result["MessageId"])
    assert event["event_type"] == "_SMS.SUCCESS" and event["app_id"] == app_id
    assert event["endpoint_id"] == endpoint_id and event["occurred_at"].isoformat().startswith(
        "2026-11-23T12:00:00"
    )
    assert event["attributes"]["campaign"] == "otp"
    assert event["attributes"]["destination_phone_number"] == number
    assert event["attributes"]["provider_message_id"] == delivery.provider_message_id
    row = await message_row(db, result["MessageId"])
    assert row["status"] == "sent" and row["delivery_status"] == "DELIVERED"


async def test_failure_report_by_sojourn_id_marks_the_message_failed(
    stack: DirectStack, db: AsyncEngine
) -> None:
    pinpoint, app_id, endpoint_id, _ = app_with_sms_endpoint(stack)
    result = send_sms(pinpoint, app_id, endpoint_id)

    response = post(
        stack, "sms", {"MessageId": result["MessageId"], "Status": "FAILED", "Reason": "CARRIER_UNREACHABLE"}
    )

    assert response.json() == {"Accepted": 1, "Unknown": []}
    [event] = await events_of(db, result["MessageId"])
    assert (
        event["event_type"] == "_SMS.FAILURE"
        and event["attributes"]["record_status"] == "CARRIER_UNREACHABLE"
    )
    row = await message_row(db, result["MessageId"])
    assert row["status"] == "failed" and row["status_message"] == "FAILED: CARRIER_UNREACHABLE"


async def test_stop_opts_the_endpoint_and_the_address_out(stack: DirectStack, db: AsyncEngine) -> None:
    pinpoint, app_id, endpoint_id, number = app_with_sms_endpoint(stack)
    result = send_sms(pinpoint, app_id, endpoint_id)

    response = post(stack, "sms", {"MessageId": result["MessageId"], "Status": "OPTOUT", "Reason": "STOP"})

    assert response.status_code == 200
    [event] = await events_of(db, result["MessageId"])
    assert event["event_type"] == "_SMS.OPTOUT"
    endpoint = pinpoint.get_endpoint(ApplicationId=app_id, EndpointId=endpoint_id)["EndpointResponse"]
    assert endpoint["OptOut"] == "ALL"
    assert send_sms(pinpoint, app_id, endpoint_id)["DeliveryStatus"] == "OPT_OUT"
    by_address = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {number: {"ChannelType": "SMS"}},
            "MessageConfiguration": {"SMSMessage": {"Body": "x"}},
        },
    )["MessageResponse"]["Result"][number]
    assert by_address["DeliveryStatus"] == "OPT_OUT"
    assert len(stack.webhook.delivered_to(number)) == 1


async def test_push_reports_and_unknown_messages(stack: DirectStack, db: AsyncEngine) -> None:
    pinpoint = stack.pinpoint()
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "push"})["ApplicationResponse"]["Id"]
    pinpoint.update_gcm_channel(ApplicationId=app_id, GCMChannelRequest={"ApiKey": "k", "Enabled": True})
    token = f"token-{uuid.uuid4().hex[:8]}"
    result = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {token: {"ChannelType": "GCM"}},
            "MessageConfiguration": {"GCMMessage": {"Body": "hi"}},
        },
    )["MessageResponse"]["Result"][token]

    response = post(stack, "push", {"Reports": [
        {"MessageId": result["MessageId"], "Status": "DELIVERED"},
        {"ProviderMessageId": "never-sent", "Status": "DELIVERED"},
    ]})  # fmt: skip

    assert response.json() == {"Accepted": 1, "Unknown": ["never-sent"]}
    [event] = await events_of(db, result["MessageId"])
    assert event["event_type"] == "_push.SUCCESS" and event["endpoint_id"] == ""
    assert event["attributes"]["address"] == token


def test_bad_callbacks_are_refused(stack: DirectStack) -> None:
    report = {"MessageId": "m", "Status": "DELIVERED"}
    wrong = post(stack, "sms", report, secret="not-the-secret")
    assert wrong.status_code == 401 and "does not match" in wrong.json()["Message"]
    stale = post(stack, "sms", report, at=int(time.time()) - 3600)
    assert stale.status_code == 401 and "more than 300 seconds" in stale.json()["Message"]
    unsigned = httpx.post(f"{stack.url}/callbacks/sms", content=b"{}")
    assert unsigned.status_code == 401 and "X-Sojourn-Signature" in unsigned.json()["Message"]
    assert post(stack, "fax", report).status_code == 404
    bad_status = post(stack, "sms", {"MessageId": "m", "Status": "READ"})
    assert (
        bad_status.status_code == 400
        and "use DELIVERED, FAILED, OPTOUT or BUFFERED" in bad_status.json()["Message"]
    )


@pytest.mark.parametrize(("channel", "status", "event"), [
    ("SMS", "DELIVERED", "_SMS.SUCCESS"), ("SMS", "failed", "_SMS.FAILURE"), ("SMS", "STOP", "_SMS.OPTOUT"),
    ("SMS", "BUFFERED", "_SMS.BUFFERED"), ("PUSH", "DELIVERED", "_push.SUCCESS"),
    ("VOICE", "FAILED", "_voice.FAILURE"), ("CUSTOM", "OPTOUT", "_custom.OPTOUT"),
])  # fmt: skip
def test_report_event_type(channel: str, status: str, event: str) -> None:
    assert report_event_type(channel, status) == event


@pytest.mark.parametrize(("body", "message"), [
    (b"nope", "not JSON"),
    (b"[1]", "must be an object"),
    (b'{"Reports": [{"Status": "DELIVERED"}]}', r"Reports\[0\] needs MessageId"),
    (b'{"Reports": [{"MessageId": "m"}]}', r"Reports\[0\].Status is required"),
    (b'{"Reports": "x"}', "must be a list of objects"),
])  # fmt: skip
def test_parse_reports_errors(body: bytes, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_reports(body)
