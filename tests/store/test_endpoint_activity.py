"""Last activity for Behavior.Recency: its own narrow table, moved forward only, at a coarse granularity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sojourn.domain.segments import SegmentDimensions
from sojourn.store.endpoint_rows import ACTIVITY_GRANULARITY, last_active, touch_active, upsert_endpoints
from sojourn.store.segment_sql import audience_clause, dimensions_clause
from sojourn.store.tables import apps, endpoints

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def _app_with(conn: AsyncConnection, *endpoint_ids: str) -> str:
    app_id = uuid4().hex
    await conn.execute(apps.insert().values(id=app_id, name="activity"))
    await upsert_endpoints(
        conn,
        app_id,
        [(e, {"ChannelType": "EMAIL", "Address": f"{e}@x.test"}) for e in endpoint_ids],
        request_id=None,
    )
    return app_id


async def _row_version(conn: AsyncConnection, app_id: str, endpoint_id: str) -> Any:
    return await conn.scalar(
        text("SELECT xmin::text || ctid::text FROM endpoint_activity WHERE app_id = :a AND endpoint_id = :e"),
        {"a": app_id, "e": endpoint_id},
    )


async def test_activity_moves_forward_only_and_not_within_the_granularity(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        app_id = await _app_with(conn, "e")
        await touch_active(conn, app_id, ["e"], T0)
    async with db.begin() as conn:
        version = await _row_version(conn, app_id, "e")
        await touch_active(conn, app_id, ["e"], T0 - timedelta(days=1))  # never moves back
        await touch_active(conn, app_id, ["e"], T0 + ACTIVITY_GRANULARITY - timedelta(seconds=1))
        assert await last_active(conn, app_id, "e") == T0
    async with db.begin() as conn:
        # Not even rewritten (same row version): a busy endpoint costs no write per batch.
        assert await _row_version(conn, app_id, "e") == version
        later = T0 + ACTIVITY_GRANULARITY + timedelta(seconds=1)
        await touch_active(conn, app_id, ["e"], later)
        assert await last_active(conn, app_id, "e") == later


async def test_unknown_endpoints_are_ignored_and_deleted_endpoints_forget_activity(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        app_id = await _app_with(conn, "a", "b")
        await touch_active(conn, app_id, ["b", "a", "ghost"], T0)
        assert await last_active(conn, app_id, "ghost") is None
        await conn.execute(endpoints.delete().where(endpoints.c.app_id == app_id, endpoints.c.id == "a"))
        assert await last_active(conn, app_id, "a") is None
        assert await last_active(conn, app_id, "b") == T0


async def test_recency_segments_read_the_activity_table(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        app_id = await _app_with(conn, "recent", "old", "never")
        await touch_active(conn, app_id, ["recent"], T0 - timedelta(hours=2))
        await touch_active(conn, app_id, ["old"], T0 - timedelta(days=3))

    async def members(kind: str, duration: str) -> set[str]:
        dims = SegmentDimensions.model_validate(
            {"Behavior": {"Recency": {"Duration": duration, "RecencyType": kind}}}
        )
        query = endpoints.select().where(audience_clause(app_id, dimensions_clause(dims, now=T0)))
        async with db.connect() as conn:
            return {r.id for r in await conn.execute(query)}

    assert await members("ACTIVE", "HR_24") == {"recent"}
    assert await members("INACTIVE", "HR_24") == {"old", "never"}
    assert await members("ACTIVE", "DAY_7") == {"recent", "old"}
    assert await members("INACTIVE", "DAY_7") == {"never"}
