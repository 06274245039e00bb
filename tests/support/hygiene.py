"""Seed endpoints with a mailing and engagement history, for the unengaged-removal tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class History:
    """An endpoint's age, last send and last open (days before now; None: never)."""

    created_days_ago: int
    sent_days_ago: int | None
    opened_days_ago: int | None


async def seed_history(db: AsyncEngine, now: datetime, histories: dict[str, History]) -> str:
    """A new app with one EMAIL endpoint per history (id = the dict key); returns the app id."""
    app_id = f"sun{uuid.uuid4().hex[:10]}"
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO apps (id, name) VALUES (:a, 'sunset')"), {"a": app_id})
        for endpoint_id, h in histories.items():
            await conn.execute(
                text(
                    "INSERT INTO endpoints (app_id, id, channel_type, address, cohort_id, creation_date) "
                    "VALUES (:a, :e, 'EMAIL', :x, 0, :c)"
                ),
                {
                    "a": app_id,
                    "e": endpoint_id,
                    "x": f"{endpoint_id}-{app_id}@example.com",
                    "c": now - timedelta(days=h.created_days_ago),
                },
            )
            await add_history(db, app_id, endpoint_id, now, h, conn=conn)
    return app_id


async def add_history(
    db: AsyncEngine, app_id: str, endpoint_id: str, now: datetime, h: History, *, conn: object = None
) -> None:
    """Record a sent message and an open for the endpoint, as ``h`` says."""

    async def run(c: object) -> None:
        if h.sent_days_ago is not None:
            await c.execute(  # type: ignore[attr-defined]
                text(
                    "INSERT INTO messages (message_id, app_id, endpoint_id, channel, status, sent_at) "
                    "VALUES (:m, :a, :e, 'EMAIL', 'sent', :t)"
                ),
                {
                    "m": uuid.uuid4().hex,
                    "a": app_id,
                    "e": endpoint_id,
                    "t": now - timedelta(days=h.sent_days_ago),
                },
            )
        if h.opened_days_ago is not None:
            await c.execute(  # type: ignore[attr-defined]
                text(
                    "INSERT INTO events (app_id, endpoint_id, event_id, event_type, occurred_at) "
                    "VALUES (:a, :e, :i, '_email.open', :t)"
                ),
                {
                    "a": app_id,
                    "e": endpoint_id,
                    "i": uuid.uuid4().hex,
                    "t": now - timedelta(days=h.opened_days_ago),
                },
            )

    if conn is not None:
        await run(conn)
    else:
        async with db.begin() as c:
            await run(c)
