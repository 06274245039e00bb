"""The participant ledger's SQL rules agree with their Python statements."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.domain.participants import bucket_subject, participant_key
from sojourn.store.journey_ledger import (
    _BUCKET_SQL,
    HASH_BUCKETS,
    PARTICIPANT_KEY_SQL,
    bucket_sql,
    stable_bucket,
)


async def test_sql_bucket_matches_python(db: AsyncEngine) -> None:
    endpoints = [f"endpoint-{i}" for i in range(200)] + ["ünïcode", "a/b", ""]
    sql = bucket_sql("e")
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT e, {sql} FROM unnest(CAST(:ids AS text[])) AS e"),
            {"ids": endpoints, "journey_id": "j1", "activity_id": "holdout"},
        )
        from_sql = dict(rows.all())
    assert all(0 <= v < HASH_BUCKETS for v in from_sql.values())
    assert from_sql == {e: stable_bucket("j1", "holdout", e) for e in endpoints}


async def test_participant_rows_hash_and_key_as_the_python_rules_say(db: AsyncEngine) -> None:
    rows = [("ep1", None), ("ep2", "user-a"), ("ep3", "user-a"), ("user-a", None), ("ep4", "")]
    async with db.connect() as conn:
        result = await conn.execute(
            text(
                f"SELECT p.endpoint_id, {PARTICIPANT_KEY_SQL}, {_BUCKET_SQL} "
                "FROM unnest(CAST(:ids AS text[]), CAST(:users AS text[])) AS p(endpoint_id, user_id)"
            ),
            {
                "ids": [e for e, _ in rows],
                "users": [u for _, u in rows],
                "journey_id": "j1",
                "activity_id": "split",
            },
        )
        from_sql = {r[0]: (r[1], r[2]) for r in result}
    assert from_sql == {
        e: (participant_key(e, u), stable_bucket("j1", "split", bucket_subject(e, u))) for e, u in rows
    }
    # A user's endpoints share a bucket; a user id equal to an endpoint id is still another participant.
    assert from_sql["ep2"] == from_sql["ep3"]
    assert from_sql["user-a"][0] != from_sql["ep2"][0]
