"""Cost of the send path's skip reasons (suppression and permission checks) per endpoint.

    python bench/skip_reason_throughput.py --endpoints 200000

Starts its own PostgreSQL in a temporary directory, seeds N email endpoints of one app, puts 5% of their
addresses on the suppression list, gives a third of them a granted and 1 in 30 a pending permission, then
evaluates ``SKIP_REASON_SQL`` over all of them, next to the fragment without the suppression and permission
checks (the baseline), in the same run. The last line is machine-readable:

    endpoints_per_s=<float> baseline_endpoints_per_s=<float> ratio=<float>
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import create_engine
from sojourn.store.message_ledger import SKIP_REASON_SQL
from sojourn.store.migrate import upgrade

BASELINE = """
CASE
  WHEN e.id IS NULL THEN 'ENDPOINT_MISSING'
  WHEN e.opt_out = 'ALL' THEN 'ENDPOINT_OPT_OUT'
  WHEN e.endpoint_status <> 'ACTIVE' THEN 'ENDPOINT_INACTIVE'
  WHEN e.channel_type IS DISTINCT FROM 'EMAIL' THEN 'ENDPOINT_MISSING_CHANNEL'
  WHEN e.address IS NULL OR e.address = '' THEN 'ENDPOINT_MISSING_ADDRESS'
  ELSE NULL
END
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(db: AsyncEngine, n: int) -> None:
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO apps (id, name) VALUES ('bench', 'bench')"))
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, cohort_id) "
                "SELECT 'bench', 'e' || g, 'EMAIL', 'u' || g || '@example.com', 0 FROM generate_series(1, CAST(:n AS int)) g"
            ),
            {"n": n},
        )
        await conn.execute(
            text(
                "INSERT INTO suppressed_destinations (email_address, reason) "
                "SELECT 'u' || g || '@example.com', 'BOUNCE' FROM generate_series(1, CAST(:n AS int), 20) g"
            ),
            {"n": n},
        )
        for status, start, step in (("granted", 1, 3), ("pending", 2, 30)):
            await conn.execute(
                text(
                    "INSERT INTO channel_permissions (app_id, endpoint_id, channel, status) "
                    "SELECT 'bench', 'e' || g, 'EMAIL', :s FROM generate_series(CAST(:start AS int), CAST(:n AS int), CAST(:step AS int)) g "
                    "ON CONFLICT DO NOTHING"
                ),
                {"s": status, "start": start, "n": n, "step": step},
            )
        await conn.execute(text("ANALYZE"))


async def _rate(db: AsyncEngine, fragment: str, n: int, rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        async with db.connect() as conn:
            started = time.perf_counter()
            await conn.execute(
                text(
                    f"SELECT r, count(*) FROM (SELECT {fragment} AS r FROM endpoints e WHERE e.app_id = 'bench') x GROUP BY r"
                )
            )
            best = max(best, n / (time.perf_counter() - started))
    return best


async def _run(url: str, n: int, rounds: int) -> None:
    db = create_engine(url)
    try:
        await _seed(db, n)
        baseline = await _rate(db, BASELINE, n, rounds)
        full = await _rate(db, SKIP_REASON_SQL, n, rounds)
    finally:
        await db.dispose()
    print(f"endpoints_per_s={full:.0f} baseline_endpoints_per_s={baseline:.0f} ratio={baseline / full:.1f}")


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many evaluations")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sojourn-bench-") as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg", port=_free_port())
        postgres.start()
        try:
            postgres.ensure_database("bench")
            upgrade(postgres.url("bench"))
            asyncio.run(_run(postgres.url("bench"), args.endpoints, args.rounds))
        finally:
            postgres.stop()


if __name__ == "__main__":
    main()
