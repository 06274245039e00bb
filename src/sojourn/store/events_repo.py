"""The event path: PutEvents and tracking links land here, in one transaction with journey intake."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
    SELECT u.app_id, u.endpoint_id, u.event_id, u.event_type, u.occurred_at, CAST(u.attributes AS jsonb),
           CAST(u.metrics AS jsonb), CAST(u.session AS jsonb), u.message_id
    FROM unnest(CAST(:app_ids AS text[]), CAST(:endpoint_ids AS text[]), CAST(:event_ids AS text[]),
                CAST(:event_types AS text[]), CAST(:occurred AS timestamptz[]), CAST(:attributes AS text[]),
                CAST(:metrics AS text[]), CAST(:sessions AS text[]), CAST(:message_ids AS text[]))
         WITH ORDINALITY AS u(app_id, endpoint_id, event_id, event_type, occurred_at, attributes, metrics, session,
                              message_id, n)
    ORDER BY u.n
    RETURNING id
    """
)


def _json(value: dict[str, Any]) -> str:
    # The same encoder SQLAlchemy's JSONB type used (json.dumps), with the common empty case spelled out.
    return json.dumps(value) if value else "{}"


def event_columns(rows: Sequence[EventRow]) -> dict[str, list[Any]]:
    """The events as one array per column (JSON pre-encoded), the parameters of the ``unnest`` insert."""
    return {
        "app_ids": [r.app_id for r in rows],
        "endpoint_ids": [r.endpoint_id for r in rows],
        "event_ids": [r.event_id for r in rows],
        "event_types": [r.event_type for r in rows],
        "occurred": [r.occurred_at for r in rows],
        "attributes": [_json(r.attributes) for r in rows],
        "metrics": [_json(r.metrics) for r in rows],
        # A missing session is stored as JSON null, as SQLAlchemy's JSONB type stored it (none_as_null=False).
        "sessions": ["null" if r.session is None else json.dumps(r.session) for r in rows],
        "message_ids": [r.message_id for r in rows],
    }


async def insert_events(conn: AsyncConnection, rows: Sequence[EventRow]) -> list[int]:
    """Insert events with one statement; returns their row ids, in the order of ``rows``.

    Ids come from the table's identity sequence as the rows are inserted, in ``ORDER BY u.n`` order, and a
    session's sequence values only grow: sorting the returned ids gives them in input order whatever order
    RETURNING uses.
    """
    if not rows:
        return []
    ids = (await conn.execute(_INSERT_EVENTS, event_columns(rows))).scalars().all()
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
