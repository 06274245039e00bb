"""GetJourneyDateRangeKpi: a journey's email engagement over a date range, from the message ledger and events.

KPI names are Pinpoint's: ``journey-emails-<measure>`` (one row) and
``emails-<measure>-grouped-by-journey-activity`` (a row per email activity), where the measure is one of
:data:`MEASURES`. Sent counts messages the ledger recorded as sent in the range; the others count events in
the range about the journey's messages (every open and click, as Pinpoint counts clicks), and delivered is,
as Pinpoint defines it for journeys, sent minus soft bounces, hard bounces and rejects.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# Measure -> the event type that counts it (None: computed from the ledger).
MEASURES: dict[str, str | None] = {
    "sent": None,
    "delivered": None,
    "opened": "_email.open",
    "clicked": "_email.click",
    "hardbounced": "_email.hardbounce",
    "softbounced": "_email.softbounce",
    "complained": "_email.complaint",
    "rejected": "_email.rejected",
    "unsubscribed": "_email.unsubscribe",
}
_GROUPED = "-grouped-by-journey-activity"


def parse_kpi_name(name: str) -> tuple[str, bool] | None:
    """(measure, grouped by activity) of a journey KPI name, or None when it is not one."""
    if name.startswith("journey-emails-") and name.removeprefix("journey-emails-") in MEASURES:
        return name.removeprefix("journey-emails-"), False
    if name.startswith("emails-") and name.endswith(_GROUPED):
        measure = name.removeprefix("emails-").removesuffix(_GROUPED)
        if measure in MEASURES:
            return measure, True
    return None


def kpi_names() -> list[str]:
    """Every journey KPI name sojourn answers."""
    return [f"journey-emails-{m}" for m in MEASURES] + [f"emails-{m}{_GROUPED}" for m in MEASURES]


async def _sent(conn: AsyncConnection, journey_id: str, start: datetime, end: datetime) -> dict[str, int]:
    rows = await conn.execute(
        text(
            "SELECT activity_id, count(*) FROM messages WHERE journey_id = :j AND sent_at >= :s AND sent_at <= :e "
            "AND status IN ('sent', 'failed') AND sent_at IS NOT NULL GROUP BY activity_id"
        ),
        {"j": journey_id, "s": start, "e": end},
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def _events(
    conn: AsyncConnection, journey_id: str, event_types: list[str], start: datetime, end: datetime
) -> dict[str, int]:
    rows = await conn.execute(
        text(
            "SELECT m.activity_id, count(*) FROM events ev JOIN messages m ON m.message_id = ev.message_id "
            "WHERE m.journey_id = :j AND ev.event_type = ANY(CAST(:types AS text[])) "
            "AND ev.occurred_at >= :s AND ev.occurred_at <= :e GROUP BY m.activity_id"
        ),
        {"j": journey_id, "types": event_types, "s": start, "e": end},
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def measure_by_activity(
    conn: AsyncConnection, journey_id: str, measure: str, start: datetime, end: datetime
) -> dict[str, int]:
    """The measure per email activity of the journey in [start, end]."""
    if measure == "sent":
        return await _sent(conn, journey_id, start, end)
    if measure == "delivered":
        sent = await _sent(conn, journey_id, start, end)
        lost = await _events(
            conn, journey_id, ["_email.hardbounce", "_email.softbounce", "_email.rejected"], start, end
        )
        return {a: max(n - lost.get(a, 0), 0) for a, n in sent.items()}
    event_type = MEASURES[measure]
    assert event_type is not None
    return await _events(conn, journey_id, [event_type], start, end)
