"""The participant ledger's SQL rules agree with their Python statements."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store.journey_ledger import _BUCKET_SQL, HASH_BUCKETS, stable_bucket


async def test_sql_bucket_matches_python(db: AsyncEngine) -> None:
    endpoints = [f"endpoint-{i}" for i in range(200)] + ["ünïcode", "a/b", ""]
    sql = _BUCKET_SQL.replace("p.endpoint_id", "e")
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT e, {sql} FROM unnest(CAST(:ids AS text[])) AS e"),
            {"ids": endpoints, "journey_id": "j1", "activity_id": "holdout"},
        )
        from_sql = dict(rows.all())
    assert all(0 <= v < HASH_BUCKETS for v in from_sql.values())
    assert from_sql == {e: stable_bucket("j1", "holdout", e) for e in endpoints}
