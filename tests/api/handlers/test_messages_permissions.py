"""Per-channel permission: an endpoint is reached on a channel only with permission for that channel.

SendMessages over boto3 to endpoints of every channel, with the permission recorded in the consent ledger
(the same rule, ``message_ledger.skip_reason_sql``, decides for journeys and campaigns)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store import consent_repo
from tests.api.handlers.test_messages import new_app, phone
from tests.support.direct_stack import DirectStack, direct_stack

MESSAGES = {
    "SMSMessage": {"Body": "sms"},
    "VoiceMessage": {"Body": "voice", "LanguageCode": "en-US"},
    "GCMMessage": {"Title": "t", "Body": "gcm"},
    "APNSMessage": {"Title": "t", "Body": "apns"},
    "EmailMessage": {
        "SimpleEmail": {"Subject": {"Data": "email"}, "TextPart": {"Data": "email"}},
    },
}


@pytest.fixture(scope="module")
def stack(database_url: str) -> Iterator[DirectStack]:
    with direct_stack(database_url) as running:
        yield running


def _endpoints(pinpoint: Any, app_id: str) -> dict[str, str]:
    """One endpoint per channel: {endpoint id: address}."""
    addresses = {
        "sms": ("SMS", phone()),
        "voice": ("VOICE", phone()),
        "gcm": ("GCM", f"gcm-{uuid.uuid4().hex}"),
        "apns": ("APNS", f"apns-{uuid.uuid4().hex}"),
        "email": ("EMAIL", f"{uuid.uuid4().hex[:10]}@example.com"),
    }
    pinpoint.update_endpoints_batch(
        ApplicationId=app_id,
        EndpointBatchRequest={
            "Item": [{"Id": i, "ChannelType": c, "Address": a} for i, (c, a) in addresses.items()]
        },
    )
    return {i: a for i, (_c, a) in addresses.items()}


async def _set(db: AsyncEngine, app_id: str, endpoint_id: str, channel: str, status: str) -> None:
    async with db.begin() as conn:
        await consent_repo.record(
            conn,
            consent_repo.ConsentEvent(
                app_id=app_id, endpoint_id=endpoint_id, channel=channel, status=status, source="api"
            ),
        )


def _send(pinpoint: Any, app_id: str, ids: list[str]) -> dict[str, Any]:
    response = pinpoint.send_messages(
        ApplicationId=app_id,
        MessageRequest={"Endpoints": {i: {} for i in ids}, "MessageConfiguration": MESSAGES},
    )
    results: dict[str, Any] = response["MessageResponse"]["EndpointResult"]
    return results


def _delivered(stack: DirectStack, address: str) -> int:
    return len(stack.webhook.delivered_to(address)) + len(stack.smtp.to(address))


CHANNELS = {"sms": "SMS", "voice": "VOICE", "gcm": "GCM", "apns": "APNS", "email": "EMAIL"}


async def test_withdrawn_permission_skips_each_channel(stack: DirectStack, db: AsyncEngine) -> None:
    pinpoint = stack.pinpoint()
    app_id = new_app(pinpoint)
    addresses = _endpoints(pinpoint, app_id)
    for endpoint_id, channel in CHANNELS.items():
        await _set(db, app_id, endpoint_id, channel, "withdrawn")
    results = _send(pinpoint, app_id, list(CHANNELS))
    for endpoint_id in CHANNELS:
        assert results[endpoint_id]["DeliveryStatus"] == "PERMANENT_FAILURE", endpoint_id
        assert results[endpoint_id]["StatusMessage"] == "NO_PERMISSION", endpoint_id
        assert _delivered(stack, addresses[endpoint_id]) == 0, endpoint_id

    # Granted again, per channel: each is reached.
    for endpoint_id, channel in CHANNELS.items():
        await _set(db, app_id, endpoint_id, channel, "granted")
    results = _send(pinpoint, app_id, list(CHANNELS))
    for endpoint_id in CHANNELS:
        assert results[endpoint_id]["DeliveryStatus"] == "SUCCESSFUL", (endpoint_id, results[endpoint_id])
        assert _delivered(stack, addresses[endpoint_id]) == 1, endpoint_id


async def test_permission_for_another_channel_does_not_count(stack: DirectStack, db: AsyncEngine) -> None:
    pinpoint = stack.pinpoint()
    app_id = new_app(pinpoint)
    addresses = _endpoints(pinpoint, app_id)
    async with db.begin() as conn:
        await consent_repo.require_consent(conn, app_id, True)
    # Granted for EMAIL (and, wrongly recorded, for "SMS" on the voice endpoint): only the email endpoint
    # has permission for its own channel.
    await _set(db, app_id, "email", "EMAIL", "granted")
    await _set(db, app_id, "voice", "SMS", "granted")
    await _set(db, app_id, "sms", "SMS", "pending")
    results = _send(pinpoint, app_id, list(CHANNELS))
    assert results["email"]["DeliveryStatus"] == "SUCCESSFUL"
    assert results["sms"]["StatusMessage"] == "PENDING_CONFIRMATION"
    for endpoint_id in ("voice", "gcm", "apns"):
        assert results[endpoint_id]["StatusMessage"] == "NO_PERMISSION", endpoint_id
        assert _delivered(stack, addresses[endpoint_id]) == 0, endpoint_id
