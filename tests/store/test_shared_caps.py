"""Caps shared across journeys hold when many cohorts claim messages for the same endpoints at once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store import message_ledger
from sojourn.store.message_ledger import SharedCaps

ENDPOINTS = 50
JOURNEYS = 8


async def seed(db: AsyncEngine) -> tuple[str, list[str]]:
    """An app with email endpoints, each a participant at activity 'mail' of every one of JOURNEYS journeys."""
    app_id = uuid.uuid4().hex
    journeys = [f"j{i}-{app_id[:6]}" for i in range(JOURNEYS)]
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO apps (id, name) VALUES (:a, 'caps')"), {"a": app_id})
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, cohort_id) "
                "SELECT :a, 'ep' || i, 'EMAIL', 'ep' || i || '@example.com', i % 100 FROM generate_series(1, :n) i"
            ),
            {"a": app_id, "n": ENDPOINTS},
        )
        for journey_id in journeys:
            await conn.execute(
                text(
                    "INSERT INTO participants (journey_id, endpoint_id, entry_no, app_id, version, cohort_no, lane, position) "
                    "SELECT :j, 'ep' || i, 1, :a, 1, 0, '0', 'mail' FROM generate_series(1, :n) i"
                ),
                {"j": journey_id, "a": app_id, "n": ENDPOINTS},
            )
    return app_id, journeys


async def claim(
    db: AsyncEngine, app_id: str, journey_id: str, now: datetime, caps: SharedCaps
) -> Counter[str]:
    async with db.begin() as conn:
        outcome = await message_ledger.claim_journey_emails(
            conn,
            app_id=app_id,
            journey_id=journey_id,
            version=1,
            cohort_no=0,
            lane="0",
            activity_id="mail",
            visit="0:0",
            now=now,
            shared=caps,
        )
        # Hold the transaction open a moment, as a step that does more work would: racers must wait.
        await asyncio.sleep(0.01)
        return outcome


@pytest.mark.parametrize(
    ("caps", "allowed", "reason"),
    [
        (SharedCaps(timeframe_cap=3, timeframe_days=7), 3, "TIMEFRAME_CAP"),
        (SharedCaps(journeys_daily=2), 2, "DAILY_CAP"),
        (SharedCaps(all_daily=1), 1, "DAILY_CAP"),
    ],
)
async def test_concurrent_claims_never_exceed_a_shared_cap(
    db: AsyncEngine, caps: SharedCaps, allowed: int, reason: str
) -> None:
    app_id, journeys = await seed(db)
    now = datetime.now(UTC)
    outcomes = await asyncio.gather(*(claim(db, app_id, j, now, caps) for j in journeys))
    total = sum(outcomes, Counter())
    assert total == Counter({"pending": ENDPOINTS * allowed, reason: ENDPOINTS * (JOURNEYS - allowed)})
    async with db.connect() as conn:
        per_endpoint = Counter(
            dict(
                (
                    await conn.execute(
                        text(
                            "SELECT endpoint_id, count(*) FROM messages WHERE app_id = :a AND status = 'pending' "
                            "GROUP BY endpoint_id"
                        ),
                        {"a": app_id},
                    )
                ).all()
            )
        )
    assert set(per_endpoint.values()) == {allowed}


async def test_the_timeframe_counts_back_only_its_days(db: AsyncEngine) -> None:
    app_id, journeys = await seed(db)
    caps = SharedCaps(timeframe_cap=1, timeframe_days=2)
    start = datetime.now(UTC)
    assert (await claim(db, app_id, journeys[0], start, caps))["pending"] == ENDPOINTS
    assert (await claim(db, app_id, journeys[1], start + timedelta(days=1), caps))[
        "TIMEFRAME_CAP"
    ] == ENDPOINTS
    assert (await claim(db, app_id, journeys[2], start + timedelta(days=2, minutes=1), caps))[
        "pending"
    ] == ENDPOINTS
