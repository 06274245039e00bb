"""Recording SES ``Subscription`` events: in the list's own log and, for apps that know the address, as
``_email.subscription`` events in the event store (so they count, export and trigger journeys like the other
``_email.*`` events).

Every writer that changes a contact's subscription reads :func:`current` first (locking the contact row) and
calls :func:`record_change` after the change, in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.lists import Topic
from sojourn.domain.subscription_events import EVENT_TYPE, ContactSubscription, subscription_change
from sojourn.store.events_repo import EventRow, record_events
from sojourn.store.subscription_tables import subscription_events


async def current(conn: AsyncConnection, list_name: str, email: str) -> ContactSubscription:
    """The contact's subscription now (an absent contact: nothing explicit), locking its row until commit."""
    row = (
        await conn.execute(
            text(
                "SELECT unsubscribe_all, topic_preferences FROM contacts "
                "WHERE list_name = :l AND email_address = :e FOR UPDATE"
            ),
            {"l": list_name, "e": email},
        )
    ).first()
    if row is None:
        return ContactSubscription()
    return ContactSubscription(bool(row.unsubscribe_all), dict(row.topic_preferences or {}))


async def record_change(
    conn: AsyncConnection,
    *,
    list_name: str,
    email: str,
    source: str,
    old: ContactSubscription,
    topics: Sequence[Topic],
    at: datetime | None = None,
) -> dict[str, set[str]]:
    """Record the Subscription event of the change from ``old`` to the contact's stored state, if any.

    Args:
        conn: The connection of the transaction that made the change.
        list_name: The contact list.
        email: The contact's normalized address.
        source: What made the change (``domain.subscription_events.SOURCES``).
        old: :func:`current` before the change.
        topics: The list's topics.
        at: When (default: now).

    Returns:
        Per app, the event-triggered journeys the events started (ring their doorbells after commit).
    """
    new = await current(conn, list_name, email)
    when = at or datetime.now(UTC)
    change = subscription_change(list_name=list_name, source=source, at=when, old=old, new=new, topics=topics)
    if change is None:
        return {}
    await conn.execute(
        subscription_events.insert().values(
            list_name=list_name, email_address=email, occurred_at=when, source=source, subscription=change
        )
    )
    endpoints = await conn.execute(
        text(
            "SELECT app_id, id FROM endpoints WHERE lower(btrim(address)) = :e AND channel_type = 'EMAIL' "
            "ORDER BY app_id, id"
        ),
        {"e": email},
    )
    attributes = {
        "contact_list": list_name,
        "source": source,
        "unsubscribe_all": "true" if new.unsubscribe_all else "false",
        "subscription": json.dumps(change, separators=(",", ":")),
    }
    rows = [
        EventRow(
            app_id=app_id,
            endpoint_id=endpoint_id,
            event_id=f"{EVENT_TYPE}:{uuid.uuid4().hex}",
            event_type=EVENT_TYPE,
            occurred_at=when,
            attributes=attributes,
        )
        for app_id, endpoint_id in endpoints.all()
    ]
    journeys: dict[str, set[str]] = {}
    for app_id in sorted({r.app_id for r in rows}):
        started = await record_events(conn, [r for r in rows if r.app_id == app_id])
        if started:
            journeys[app_id] = started
    return journeys


async def list_events(
    conn: AsyncConnection,
    *,
    list_name: str | None = None,
    email: str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Recorded Subscription events, oldest first: SES's event record (``eventType`` and ``subscription``)
    plus the contact's address, optionally for one list, one contact, and from a time on."""
    conditions: list[str] = ["true"]
    params: dict[str, Any] = {"lim": limit}
    if list_name is not None:
        conditions.append("list_name = :l")
        params["l"] = list_name
    if email is not None:
        conditions.append("email_address = :e")
        params["e"] = email
    if since is not None:
        conditions.append("occurred_at >= :s")
        params["s"] = since
    rows = await conn.execute(
        text(
            "SELECT email_address, subscription FROM subscription_events "
            f"WHERE {' AND '.join(conditions)} ORDER BY occurred_at, id LIMIT :lim"
        ),
        params,
    )
    return [
        {"eventType": "Subscription", "emailAddress": r.email_address, "subscription": r.subscription}
        for r in rows
    ]
