"""Send rates shared by every worker: a journey's (or campaign's) MessagesPerSecond as a reservation clock.

One row per paced sender holds the moment its next message may go (``next_at``). A batch of ``count``
messages reserves ``count / rate`` seconds of it in one atomic UPDATE and waits until its start; concurrent
cohorts, on any number of worker processes, get consecutive slots, so together they never exceed the rate.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def reserve(conn: AsyncConnection, key: str, count: int, per_second: float) -> datetime:
    """Reserve slots for ``count`` messages of ``key`` at ``per_second``; when the first of them may be sent.

    Args:
        conn: A connection (the reservation commits with its transaction; keep that short).
        key: The paced sender, e.g. ``journey:<id>``.
        count: Messages in the batch.
        per_second: The rate.

    Returns:
        The start of the reservation (database clock); the batch ends ``count / per_second`` seconds later.
    """
    start = await conn.scalar(
        text(
            "INSERT INTO send_pacing (key, next_at) VALUES (:k, clock_timestamp() + make_interval(secs => :d)) "
            "ON CONFLICT (key) DO UPDATE SET next_at = GREATEST(send_pacing.next_at, clock_timestamp()) "
            "  + make_interval(secs => :d) "
            "RETURNING next_at - make_interval(secs => :d)"
        ),
        {"k": key, "d": count / per_second},
    )
    assert start is not None
    return start


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's clock, which reservations are on."""
    now = await conn.scalar(text("SELECT clock_timestamp()"))
    assert now is not None
    return now
