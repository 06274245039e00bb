"""The event path's SQL: the one-statement insert (one JSON document) and the per-batch lookup of event consumers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sojourn.store.event_consumers import event_consumers
from sojourn.store.events_repo import EventRow, insert_events, record_events
from sojourn.store.journeys_repo import insert_journey, set_state, update_definition
from sojourn.store.tables import apps, events

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

# Values that JSON encoding and the text[] -> jsonb path must carry through unchanged.
ODD_ROWS = [
    EventRow("app", "ep-1", "a", "signup", AT),
    EventRow(
        "app",
        "ép 2 ☃",
        'quote " and \\ backslash',
        "_custom.évènement",
        AT.astimezone(timezone(timedelta(hours=-5, minutes=-30))),
        attributes={
            "plain": "value",
            "unicode": "naïve café 日本語 🚀",
            "escapes": 'tab\there "quoted" back\\slash\nnewline',
            "": "empty key",
            "json-looking": '{"not": "an object"}',
            "percent_underscore": "100%_off",
        },
        metrics={"int_like": 3.0, "fraction": 0.1, "negative": -2.5e-7, "big": 1e300, "zero": -0.0},
        session={"Id": "s-1", "StartTimestamp": "2026-11-23T09:59:00Z", "Duration": 60, "nested": {"a": [1]}},
        message_id="msg-1",
    ),
    EventRow("app", "ep-3", "c", "x" * 50, AT, attributes={"k": ""}, metrics={}, session={}),
    EventRow("app", "ep-4", "d", "naive", datetime(2026, 11, 23, 10, 0, 0, 123456)),  # naive: UTC
]


def _stored_columns() -> str:
    return (
        "app_id, endpoint_id, event_id, event_type, occurred_at, attributes, metrics, session, message_id, "
        "attributes::text AS attributes_text, metrics::text AS metrics_text, session::text AS session_text"
    )


async def _new_app(conn: AsyncConnection) -> str:
    app_id = uuid4().hex
    await conn.execute(apps.insert().values(id=app_id, name="events repo"))
    return app_id


def _rows_of(app_id: str) -> list[EventRow]:
    return [
        EventRow(
            app_id, r.endpoint_id, r.event_id, r.event_type, r.occurred_at, r.attributes, r.metrics, r.session,
            r.message_id,
        )
        for r in ODD_ROWS
    ]  # fmt: skip


async def test_one_statement_insert_stores_exactly_what_executemany_stored(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        old_app, new_app = await _new_app(conn), await _new_app(conn)
        # The former path: SQLAlchemy executemany of events.insert() with the JSONB type's own encoding.
        await conn.execute(
            events.insert(),
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
                for r in _rows_of(old_app)
            ],
        )
        ids = await insert_events(conn, _rows_of(new_app))
        query = text(f"SELECT {_stored_columns()} FROM events WHERE app_id = :a ORDER BY id")
        before = [dict(r._mapping) for r in await conn.execute(query, {"a": old_app})]
        after = [dict(r._mapping) for r in await conn.execute(query, {"a": new_app})]
        by_id = {
            int(r.id): r.event_id
            for r in await conn.execute(
                text("SELECT id, event_id FROM events WHERE app_id = :a"), {"a": new_app}
            )
        }

    assert len(before) == len(after) == len(ODD_ROWS)
    for old, new in zip(before, after, strict=True):
        assert {**old, "app_id": None} == {**new, "app_id": None}
    # The returned ids name the rows in input order.
    assert [by_id[i] for i in ids] == [r.event_id for r in ODD_ROWS]
    assert after[1]["attributes"]["unicode"] == "naïve café 日本語 🚀"
    assert float(json.loads(after[1]["metrics_text"])["big"]) == 1e300


async def test_returned_ids_follow_input_order_for_a_full_batch(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        app_id = await _new_app(conn)
        rows = [EventRow(app_id, f"ep{i % 7}", f"ev{i}", "t", AT) for i in range(100)]
        ids = await insert_events(conn, rows)
        stored = {
            int(r.id): r.event_id
            for r in await conn.execute(
                text("SELECT id, event_id FROM events WHERE app_id = :a"), {"a": app_id}
            )
        }
    assert [stored[i] for i in ids] == [f"ev{i}" for i in range(100)]


def _journey(event_type: str) -> dict[str, Any]:
    return {
        "Name": f"on-{event_type}",
        "StartActivity": "welcome",
        "StartCondition": {
            "EventStartCondition": {
                "EventFilter": {
                    "FilterType": "ENDPOINT",
                    "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [event_type]}},
                }
            }
        },
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
    }


async def _intake(conn: AsyncConnection, journey_id: str) -> list[str]:
    rows = await conn.execute(
        text("SELECT endpoint_id FROM journey_intake WHERE journey_id = :j ORDER BY id"), {"j": journey_id}
    )
    return [r.endpoint_id for r in rows]


async def test_a_journey_activated_after_a_batch_takes_the_next_event(db: AsyncEngine) -> None:
    journey_id = uuid4().hex
    async with db.begin() as conn:
        app_id = await _new_app(conn)
        await insert_journey(conn, app_id, journey_id, "on-signup", "DRAFT", _journey("signup"), {})
    async with db.begin() as conn:
        # Nothing consumes the app's events yet (and the lookup remembers that).
        assert not (await event_consumers(conn, app_id)).any
        assert await record_events(conn, [EventRow(app_id, "early", "1", "signup", AT)]) == set()
    async with db.begin() as conn:
        await set_state(conn, app_id, journey_id, "ACTIVE")
    async with db.begin() as conn:
        assert await record_events(conn, [EventRow(app_id, "next", "2", "signup", AT)]) == {journey_id}
        assert await _intake(conn, journey_id) == ["next"]


async def test_a_changed_definition_applies_to_the_next_event(db: AsyncEngine) -> None:
    journey_id = uuid4().hex
    async with db.begin() as conn:
        app_id = await _new_app(conn)
        await insert_journey(conn, app_id, journey_id, "on-signup", "ACTIVE", _journey("signup"), {})
    async with db.begin() as conn:
        await record_events(
            conn, [EventRow(app_id, "a", "1", "signup", AT), EventRow(app_id, "b", "2", "buy", AT)]
        )
    async with db.begin() as conn:
        await update_definition(
            conn, app_id, journey_id, definition=_journey("buy"), state="ACTIVE", new_version=True
        )
    async with db.begin() as conn:
        await record_events(
            conn, [EventRow(app_id, "c", "3", "signup", AT), EventRow(app_id, "d", "4", "buy", AT)]
        )
    async with db.begin() as conn:
        await set_state(conn, app_id, journey_id, "CANCELLED")
    async with db.begin() as conn:
        await record_events(conn, [EventRow(app_id, "e", "5", "buy", AT)])
        assert not (await event_consumers(conn, app_id)).any
        assert await _intake(conn, journey_id) == ["a", "d"]


async def test_uncommitted_activation_is_seen_by_its_own_transaction_only(db: AsyncEngine) -> None:
    journey_id = uuid4().hex
    async with db.begin() as conn:
        app_id = await _new_app(conn)
        await insert_journey(conn, app_id, journey_id, "on-signup", "DRAFT", _journey("signup"), {})
    async with db.connect() as activating, db.connect() as other:
        await activating.begin()
        await set_state(activating, app_id, journey_id, "ACTIVE")
        assert [j for j, _ in (await event_consumers(activating, app_id)).entry_journeys] == [journey_id]
        await other.begin()
        assert (await event_consumers(other, app_id)).entry_journeys == []
        await activating.rollback()
        await other.rollback()
    async with db.begin() as conn:
        assert (await event_consumers(conn, app_id)).entry_journeys == []
