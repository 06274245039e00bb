"""MessagesPerSecond as a reservation clock in PostgreSQL: concurrent batches get consecutive slots."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store import send_pacing


async def test_concurrent_batches_get_consecutive_slots(db: AsyncEngine) -> None:
    key = f"journey:{uuid.uuid4().hex}"

    async def reserve() -> datetime:
        async with db.begin() as conn:
            return await send_pacing.reserve(conn, key, 10, 100.0)

    starts = sorted(await asyncio.gather(*(reserve() for _ in range(8))))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Each batch of 10 at 100/s holds 0.1 s of the clock; later batches start no sooner than that after.
    assert all(gap >= timedelta(seconds=0.1) for gap in gaps), gaps
    assert starts[-1] - starts[0] >= timedelta(seconds=0.7)


async def test_an_idle_sender_starts_now(db: AsyncEngine) -> None:
    key = f"journey:{uuid.uuid4().hex}"
    async with db.begin() as conn:
        start = await send_pacing.reserve(conn, key, 5, 10.0)
        now = await send_pacing.database_now(conn)
    assert abs((start - now).total_seconds()) < 1
