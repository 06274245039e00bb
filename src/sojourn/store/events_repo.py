"""The event path: PutEvents and tracking links land here, in one transaction with journey intake."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.campaigns import campaign_event_matches
from sojourn.domain.journeys import JourneyDefinition, event_matches
from sojourn.store import campaigns_repo
from sojourn.store.event_consumers import EventConsumers, event_consumers
from sojourn.store.tables import journey_intake


@dataclass(frozen=True)
class EventRow:
    """One event to record."""

    app_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    occurred_at: datetime
    attributes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    session: dict[str, Any] | None = None
    message_id: str | None = None


_INSERT_EVENTS = text(
    """
    INSERT INTO events (app_id, endpoint_id, event_id, event_type, occurred_at, attributes, metrics, session,
                        message_id)
    SELECT r.app_id, r.endpoint_id, r.event_id, r.event_type, r.occurred_at, r.attributes, r.metrics,
           COALESCE(r.session, 'null'::jsonb), r.message_id
    FROM ROWS FROM (jsonb_to_recordset(CAST(:events AS jsonb)) AS (
             app_id text, endpoint_id text, event_id text, event_type text, occurred_at timestamptz,
             attributes jsonb, metrics jsonb, session jsonb, message_id text))
         WITH ORDINALITY AS r(app_id, endpoint_id, event_id, event_type, occurred_at, attributes, metrics,
                              session, message_id, n)
    ORDER BY r.n
    RETURNING id
    """
)


def events_document(rows: Sequence[EventRow]) -> str:
    """The events as one JSON array of objects, the single parameter of the insert.

    One ``json.dumps`` of the whole batch costs a fraction of encoding nine arrays element by element, and the
    attributes, metrics and session arrive as JSON values (no text-in-JSON double encoding). Numbers are written
    by the same encoder SQLAlchemy's JSONB type used; a missing session is stored as JSON ``null`` as before.
    """
    return json.dumps(
        [
            {
                "app_id": r.app_id,
                "endpoint_id": r.endpoint_id,
                "event_id": r.event_id,
                "event_type": r.event_type,
                "occurred_at": _instant(r.occurred_at),
                "attributes": r.attributes,
                "metrics": r.metrics,
                "session": r.session,
                "message_id": r.message_id,
            }
            for r in rows
        ]
    )


def _instant(moment: datetime) -> str:
    # A naive time is UTC, as asyncpg read it when it bound datetimes itself.
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).isoformat()


async def insert_events(conn: AsyncConnection, rows: Sequence[EventRow]) -> list[int]:
    """Insert events with one statement; returns their row ids, in the order of ``rows``.

    Ids come from the table's identity sequence as the rows are inserted, in ``ORDER BY r.n`` order, and a
    session's sequence values only grow: sorting the returned ids gives them in input order whatever order
    RETURNING uses.
    """
    if not rows:
        return []
    ids = (await conn.execute(_INSERT_EVENTS, {"events": events_document(rows)})).scalars().all()
    return sorted(int(i) for i in ids)


async def event_journeys(conn: AsyncConnection, app_id: str) -> list[tuple[str, JourneyDefinition]]:
    """The app's ACTIVE (or PAUSED: entrants queue up) event-triggered journeys."""
    return (await event_consumers(conn, app_id)).entry_journeys


async def record_events(
    conn: AsyncConnection,
    rows: Sequence[EventRow],
    *,
    woken_campaigns: set[str] | None = None,
    consumers: EventConsumers | None = None,
) -> set[str]:
    """Insert events and the journey (and EVENT campaign) intake rows they trigger, in the caller's transaction.

    Args:
        woken_campaigns: Filled with the ids of the EVENT campaigns that got endpoints to message.
        consumers: The consumers of the events' app when the caller has already looked them up in this
            transaction (every row must then be of that app).

    Returns:
        Ids of the journeys that got new entrants (their workflows get a doorbell after commit).
    """
    if not rows:
        return set()
    ids = await insert_events(conn, rows)
    by_app: dict[str, EventConsumers] = {}
    if consumers is not None:
        by_app[rows[0].app_id] = consumers
    for row in rows:
        if row.app_id not in by_app:
            by_app[row.app_id] = await event_consumers(conn, row.app_id)
    journey_intake_rows: list[dict[str, Any]] = []
    campaign_intake_rows: list[dict[str, Any]] = []
    for row_id, row in zip(ids, rows, strict=True):
        found = by_app[row.app_id]
        for journey_id, definition in found.entry_journeys:
            entry = definition.entry_event_filter
            if entry is not None and event_matches(entry, row.event_type, row.attributes, row.metrics):
                journey_intake_rows.append(
                    {"journey_id": journey_id, "endpoint_id": row.endpoint_id, "event_row_id": row_id}
                )
        for campaign_id, campaign in found.campaigns:
            if campaign_event_matches(
                campaign, row.event_type, row.attributes, row.metrics, at=row.occurred_at
            ):
                campaign_intake_rows.append(
                    {
                        "campaign_id": campaign_id,
                        "endpoint_id": row.endpoint_id,
                        "event_row_id": row_id,
                        "occurred_at": row.occurred_at,
                    }
                )
    if journey_intake_rows:
        await conn.execute(journey_intake.insert(), journey_intake_rows)
    await campaigns_repo.add_intake(conn, campaign_intake_rows)
    if woken_campaigns is not None:
        woken_campaigns |= {i["campaign_id"] for i in campaign_intake_rows}
    return {i["journey_id"] for i in journey_intake_rows}
