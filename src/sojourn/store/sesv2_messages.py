"""Ledger rows of sesv2 SendEmail calls, in the shared ``messages`` table (no journey or campaign)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

#: ``messages.app_id`` of sesv2 sends (SESv2 has no Pinpoint app).
SESV2_APP_ID = "sesv2"


async def record_send(
    conn: AsyncConnection,
    *,
    message_id: str,
    endpoint_id: str,
    address: str,
    status: str,
    status_message: str | None = None,
) -> None:
    """Record a SendEmail message: ``pending`` before it goes to the relay, or ``skipped`` with the reason.

    Args:
        conn: A connection in a transaction that commits before the API answers.
        message_id: The MessageId returned to the caller.
        endpoint_id: The sesv2 EndpointId, else the first recipient's address.
        address: Every recipient, comma-separated.
        status: ``pending`` or ``skipped``.
        status_message: Why it was skipped.
    """
    await conn.execute(
        text(
            "INSERT INTO messages (message_id, app_id, endpoint_id, channel, address, status, status_message) "
            "VALUES (:m, :a, :e, 'EMAIL', :addr, :s, :why)"
        ),
        {
            "m": message_id,
            "a": SESV2_APP_ID,
            "e": endpoint_id,
            "addr": address,
            "s": status,
            "why": status_message,
        },
    )
