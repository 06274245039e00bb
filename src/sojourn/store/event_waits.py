"""Which waiting cohorts an event concerns: participants at a wait-for-event split whose event just arrived.

The event path calls :func:`lanes_awaiting` in its transaction and signals each lane's CohortWorkflow after
commit, so the participant moves on within moments instead of at the end of the split's evaluation wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.store.event_consumers import EventConsumers, event_consumers
from sojourn.store.events_repo import EventRow


@dataclass(frozen=True)
class WaitingLane:
    """A lane of a cohort with participants waiting at a split for their own events."""

    journey_id: str
    cohort_no: int
    lane: str


async def awaited_events(conn: AsyncConnection, app_id: str) -> dict[str, dict[str, set[str]]]:
    """Per running journey of the app, its wait-for-event splits and the event types each waits for."""
    return (await event_consumers(conn, app_id)).awaiting


async def lanes_awaiting(
    conn: AsyncConnection, app_id: str, rows: Sequence[EventRow], *, consumers: EventConsumers | None = None
) -> set[WaitingLane]:
    """The lanes holding participants that one of ``rows`` (events of ``app_id``) may release.

    Args:
        conn: A connection (the event path's transaction).
        app_id: The application.
        rows: The events just recorded.
        consumers: The app's event consumers when the caller has already looked them up in this transaction.
    """
    if not rows:
        return set()
    journeys = (consumers or await event_consumers(conn, app_id)).awaiting
    if not journeys:
        return set()
    types_of: dict[str, set[str]] = {}
    for row in rows:
        types_of.setdefault(row.endpoint_id, set()).add(row.event_type)
    activities = sorted({aid for splits in journeys.values() for aid in splits})
    # (journey_id, endpoint_id) is the participants key's prefix: one index probe per pair.
    waiting = await conn.execute(
        text(
            "SELECT journey_id, endpoint_id, cohort_no, lane, position FROM participants "
            "WHERE journey_id = ANY(CAST(:journeys AS text[])) AND endpoint_id = ANY(CAST(:endpoints AS text[])) "
            "AND status = 'active' AND position = ANY(CAST(:activities AS text[]))"
        ),
        {"journeys": sorted(journeys), "endpoints": sorted(types_of), "activities": activities},
    )
    return {
        WaitingLane(r.journey_id, int(r.cohort_no), r.lane)
        for r in waiting
        if journeys[r.journey_id].get(r.position, set()) & types_of.get(r.endpoint_id, set())
    }
