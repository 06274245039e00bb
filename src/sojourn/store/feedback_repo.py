"""Delivery feedback into the system of record: events, the message ledger and the suppression list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.channels.feedback import Feedback
from sojourn.store import suppression_repo
from sojourn.store.events_repo import EventRow, record_events

# How each outcome changes a known message's ledger row: (statuses it applies to, new status, message prefix).
# Bounces make the message failed; a delivery or complaint leaves it sent and says so.
_LEDGER_UPDATE = {
    "hardbounce": (("pending", "sent"), "failed", "PERMANENT_FAILURE: hard bounce"),
    "softbounce": (("pending", "sent"), "failed", "TEMPORARY_FAILURE: soft bounce"),
    "complaint": (("sent",), "sent", "COMPLAINT"),
    "delivered": (("sent",), "sent", "DELIVERED"),
}


@dataclass
class FeedbackOutcome:
    """What applying feedback did.

    Attributes:
        events: Events recorded.
        suppressed: Addresses put on the suppression list.
        ledger_updates: Message ledger rows changed.
        unmatched: Feedback items that matched no endpoint (still suppressed when they should be).
        journeys: Per app, journeys that got event-triggered entrants (for their doorbells).
    """

    events: int = 0
    suppressed: int = 0
    ledger_updates: int = 0
    unmatched: int = 0
    journeys: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Target:
    """An endpoint a feedback item is about, and the message when the ledger knows it."""

    app_id: str
    endpoint_id: str
    message_id: str | None = None
    journey_id: str | None = None
    activity_id: str | None = None


async def _targets(conn: AsyncConnection, item: Feedback) -> list[_Target]:
    """The ledger's message when it is known (and to this recipient); else every EMAIL endpoint with the address."""
    if item.message_id:
        row = (
            await conn.execute(
                text(
                    "SELECT app_id, endpoint_id, address, journey_id, activity_id FROM messages WHERE message_id = :m"
                ),
                {"m": item.message_id},
            )
        ).first()
        if row is not None and (
            row.address is None
            or suppression_repo.normalize_address(row.address)
            == suppression_repo.normalize_address(item.recipient)
        ):
            return [_Target(row.app_id, row.endpoint_id, item.message_id, row.journey_id, row.activity_id)]
    rows = await conn.execute(
        text(
            "SELECT app_id, id FROM endpoints WHERE lower(btrim(address)) = :x AND channel_type = 'EMAIL' "
            "ORDER BY app_id, id"
        ),
        {"x": suppression_repo.normalize_address(item.recipient)},
    )
    return [_Target(r.app_id, r.id) for r in rows]


async def _already_recorded(
    conn: AsyncConnection, endpoint_id: str, item: Feedback, message_id: str | None
) -> bool:
    """A redelivered notification (SNS retries, a DSN sent twice) must not count twice.

    The same message and outcome, or the same provider feedback id, is the same notification.
    """
    if message_id:
        found = await conn.scalar(
            text(
                "SELECT 1 FROM events WHERE message_id = :m AND event_type = :t AND endpoint_id = :e LIMIT 1"
            ),
            {"m": message_id, "t": item.event_type, "e": endpoint_id},
        )
        return found is not None
    if item.feedback_id:
        found = await conn.scalar(
            text(
                "SELECT 1 FROM events WHERE endpoint_id = :e AND event_type = :t "
                "AND attributes ->> 'feedback_id' = :f LIMIT 1"
            ),
            {"e": endpoint_id, "t": item.event_type, "f": str(item.feedback_id)[:200]},
        )
        return found is not None
    return False


async def apply_feedback(conn: AsyncConnection, items: Sequence[Feedback]) -> FeedbackOutcome:
    """Record ``items`` in the caller's transaction.

    Each item becomes its standard event (``_email.hardbounce``, ...) for the endpoint it is about (the
    message's, when the message id is in the ledger; else every EMAIL endpoint with the address), updates the
    message's ledger row, and puts hard bounces and complaints on the account suppression list.
    """
    outcome = FeedbackOutcome()
    now = datetime.now(UTC)
    for item in items:
        if not item.recipient:
            continue
        targets = await _targets(conn, item)
        if not targets:
            outcome.unmatched += 1
        rows: list[EventRow] = []
        for target in targets:
            app_id, endpoint_id, message_id = target.app_id, target.endpoint_id, target.message_id
            if await _already_recorded(conn, endpoint_id, item, message_id):
                continue
            attributes = {"detail": item.detail[:200]} if item.detail else {}
            if item.feedback_id:
                attributes["feedback_id"] = str(item.feedback_id)[:200]
            if message_id:
                attributes["message_id"] = message_id
            if target.journey_id:
                # As tracking does: journey splits and metrics find the event by these.
                attributes.update(journey_id=target.journey_id, journey_activity_id=target.activity_id or "")
            rows.append(
                EventRow(
                    app_id=app_id,
                    endpoint_id=endpoint_id,
                    event_id=f"{item.event_type}:{message_id or item.feedback_id or now.timestamp()}",
                    event_type=item.event_type,
                    occurred_at=item.occurred_at or now,
                    attributes=attributes,
                    message_id=message_id,
                )
            )
            if message_id:
                applies_to, status, prefix = _LEDGER_UPDATE[item.kind]
                result = await conn.execute(
                    text(
                        "UPDATE messages SET status = :s, status_message = :why "
                        "WHERE message_id = :m AND status = ANY(:from_)"
                    ),
                    {
                        "s": status,
                        "why": f"{prefix}: {item.detail}"[:500] if item.detail else prefix,
                        "m": message_id,
                        "from_": list(applies_to),
                    },
                )
                outcome.ledger_updates += int(result.rowcount or 0)
        for app_id in sorted({r.app_id for r in rows}):
            journeys = await record_events(conn, [r for r in rows if r.app_id == app_id])
            if journeys:
                outcome.journeys.setdefault(app_id, set()).update(journeys)
        outcome.events += len(rows)
        reason = item.suppression_reason
        if reason is not None:
            await suppression_repo.put(
                conn,
                item.recipient,
                reason,
                at=item.occurred_at,
                message_id=item.message_id,
                feedback_id=item.feedback_id,
            )
            outcome.suppressed += 1
    return outcome
