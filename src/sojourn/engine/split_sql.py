"""Conditions of journey splits, evaluated for a whole lane at once.

Each simple condition is one query over the lane's members passed as an array (``= ANY(:ids)``), so its plan
is an index probe per member whatever the table statistics say (a freshly filled journey has none yet).
ALL/ANY combine the per-condition answers as sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.journeys import ConditionSpec, SimpleCondition
from sojourn.domain.participants import whole_users
from sojourn.domain.segments import SegmentDimensions
from sojourn.store.segment_sql import dimensions_clause
from sojourn.store.segments_repo import load_segment_clause
from sojourn.store.tables import endpoints, events, messages

# Outcomes the message ledger itself knows (an SMTP relay's acceptance is the delivery we can observe).
LEDGER_EVENTS = {"_email.send": ("sent",), "_email.delivered": ("sent",)}

Member = tuple[str, int]  # (endpoint id, entry number)


async def members_meeting(
    conn: AsyncConnection,
    app_id: str,
    journey_id: str,
    condition: ConditionSpec | None,
    members: Sequence[Member],
    *,
    now: datetime,
    users: Mapping[Member, str] | None = None,
) -> set[Member]:
    """The members of a lane who meet ``condition`` (ALL or ANY of its simple conditions).

    Args:
        users: The user id of each member that is an endpoint of a user participant. Each simple condition
            is OR'ed across a user's endpoints (one endpoint meeting it brings all of the user's), and an
            event of any of the user's endpoints counts for the user (Pinpoint §1.2), so users stay whole.
    """
    if condition is None or not condition.Conditions or not members:
        return set()
    result: set[Member] | None = None
    for simple in condition.Conditions:
        met = await _meeting(conn, app_id, journey_id, simple, members, now=now, users=users)
        if condition.Operator == "ALL":
            result = met if result is None else result & met
        else:
            result = met if result is None else result | met
    return result or set()


async def _meeting(
    conn: AsyncConnection,
    app_id: str,
    journey_id: str,
    cond: SimpleCondition,
    members: Sequence[Member],
    *,
    now: datetime,
    users: Mapping[Member, str] | None = None,
) -> set[Member]:
    ids = sorted({endpoint_id for endpoint_id, _ in members})
    if cond.EventCondition is not None and cond.EventCondition.own_event:
        own = await _with_own_event(conn, journey_id, cond.EventCondition.own_event_types(), members)
        return whole_users(own, users, members)
    if cond.EventCondition is not None:
        values, inclusive = _event_types(cond)
        dims = cond.EventCondition.Dimensions
        found = await _with_event(
            conn,
            journey_id,
            cond.EventCondition.MessageActivity or "",
            values,
            ids,
            attributes=(dims.Attributes or {}) if dims is not None else {},
        )
        # Whether the user had the event is decided before EXCLUSIVE negates it: "did not open" holds for a
        # user only when none of its endpoints opened.
        had = whole_users({m for m in members if m in found}, users, members)
        return {m for m in members if (m in had) == inclusive}
    if cond.SegmentCondition is not None:
        clause = await load_segment_clause(conn, app_id, cond.SegmentCondition.SegmentId, now=now)
    else:
        clause = dimensions_clause(SegmentDimensions.model_validate(cond.SegmentDimensions or {}), now=now)
    # Segment conditions read the endpoint's latest data, as Pinpoint does.
    rows = await conn.execute(
        select(endpoints.c.id).where(endpoints.c.app_id == app_id, endpoints.c.id.in_(ids), clause)
    )
    matching = {r[0] for r in rows}
    return whole_users({m for m in members if m[0] in matching}, users, members)


def _event_types(cond: SimpleCondition) -> tuple[list[str], bool]:
    assert cond.EventCondition is not None
    dims = cond.EventCondition.Dimensions
    if dims is None or dims.EventType is None:
        return (["_email.open"], True)
    return (list(dims.EventType.Values), dims.EventType.DimensionType == "INCLUSIVE")


async def _with_event(
    conn: AsyncConnection,
    journey_id: str,
    message_activity: str,
    values: list[str],
    ids: list[str],
    *,
    attributes: Mapping[str, Any] | None = None,
) -> set[Member]:
    """Members whose message from ``message_activity`` has one of the event types ``values``.

    ``attributes`` ({name: {AttributeType: INCLUSIVE|EXCLUSIVE, Values}}) further filter the events, e.g. the
    attributes a CUSTOM activity's hook answered (``_custom.response``); the ledger's own outcomes have none.
    """
    m, ev = messages, events
    attribute_tests = [_attribute_test(name, dim) for name, dim in (attributes or {}).items()]
    ledger_statuses = [] if attribute_tests else sorted({s for v in values for s in LEDGER_EVENTS.get(v, ())})
    event_values = [v for v in values if v not in LEDGER_EVENTS]
    tests: list[ColumnElement[bool]] = []
    if ledger_statuses:
        tests.append(m.c.status.in_(ledger_statuses))
    if event_values:
        tests.append(
            exists(
                select(1).where(
                    ev.c.message_id == m.c.message_id, ev.c.event_type.in_(event_values), *attribute_tests
                )
            )
        )
    found: set[Member] = set()
    for test in tests:
        rows = await conn.execute(
            select(m.c.endpoint_id, m.c.entry_no).where(
                m.c.journey_id == journey_id,
                m.c.activity_id == message_activity,
                m.c.endpoint_id.in_(ids),
                test,
            )
        )
        found |= {(r[0], int(r[1])) for r in rows}
    return found


def _attribute_test(name: str, dim: Mapping[str, Any]) -> ColumnElement[bool]:
    """An event attribute filter: the attribute's value is (INCLUSIVE) or is not (EXCLUSIVE) one of Values."""
    value = events.c.attributes[name].astext
    values = [str(v) for v in dim.get("Values") or ()]
    if dim.get("AttributeType", "INCLUSIVE") == "EXCLUSIVE":
        return or_(value.is_(None), value.not_in(values))
    return value.in_(values)


async def _with_own_event(
    conn: AsyncConnection, journey_id: str, event_types: list[str], members: Sequence[Member]
) -> set[Member]:
    """Members with an event of ``event_types`` received since they reached the split (their last move)."""
    pairs = sorted(members)
    rows = await conn.execute(
        text(
            "SELECT p.endpoint_id, p.entry_no FROM participants p "
            "JOIN unnest(CAST(:ids AS text[]), CAST(:entries AS int[])) AS m(endpoint_id, entry_no) "
            "  ON m.endpoint_id = p.endpoint_id AND m.entry_no = p.entry_no "
            "WHERE p.journey_id = :j AND EXISTS ("
            "  SELECT 1 FROM events e WHERE e.app_id = p.app_id AND e.endpoint_id = p.endpoint_id "
            "  AND e.event_type = ANY(CAST(:types AS text[])) AND e.received_at >= p.updated_at)"
        ),
        {
            "j": journey_id,
            "ids": [e for e, _ in pairs],
            "entries": [n for _, n in pairs],
            "types": event_types,
        },
    )
    return {(str(r[0]), int(r[1])) for r in rows}
