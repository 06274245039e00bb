"""Segment evaluation over N endpoints: the time to count a dimension segment's members in PostgreSQL.

    python bench/segment_eval.py --endpoints 1000000

Starts its own PostgreSQL, seeds N endpoints of one app (bulk SQL) with a platform, a country, a plan
attribute, a numeric metric, a user attribute, a last-active time and a channel (then VACUUM ANALYZE, as
autovacuum would after a bulk load; the seeding also works on code from before migration 0610ing, so older code
can be measured with the same script through ``PYTHONPATH``), then creates one segment per
kind of dimension through the CreateSegment handler and times ``SELECT count(*)`` over the SQL condition the
send paths use (``load_segment_clause`` + ``audience_clause``), three times each (the best and the median are
reported), plus the first keyset page of 1,000 members in id order (what enrollment and campaign runs read).
The last line is machine-readable: ``<segment>_ms=<median count ms> ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from sojourn.api.state import AppState
from sojourn.settings import Settings
from sojourn.stack import EmbeddedPostgres, free_local_port
from sojourn.store.db import create_engine
from sojourn.store.migrate import upgrade_async
from sojourn.store.segment_sql import audience_clause
from sojourn.store.segments_repo import load_segment_clause
from sojourn.store.tables import endpoints

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.seed import call

SEGMENTS: dict[str, dict[str, Any]] = {
    "platform": {"Demographic": {"Platform": {"DimensionType": "INCLUSIVE", "Values": ["ios"]}}},
    "country": {"Location": {"Country": {"DimensionType": "INCLUSIVE", "Values": ["FR", "DE"]}}},
    "attribute": {"Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["pro"]}}},
    "attribute_contains": {"Attributes": {"plan": {"AttributeType": "CONTAINS", "Values": ["ent"]}}},
    "metric": {"Metrics": {"score": {"ComparisonOperator": "GREATER_THAN", "Value": 90}}},
    "user_attribute": {"UserAttributes": {"tier": {"AttributeType": "INCLUSIVE", "Values": ["gold"]}}},
    "recency": {"Behavior": {"Recency": {"Duration": "DAY_7", "RecencyType": "ACTIVE"}}},
    "channel": {"Demographic": {"Channel": {"DimensionType": "INCLUSIVE", "Values": ["SMS"]}}},
    "combined": {
        "Demographic": {"Platform": {"DimensionType": "INCLUSIVE", "Values": ["android"]}},
        "Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["free"]}},
        "Metrics": {"score": {"ComparisonOperator": "LESS_THAN", "Value": 50}},
    },
}


ACTIVE_AGO = "now() - make_interval(days => g % 30)"


async def seed(state: AppState, n: int) -> str:
    """An app with ``n`` endpoints whose dimensions vary (bulk SQL: seeding is not what is measured)."""
    app_id: str = (await call(state, "CreateApp", CreateApplicationRequest={"Name": "segments"}))[
        "ApplicationResponse"
    ]["Id"]
    async with state.db.begin() as conn:
        # Before migration 0610ing last activity was a column of endpoints: the same bench runs on older code.
        old_schema = not await conn.scalar(text("SELECT to_regclass('endpoint_activity') IS NOT NULL"))
        activity_sql = {
            "activity_column": ", last_active_at" if old_schema else "",
            "activity_value": f", {ACTIVE_AGO}" if old_schema else "",
        }
        await conn.execute(
            text(
                """
                INSERT INTO endpoints (app_id, id, channel_type, address, attributes, metrics, demographic,
                                       location, user_id, user_attributes, cohort_id{activity_column})
                SELECT :a, 'ep' || g,
                       CASE WHEN g % 10 = 0 THEN 'SMS' ELSE 'EMAIL' END,
                       'user' || g || '@bench.test',
                       jsonb_build_object('plan', jsonb_build_array((ARRAY['free','pro','enterprise'])[g % 3 + 1])),
                       jsonb_build_object('score', g % 100),
                       jsonb_build_object('Platform', (ARRAY['ios','android','web','windows'])[g % 4 + 1]),
                       jsonb_build_object('Country', (ARRAY['US','FR','DE','GB','JP','BR','IN','CA'])[g % 8 + 1]),
                       'u' || (g / 2),
                       jsonb_build_object('tier', jsonb_build_array((ARRAY['gold','silver','bronze','none'])[g % 4 + 1])),
                       g % 100{activity_value}
                FROM generate_series(1, :n) g
                """.format(**activity_sql)
            ),
            {"a": app_id, "n": n},
        )
        if not old_schema:
            # Last activity lives in its own table (what PutEvents writes): one endpoint in 30 per day of age.
            await conn.execute(
                text(
                    "INSERT INTO endpoint_activity (app_id, endpoint_id, last_active_at) "
                    f"SELECT :a, 'ep' || g, {ACTIVE_AGO} FROM generate_series(1, :n) g"
                ),
                {"a": app_id, "n": n},
            )
    async with state.db.connect() as conn:
        # What autovacuum does soon after a bulk load: statistics and the visibility map (index-only scans).
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE endpoints"))
        if not old_schema:
            await conn.execute(text("VACUUM ANALYZE endpoint_activity"))
    return app_id


async def timed(state: AppState, app_id: str, segment_id: str) -> tuple[list[float], float, int]:
    """Three timed counts (ms) of the segment's members, one timed first page of 1,000, and the count."""
    async with state.db.connect() as conn:
        clause = await load_segment_clause(conn, app_id, segment_id, now=datetime.now(UTC))
        where = audience_clause(app_id, clause)
        counts: list[float] = []
        members = 0
        for _ in range(3):
            started = time.perf_counter()
            members = int(await conn.scalar(select(func.count()).select_from(endpoints).where(where)) or 0)
            counts.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await conn.execute(select(endpoints.c.id).where(where).order_by(endpoints.c.id).limit(1000))
        page = (time.perf_counter() - started) * 1000
    return counts, page, members


async def main(n: int) -> str:
    with tempfile.TemporaryDirectory(prefix="sojourn-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", port=free_local_port())
        pg.start()
        pg.ensure_database("sojourn")
        try:
            settings = Settings(database_url=pg.url("sojourn"), data_dir=Path(tmp))
            await upgrade_async(settings.database_url or "")
            state = AppState(db=create_engine(settings.database_url or "", pool_size=4), settings=settings)
            print(f"seeding {n} endpoints...", flush=True)
            started = time.perf_counter()
            app_id = await seed(state, n)
            print(f"seeded in {time.perf_counter() - started:.1f}s", flush=True)
            line = []
            for name, dims in SEGMENTS.items():
                created = await call(
                    state,
                    "CreateSegment",
                    ApplicationId=app_id,
                    WriteSegmentRequest={"Name": name, "Dimensions": dims},
                )
                counts, page, members = await timed(state, app_id, created["SegmentResponse"]["Id"])
                print(
                    f"{name:>18}: {members:>8} members; count best {min(counts):7.1f} ms, median "
                    f"{statistics.median(counts):7.1f} ms; first page of 1,000 {page:6.1f} ms",
                    flush=True,
                )
                line.append(f"{name}_ms={statistics.median(counts):.1f}")
            await state.db.dispose()
            return " ".join(line)
        finally:
            pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=1_000_000, help="seeded endpoints (default 1000000)")
    args = parser.parse_args()
    print(asyncio.run(main(args.endpoints)))
