"""Conditions of journey splits as SQL over the participant ledger, evaluated for a whole lane at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.journeys import ConditionSpec, SimpleCondition
from sojourn.domain.segments import SegmentDimensions
from sojourn.store.segment_sql import dimensions_clause
from sojourn.store.segments_repo import load_segment_clause
from sojourn.store.tables import endpoints, events, messages, participants

# Outcomes the message ledger itself knows (an SMTP relay's acceptance is the delivery we can observe).
LEDGER_EVENTS = {"_email.send": ("sent",), "_email.delivered": ("sent",)}


async def condition_clause(
    conn: AsyncConnection, app_id: str, journey_id: str, condition: ConditionSpec | None, *, now: datetime
) -> ColumnElement[bool]:
    """A boolean over ``participants`` that is true for members who meet ``condition`` (ALL/ANY)."""
    if condition is None or not condition.Conditions:
        return false()
    parts = [await _simple_clause(conn, app_id, journey_id, c, now=now) for c in condition.Conditions]
    return and_(*parts) if condition.Operator == "ALL" else or_(*parts)


async def _simple_clause(
    conn: AsyncConnection, app_id: str, journey_id: str, cond: SimpleCondition, *, now: datetime
) -> ColumnElement[bool]:
    p = participants
    if cond.EventCondition is not None:
        return _event_clause(journey_id, cond.EventCondition.MessageActivity or "", _event_types(cond))
    if cond.SegmentCondition is not None:
        clause = await load_segment_clause(conn, app_id, cond.SegmentCondition.SegmentId, now=now)
    else:
        clause = dimensions_clause(SegmentDimensions.model_validate(cond.SegmentDimensions or {}), now=now)
    # Segment conditions are evaluated against the endpoint's latest data, as Pinpoint does.
    return exists(select(1).where(endpoints.c.app_id == app_id, endpoints.c.id == p.c.endpoint_id, clause))


def _event_types(cond: SimpleCondition) -> tuple[list[str], bool]:
    assert cond.EventCondition is not None
    dims = cond.EventCondition.Dimensions
    if dims is None or dims.EventType is None:
        return (["_email.open"], True)
    return (list(dims.EventType.Values), dims.EventType.DimensionType == "INCLUSIVE")


def _event_clause(journey_id: str, message_activity: str, types: tuple[list[str], bool]) -> ColumnElement[bool]:
    values, inclusive = types
    p, m, ev = participants, messages, events
    same_message = and_(
        m.c.journey_id == journey_id,
        m.c.activity_id == message_activity,
        m.c.endpoint_id == p.c.endpoint_id,
        m.c.entry_no == p.c.entry_no,
    )
    ledger_statuses = sorted({s for v in values for s in LEDGER_EVENTS.get(v, ())})
    event_values = [v for v in values if v not in LEDGER_EVENTS]
    found: list[ColumnElement[bool]] = []
    if ledger_statuses:
        found.append(exists(select(1).where(same_message, m.c.status.in_(ledger_statuses))))
    if event_values:
        found.append(
            exists(
                select(1)
                .select_from(m.join(ev, ev.c.message_id == m.c.message_id))
                .where(same_message, ev.c.event_type.in_(event_values))
            )
        )
    any_found = or_(*found) if found else false()
    return any_found if inclusive else not_(any_found)



