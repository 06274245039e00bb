"""Everything the ledgers know about one endpoint in one journey: entries, messages and their engagement."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass
class MessageTrace:
    """One message of the participant, with the engagement events about it."""

    activity_id: str
    status: str
    reason: str | None
    created_at: datetime
    sent_at: datetime | None
    events: list[tuple[str, datetime]] = field(default_factory=list)


@dataclass
class EntryTrace:
    """One entry of the endpoint into the journey."""

    entry_no: int
    version: int
    cohort_no: int
    lane: str
    position: str | None
    status: str
    entered_at: datetime
    updated_at: datetime
    definition: dict[str, Any]
    messages: dict[str, list[MessageTrace]] = field(default_factory=dict)
    # Set when the endpoint entered as one of a user participant's endpoints.
    user_id: str | None = None


async def trace_endpoint(conn: AsyncConnection, journey_id: str, endpoint_id: str) -> list[EntryTrace]:
    """The endpoint's entries into the journey, oldest first, each with its messages by activity."""
    entries = [
        EntryTrace(
            entry_no=int(r.entry_no),
            version=int(r.version),
            cohort_no=int(r.cohort_no),
            lane=r.lane,
            position=r.position,
            status=r.status,
            entered_at=r.entered_at,
            updated_at=r.updated_at,
            definition=dict(r.definition or {}),
            user_id=r.user_id,
        )
        for r in await conn.execute(
            text(
                "SELECT p.*, v.definition FROM participants p "
                "LEFT JOIN journey_versions v ON v.journey_id = p.journey_id AND v.version = p.version "
                "WHERE p.journey_id = :j AND p.endpoint_id = :e ORDER BY p.entry_no"
            ),
            {"j": journey_id, "e": endpoint_id},
        )
    ]
    by_entry = {e.entry_no: e for e in entries}
    messages = await conn.execute(
        text(
            "SELECT m.message_id, m.entry_no, m.activity_id, m.status, m.status_message, m.created_at, m.sent_at, "
            "COALESCE(json_agg(json_build_object('type', ev.event_type, 'at', ev.occurred_at) ORDER BY ev.occurred_at) "
            "  FILTER (WHERE ev.id IS NOT NULL), '[]') AS events "
            "FROM messages m LEFT JOIN events ev ON ev.message_id = m.message_id "
            "WHERE m.journey_id = :j AND m.endpoint_id = :e GROUP BY m.message_id ORDER BY m.created_at"
        ),
        {"j": journey_id, "e": endpoint_id},
    )
    for m in messages:
        entry = by_entry.get(int(m.entry_no or 0))
        if entry is None:
            continue
        entry.messages.setdefault(m.activity_id, []).append(
            MessageTrace(
                activity_id=m.activity_id,
                status=m.status,
                reason=m.status_message,
                created_at=m.created_at,
                sent_at=m.sent_at,
                events=[(ev["type"], datetime.fromisoformat(ev["at"])) for ev in m.events],
            )
        )
    return entries
