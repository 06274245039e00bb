"""Inbound SMS over real HTTP: keywords (STOP, HELP, YES), _SMS.RECEIVED events, signatures, bad input."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.callbacks import ReportError, inbound_keyword, parse_inbound
from sojourn.channels.signing import signed_headers
from sojourn.store import consent_repo
from tests.api.test_callbacks import app_with_sms_endpoint, send_sms
from tests.support.direct_stack import PROVIDER_SECRET, DirectStack, direct_stack


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[DirectStack]:
    with direct_stack(database_url) as running:
        yield running


def inbound(stack: DirectStack, body: Any, *, secret: str = PROVIDER_SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **signed_headers(secret, int(time.time()), raw)}
    return httpx.post(f"{stack.url}/callbacks/sms/inbound", content=raw, headers=headers)


def message(number: str, body: str) -> dict[str, str]:
    return {"From": number, "To": "+12065550199", "Body": body, "MessageId": uuid.uuid4().hex}


async def event_types(db: AsyncEngine, app_id: str) -> list[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type FROM events WHERE app_id = :a AND event_type LIKE '_SMS.%' ORDER BY id"),
            {"a": app_id},
        )
        return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "STOP"),
        (" stop. ", "STOP"),
        ("Opt out", "STOP"),
        ("unsubscribe", "STOP"),
        ("HELP", "HELP"),
        ("info?", "HELP"),
        ("Yes!", "YES"),
        ("y", "YES"),
        ("Start", "START"),
        ("unstop", "START"),
        ("Stop sending me deals please", None),
        ("yes please", None),
        ("", None),
    ],
)
def test_inbound_keyword(body: str, keyword: str | None) -> None:
    assert inbound_keyword(body) == keyword


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"nope", "not JSON"),
        (b"[]", "must be an object"),
        (b'{"From": "2065550100", "Body": "x", "MessageId": "m"}', "E.164"),
        (b'{"From": "+12065550100", "MessageId": "m"}', "Body"),
        (b'{"From": "+12065550100", "Body": "x"}', "MessageId"),
        (b'{"From": "+12065550100", "Body": "x", "MessageId": "m", "Timestamp": "soon"}', "ISO 8601"),
    ],
)
def test_parse_inbound_errors(body: bytes, why: str) -> None:
    with pytest.raises(ReportError, match=why):
        parse_inbound(body, now=datetime.now(UTC))


async def test_stop_opts_the_number_out(stack: DirectStack, db: AsyncEngine) -> None:
    pinpoint, app_id, endpoint_id, number = app_with_sms_endpoint(stack)
    stop = message(number, "Stop")
    response = inbound(stack, {"Messages": [stop]})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "Accepted": 1,
        "Results": [
            {"MessageId": stop["MessageId"], "Keyword": "STOP", "Action": "OPTED_OUT", "Endpoints": 1}
        ],
    }
    # The provider redelivers: nothing is recorded twice.
    assert inbound(stack, stop).status_code == 200
    assert await event_types(db, app_id) == ["_SMS.RECEIVED", "_SMS.OPTOUT"]
    endpoint = pinpoint.get_endpoint(ApplicationId=app_id, EndpointId=endpoint_id)["EndpointResponse"]
    assert endpoint["OptOut"] == "ALL"
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, app_id, endpoint_id, "SMS") == "withdrawn"
        [record] = await consent_repo.contact_records(conn, app_id, number)
    assert (record["status"], record["source"], record["channel"]) == ("withdrawn", "unsubscribe", "SMS")
    # The next send is not made, to the endpoint or to the bare number.
    assert send_sms(pinpoint, app_id, endpoint_id)["DeliveryStatus"] == "OPT_OUT"
    direct = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {number: {"ChannelType": "SMS"}},
            "MessageConfiguration": {"SMSMessage": {"Body": "hi"}},
        },
    )["MessageResponse"]["Result"][number]
    assert direct["DeliveryStatus"] == "OPT_OUT"
    assert stack.webhook.delivered_to(number) == []

    # START undoes the STOP: the endpoint and the bare number are reachable again.
    start = inbound(stack, message(number, "START")).json()["Results"][0]
    assert (start["Keyword"], start["Action"]) == ("START", "OPTED_IN")
    assert send_sms(pinpoint, app_id, endpoint_id)["DeliveryStatus"] == "SUCCESSFUL"
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, app_id, endpoint_id, "SMS") == "granted"
        records = await consent_repo.contact_records(conn, app_id, number)
    assert [(r["status"], r["source"]) for r in records] == [
        ("withdrawn", "unsubscribe"),
        ("granted", "keyword"),
    ]
    assert inbound(stack, message(number, "START")).json()["Results"][0]["Action"] == "NONE"


async def test_help_and_other_texts_change_nothing(stack: DirectStack, db: AsyncEngine) -> None:
    pinpoint, app_id, endpoint_id, number = app_with_sms_endpoint(stack)
    response = inbound(
        stack,
        {"Messages": [message(number, "HELP"), message(number, "what is this?"), message(number, "YES")]},
    )
    assert [(r["Keyword"], r["Action"]) for r in response.json()["Results"]] == [
        ("HELP", "HELP"),
        (None, "NONE"),
        ("YES", "NOTHING_TO_CONFIRM"),
    ]
    assert await event_types(db, app_id) == ["_SMS.RECEIVED"] * 3
    assert send_sms(pinpoint, app_id, endpoint_id)["DeliveryStatus"] == "SUCCESSFUL"
    unknown = inbound(stack, message("+19995550100", "HELP")).json()["Results"][0]
    assert unknown["Action"] == "UNKNOWN_NUMBER" and unknown["Endpoints"] == 0


def send_to_number(pinpoint: Any, app_id: str, number: str) -> dict[str, Any]:
    response = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Addresses": {number: {"ChannelType": "SMS"}},
            "MessageConfiguration": {"SMSMessage": {"Body": "hello"}},
        },
    )
    return dict(response["MessageResponse"]["Result"][number])


def test_stop_from_a_number_no_app_knows_holds_in_every_app_until_start(stack: DirectStack) -> None:
    pinpoint, app_id, _, _ = app_with_sms_endpoint(stack)
    number = "+1312" + str(uuid.uuid4().int)[:7]
    stop = inbound(stack, message(number, "STOP")).json()["Results"][0]
    assert (stop["Action"], stop["Endpoints"]) == ("OPTED_OUT", 0)
    assert inbound(stack, message(number, "STOP")).json()["Results"][0]["Action"] == "OPTED_OUT"

    assert send_to_number(pinpoint, app_id, number)["DeliveryStatus"] == "OPT_OUT"
    # An endpoint registered later with the number starts opted out, even when the request says NONE.
    pinpoint.update_endpoint(
        ApplicationId=app_id,
        EndpointId="later",
        EndpointRequest={"ChannelType": "SMS", "Address": number, "OptOut": "NONE"},
    )
    endpoint = pinpoint.get_endpoint(ApplicationId=app_id, EndpointId="later")["EndpointResponse"]
    assert endpoint["OptOut"] == "ALL"
    assert send_sms(pinpoint, app_id, "later")["DeliveryStatus"] == "OPT_OUT"
    # Updating other fields keeps it opted out; an explicit OptOut NONE afterwards is the app's decision.
    pinpoint.update_endpoint(
        ApplicationId=app_id, EndpointId="later", EndpointRequest={"Attributes": {"plan": ["pro"]}}
    )
    assert (
        pinpoint.get_endpoint(ApplicationId=app_id, EndpointId="later")["EndpointResponse"]["OptOut"] == "ALL"
    )

    start = inbound(stack, message(number, "START")).json()["Results"][0]
    assert (start["Action"], start["Endpoints"]) == ("OPTED_IN", 1)
    assert send_sms(pinpoint, app_id, "later")["DeliveryStatus"] == "SUCCESSFUL"
    assert send_to_number(pinpoint, app_id, number)["DeliveryStatus"] == "SUCCESSFUL"
    pinpoint.update_endpoint(
        ApplicationId=app_id, EndpointId="again", EndpointRequest={"ChannelType": "SMS", "Address": number}
    )
    assert (
        pinpoint.get_endpoint(ApplicationId=app_id, EndpointId="again")["EndpointResponse"]["OptOut"]
        == "NONE"
    )


def test_start_from_a_number_no_app_knows_lifts_its_stop(stack: DirectStack) -> None:
    pinpoint, app_id, _, _ = app_with_sms_endpoint(stack)
    number = "+1415" + str(uuid.uuid4().int)[:7]
    assert inbound(stack, message(number, "START")).json()["Results"][0]["Action"] == "UNKNOWN_NUMBER"
    inbound(stack, message(number, "STOP"))
    assert inbound(stack, message(number, "START")).json()["Results"][0]["Action"] == "OPTED_IN"
    assert send_to_number(pinpoint, app_id, number)["DeliveryStatus"] == "SUCCESSFUL"


def test_bad_inbound_requests_are_refused(stack: DirectStack) -> None:
    body = message("+12065550100", "STOP")
    assert inbound(stack, body, secret="wrong").status_code == 401
    unsigned = httpx.post(f"{stack.url}/callbacks/sms/inbound", content=json.dumps(body))
    assert unsigned.status_code == 401
    bad = inbound(stack, {"Messages": [{"From": "12", "Body": "STOP", "MessageId": "m"}]})
    assert bad.status_code == 400 and "E.164" in bad.json()["Message"]
