"""The event path: PutEvents and tracking links land here, in one transaction with journey intake."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.campaigns import CampaignDefinition, campaign_event_matches
from sojourn.domain.journeys import JourneyDefinition, event_matches
from sojourn.store import campaigns_repo
from sojourn.store.tables import events, journey_intake


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


async def event_journeys(conn: AsyncConnection, app_id: str) -> list[tuple[str, JourneyDefinition]]:
    """The app's ACTIVE (or PAUSED: entrants queue up) event-triggered journeys."""
    rows = await conn.execute(
        text(
            "SELECT id, definition FROM journeys WHERE app_id = :a AND state IN ('ACTIVE', 'PAUSED') "
            "AND definition -> 'StartCondition' ? 'EventStartCondition'"
        ),
        {"a": app_id},
    )
    return [(r.id, JourneyDefinition.model_validate(r.definition)) for r in rows]


async def record_events(
    conn: AsyncConnection, rows: Sequence[EventRow], *, woken_campaigns: set[str] | None = None
) -> set[str]:
    """Insert events and the journey (and EVENT campaign) intake rows they trigger, in the caller's transaction.

    Args:
        woken_campaigns: Filled with the ids of the EVENT campaigns that got endpoints to message.

    Returns:
        Ids of the journeys that got new entrants (their workflows get a doorbell after commit).
    """
    if not rows:
        return set()
    ids = (
        (
            await conn.execute(
                events.insert().returning(events.c.id),
                [
                    {
                        "app_id": r.app_id,
                        "endpoint_id": r.endpoint_id,
                        "event_id": r.event_id,
                        "event_type": r.event_type,
                        "occurred_at": r.occurred_at,
                        "attributes": r.attributes,
                        "metrics": r.metrics,
                        "session": r.session,
                        "message_id": r.message_id,
                    }
                    for r in rows
                ],
            )
        )
        .scalars()
        .all()
    )
    intake: list[dict[str, Any]] = []
    by_app: dict[str, list[tuple[str, JourneyDefinition]]] = {}
    for row_id, row in zip(ids, rows, strict=True):
        if row.app_id not in by_app:
            by_app[row.app_id] = await event_journeys(conn, row.app_id)
        for journey_id, definition in by_app[row.app_id]:
            entry = definition.entry_event_filter
            if entry is not None and event_matches(entry, row.event_type, row.attributes, row.metrics):
                intake.append(
                    {"journey_id": journey_id, "endpoint_id": row.endpoint_id, "event_row_id": row_id}
                )
    if intake:
        await conn.execute(journey_intake.insert(), intake)
    campaign_ids = await queue_campaign_intake(conn, rows, ids)
    if woken_campaigns is not None:
        woken_campaigns |= campaign_ids
    return {i["journey_id"] for i in intake}


async def queue_campaign_intake(
    conn: AsyncConnection, rows: Sequence[EventRow], ids: Sequence[int]
) -> set[str]:
    """Queue the events' endpoints for the EVENT campaigns whose EventFilter they match.

    Returns:
        Ids of the campaigns that got endpoints (their workflows get a doorbell after commit).
    """
    intake: list[dict[str, Any]] = []
    by_app: dict[str, list[tuple[str, CampaignDefinition]]] = {}
    for row_id, row in zip(ids, rows, strict=True):
        if row.app_id not in by_app:
            by_app[row.app_id] = [
                (cid, CampaignDefinition.model_validate(d))
                for cid, d in await campaigns_repo.event_campaigns(conn, row.app_id)
            ]
        for campaign_id, definition in by_app[row.app_id]:
            if campaign_event_matches(
                definition, row.event_type, row.attributes, row.metrics, at=row.occurred_at
            ):
                intake.append(
                    {
                        "campaign_id": campaign_id,
                        "endpoint_id": row.endpoint_id,
                        "event_row_id": row_id,
                        "occurred_at": row.occurred_at,
                    }
                )
    await campaigns_repo.add_intake(conn, intake)
    return {i["campaign_id"] for i in intake}
