"""The campaign claim's and ledger update's plans and their cost per message, on the embedded PostgreSQL.

    python bench/claim_plan.py [--endpoints 200000] [--pages 20] [--list]

Seeds N email endpoints (and with ``--list`` a contact list holding all their addresses, 5% opted out of the
topic) like ``campaign_blast.py``, then claims pages of 500 messages with the blast's caps (Daily 5, Total 10)
and marks them sent, as one campaign send does, on one connection; prints ``EXPLAIN (ANALYZE, BUFFERS, TIMING
OFF)`` of the last page's claim and ledger update, and the CPU time the database backend spent per message on
each over the other pages (from /proc: CPU time, so other load on the machine weighs little).
No worker and no Temporal: only the statements.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign_blast import LIST, seed_list
from embedded import embedded_stack
from journey_throughput import seed

from sojourn.store import campaigns_repo as repo
from sojourn.store import message_ledger
from sojourn.store.message_ledger import ListFilter

PAGE = 500


class Explaining:
    """A connection stand-in that runs each statement under EXPLAIN ANALYZE and keeps the plan."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.plans: list[str] = []

    async def execute(self, statement: Any, params: Any = None) -> Any:
        sql = str(statement)
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
            # Explained in a savepoint rolled back after it, so the statement then runs as it would have.
            savepoint = await self.conn.begin_nested()
            rows = await self.conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) {sql}"), params)
            self.plans.append("\n".join(r[0] for r in rows))
            await savepoint.rollback()
        return await self.conn.execute(statement, params)


def backend_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a PostgreSQL backend used so far (Linux /proc; clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def claim(
    conn: Any, app_id: str, targets: Sequence[tuple[str, int, str | None]], filters: dict[int, ListFilter]
) -> list[str]:
    """One page's claim as the campaign sends it (caps, reachability, list filter); the pending message ids."""
    claimed = await repo.claim_campaign_emails(
        conn,
        app_id=app_id,
        campaign_id="plan",
        run_key="v1-0",
        targets=targets,
        now=datetime.now(UTC),
        caps=repo.CampaignCaps(daily=5, total=10),
        list_filters=filters,
    )
    return [m for m, status in claimed.items() if status == "pending"]


async def main(endpoints: int, pages: int, with_list: bool) -> None:
    async with embedded_stack() as stack:
        state, db = stack.state, stack.state.db
        app_id, _ = await seed(state, endpoints)
        filters: dict[int, ListFilter] = {}
        if with_list:
            await seed_list(state, endpoints)
            async with db.connect() as conn:
                filters = {0: await message_ledger.load_list_filter(conn, LIST, "weekly")}
        async with db.begin() as conn:
            await conn.execute(text("ANALYZE"))
        step = max(1, endpoints // (pages * PAGE))
        cpu = {"claim": 0.0, "mark_sent": 0.0}
        messages = 0
        async with db.connect() as conn:
            pid = int(await conn.scalar(text("SELECT pg_backend_pid()")) or 0)
            await conn.commit()
            for page in range(pages):
                first = page * PAGE * step
                targets = [(f"ep{first + i * step + 1}", 0, None) for i in range(PAGE)]
                explaining = Explaining(conn) if page == pages - 1 else None
                async with conn.begin():
                    started = backend_cpu_seconds(pid)
                    pending = await claim(explaining or conn, app_id, targets, filters)
                    claimed = backend_cpu_seconds(pid)
                    await message_ledger.mark_sent(explaining or conn, pending)
                    if explaining is None:
                        cpu["claim"] += claimed - started
                        cpu["mark_sent"] += backend_cpu_seconds(pid) - claimed
                        messages += len(targets)
                if explaining is not None:
                    for plan in explaining.plans:
                        print(plan, "\n", flush=True)
        print(
            f"PostgreSQL backend CPU per message over {messages} messages: claim (locks, caps, reachability"
            f"{', list filter' if with_list else ''}, insert) {cpu['claim'] / messages * 1e6:.1f} µs, "
            f"mark_sent {cpu['mark_sent'] / messages * 1e6:.1f} µs",
            flush=True,
        )
        return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=200_000, help="endpoints seeded (default 200000)")
    parser.add_argument("--pages", type=int, default=20, help="pages of 500 claimed and sent (default 20)")
    parser.add_argument("--list", action="store_true", help="claim as list mail (contact list probe)")
    args = parser.parse_args()
    asyncio.run(main(args.endpoints, args.pages, args.list))
