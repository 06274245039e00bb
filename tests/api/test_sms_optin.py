"""SMS double opt-in end to end: the form API over real HTTP, DoubleOptInWorkflow on the time-skipping
server, the confirmation SMS through a real webhook provider, and the reply YES through the inbound callback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.channels.signing import signed_headers
from sojourn.domain.optin import form_key, optin_workflow_id
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from sojourn.store import consent_repo
from sojourn.store.db import create_engine
from tests.support.api_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, boto3_client, serve
from tests.support.helpers import assert_eventually, skip_time_until_done
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookSink

SECRET = "sms-provider-secret"
CONSENT = "Order updates and offers from Example Ltd by SMS. Msg&data rates may apply."


@dataclass
class Stack:
    url: str
    state: AppState
    sms: WebhookSink
    pinpoint: Any


@pytest_asyncio.fixture
async def stack(
    database_url: str, db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> AsyncIterator[Stack]:
    sms = WebhookSink(SECRET).start()
    settings = Settings(
        database_url=database_url,
        # The API runs on its own thread and event loop: it connects its own client (and engine).
        temporal_address=time_skipping_env.client.service_client.config.target_host,
        task_queue=f"tq-{uuid.uuid4().hex}",
        temporal_search_attributes=False,
        smtp_url=smtp_server.url,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        sms_provider_url=f"{sms.url}/sms",
        sms_provider_secret=SECRET,
    )
    state = AppState(db=create_engine(database_url, pool_size=2), settings=settings)
    worker = build_worker(time_skipping_env.client, db, settings)
    try:
        async with worker:
            with serve(create_app(settings, state)) as url:
                yield Stack(url, state, sms, boto3_client("pinpoint", url))
    finally:
        sms.stop()


def _app(pinpoint: Any, *, sms: bool = True) -> str:
    app_id: str = pinpoint.create_app(CreateApplicationRequest={"Name": "sms-optin"})["ApplicationResponse"][
        "Id"
    ]
    if sms:
        pinpoint.update_sms_channel(
            ApplicationId=app_id, SMSChannelRequest={"Enabled": True, "SenderId": "Example"}
        )
    return app_id


async def _signup(stack: Stack, app_id: str, number: str, **extra: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{stack.url}/optin/{app_id}",
            json={
                "form_key": form_key(app_id, stack.state.settings.consent_key),
                "channel": "SMS",
                "address": number,
                "consent_text": CONSENT,
                **extra,
            },
        )


async def _reply(stack: Stack, number: str, body: str) -> dict[str, Any]:
    raw = json.dumps(
        {"From": number, "To": "+12065550199", "Body": body, "MessageId": uuid.uuid4().hex}
    ).encode()
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stack.url}/callbacks/sms/inbound",
            content=raw,
            headers={"Content-Type": "application/json", **signed_headers(SECRET, int(time.time()), raw)},
        )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["Results"][0]
    return result


def _send(stack: Stack, app_id: str, endpoint_id: str) -> dict[str, Any]:
    response = stack.pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={
            "Endpoints": {endpoint_id: {}},
            "MessageConfiguration": {"SMSMessage": {"Body": "Your order shipped"}},
        },
    )
    result: dict[str, Any] = response["MessageResponse"]["EndpointResult"][endpoint_id]
    return result


def _number() -> str:
    return "+1206" + str(uuid.uuid4().int)[:7]


async def test_a_reply_yes_confirms_the_sms_sign_up(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    app_id = _app(stack.pinpoint)
    number = _number()
    response = await _signup(stack, app_id, number)
    assert response.status_code == 202 and response.json()["status"] == "pending_confirmation"
    endpoint_id = response.json()["endpoint_id"]

    async def texted() -> None:
        assert len(stack.sms.delivered_to(number)) == 1

    await assert_eventually(texted)
    [confirmation] = stack.sms.delivered_to(number)
    assert confirmation.payload["Message"]["Body"].startswith("Reply YES to confirm you want: " + CONSENT)
    assert confirmation.payload["Message"]["SenderId"] == "Example"
    assert confirmation.payload["EndpointId"] == endpoint_id

    # Pending: a send is held back until the contact confirms.
    assert _send(stack, app_id, endpoint_id)["StatusMessage"] == "PENDING_CONFIRMATION"
    assert (await _reply(stack, number, "yes"))["Action"] == "CONFIRMED"

    handle = time_skipping_env.client.get_workflow_handle(optin_workflow_id(app_id, number))
    assert await skip_time_until_done(time_skipping_env, handle) == "granted"
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, app_id, endpoint_id, "SMS") == "granted"
        records = await consent_repo.contact_records(conn, app_id, number)
    assert [(r["status"], r["source"], r["method"], r["channel"]) for r in records] == [
        ("pending", "form", "double_opt_in", "SMS"),
        ("granted", "confirmation", "double_opt_in", "SMS"),
    ]
    assert records[-1]["reason"] == "confirmed by an SMS reply YES" and records[0]["consent_text"] == CONSENT
    assert _send(stack, app_id, endpoint_id)["DeliveryStatus"] == "SUCCESSFUL"
    # Already confirmed: a second sign-up sends nothing, a second YES confirms nothing.
    again = await _signup(stack, app_id, number)
    assert again.status_code == 200 and again.json()["status"] == "confirmed"
    assert (await _reply(stack, number, "YES"))["Action"] == "NOTHING_TO_CONFIRM"
    async with db.connect() as conn:
        ledger = (
            await conn.execute(
                text(
                    "SELECT channel, status FROM messages WHERE app_id = :a AND activity_id = 'optin-confirmation'"
                ),
                {"a": app_id},
            )
        ).all()
    assert [(r.channel, r.status) for r in ledger] == [("SMS", "sent")]


async def test_an_unanswered_sms_sign_up_expires(
    stack: Stack, db: AsyncEngine, time_skipping_env: WorkflowEnvironment
) -> None:
    app_id = _app(stack.pinpoint)
    number = _number()
    endpoint_id = (await _signup(stack, app_id, number)).json()["endpoint_id"]
    handle = time_skipping_env.client.get_workflow_handle(optin_workflow_id(app_id, number))
    assert await skip_time_until_done(time_skipping_env, handle) == "expired"
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, app_id, endpoint_id, "SMS") == "expired"
    assert _send(stack, app_id, endpoint_id)["StatusMessage"] == "PENDING_CONFIRMATION"
    # Too late: the YES finds nothing waiting.
    assert (await _reply(stack, number, "YES"))["Action"] == "NOTHING_TO_CONFIRM"


async def test_bad_sms_sign_ups_are_refused(stack: Stack) -> None:
    app_id = _app(stack.pinpoint)
    not_a_number = await _signup(stack, app_id, "2065550100")
    assert not_a_number.status_code == 400 and "E.164" in not_a_number.json()["message"]
    voice = await _signup(stack, app_id, _number(), channel="VOICE")
    assert voice.status_code == 400 and "EMAIL and SMS" in voice.json()["message"]
    without_channel = await _signup(stack, _app(stack.pinpoint, sms=False), _number())
    assert without_channel.status_code == 400 and "UpdateSmsChannel" in without_channel.json()["message"]
