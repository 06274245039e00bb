"""PutEvents ingest on the embedded stack: events/s sustained, nothing lost, and event-triggered journey entry.

    python bench/put_events_ingest.py --endpoints 100000 --seconds 20 --producers 4

Starts its own PostgreSQL and Temporal dev server, seeds endpoints, creates an event-triggered journey (entry on
EventType ``signup``, then an EMAIL with the null transport) run by a ``sojourn worker`` process, and then
``--producers`` concurrent callers of the PutEvents handler (in this process, no HTTP: what is measured is the
server's work, from the parsed request to the committed transaction) send batches of 100 events as fast as they
are answered for ``--seconds``: 99% ``page_view`` on random endpoints, 1% ``signup`` from distinct endpoints.
Afterwards it checks that every acknowledged event is stored and measures, for each signup, the time from the
event's ``received_at`` to the claim of the journey's first email (entry, cohort start and the step's claim).
It also reports CPU time per acknowledged event, in this process (the handler: parsing, validation, SQL
building, driver) and in PostgreSQL (all server processes, read from /proc on Linux), which is steadier than
events/s on a shared machine. ``--profile`` runs the producers under cProfile and prints the top functions.
To compare with older code in the same session, run this script twice, once with ``PYTHONPATH`` pointing at an
exported older ``src`` tree (see docs/benchmarks.md). The last line is machine-readable:

    events_per_s=<float> events=<int> stored=<int> signups=<int> entered=<int> entry_p50_s=<float> entry_p99_s=<float>
    app_cpu_us_per_event=<float> pg_cpu_us_per_event=<float>
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from sojourn.api.state import AppState

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded import embedded_stack
from journey_throughput import seed
from tests.support.seed import call

BATCH = 100
SIGNUP_EVERY = 100  # one event in a hundred is a signup


def signup_journey() -> dict[str, object]:
    """Enter on ``signup``, send the welcome email."""
    now = datetime.now(UTC)
    return {
        "Name": "on-signup",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {
            "EventStartCondition": {
                "EventFilter": {
                    "FilterType": "ENDPOINT",
                    "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["signup"]}},
                }
            }
        },
        "Schedule": {
            "StartTime": (now - timedelta(minutes=1)).isoformat(),
            "EndTime": (now + timedelta(hours=2)).isoformat(),
        },
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "bench_welcome"}}},
    }


async def produce(
    state: AppState, app_id: str, endpoints: int, deadline: float, signups: list[int], producer: int
) -> int:
    """Send batches until ``deadline``; returns how many events were acknowledged."""
    rng = random.Random(producer)
    sent = 0
    while time.monotonic() < deadline:
        now = datetime.now(UTC).isoformat()
        items: dict[str, dict[str, object]] = {}
        for i in range(BATCH):
            if i % SIGNUP_EVERY == 0 and signups:
                endpoint = f"ep{signups.pop()}"
                event_type = "signup"
            else:
                endpoint = f"ep{rng.randint(1, endpoints)}"
                event_type = "page_view"
            entry = items.setdefault(endpoint, {"Endpoint": {}, "Events": {}})
            events = entry["Events"]
            assert isinstance(events, dict)
            events[f"p{producer}-{sent + i}"] = {"EventType": event_type, "Timestamp": now}
        answer = await call(state, "PutEvents", ApplicationId=app_id, EventsRequest={"BatchItem": items})
        results = answer["EventsResponse"]["Results"]
        accepted = sum(
            1
            for result in results.values()
            for event in result.get("EventsItemResponse", {}).values()
            if event.get("StatusCode") == 202
        )
        if accepted != BATCH:
            raise RuntimeError(f"PutEvents accepted {accepted} of {BATCH} events: {results}")
        sent += accepted
    return sent


def server_cpu_seconds(data_directory: str) -> float:
    """User + system CPU seconds of the PostgreSQL postmaster and its children (Linux /proc), or NaN."""
    try:
        postmaster = int(Path(data_directory, "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # Fields after the command name: state ppid ... utime(14) stime(15), counted from 1.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == postmaster or int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick
    except (OSError, ValueError):
        return float("nan")


async def main(endpoints: int, seconds: float, producers: int, profile: bool) -> str:
    async with embedded_stack() as stack:
        state, db = stack.state, stack.state.db
        print(f"seeding {endpoints} endpoints...", flush=True)
        app_id, _segment = await seed(state, endpoints)
        stack.start_worker()
        created = await call(
            state, "CreateJourney", ApplicationId=app_id, WriteJourneyRequest=signup_journey()
        )
        journey_id = created["JourneyResponse"]["Id"]
        await asyncio.sleep(3)  # the worker starts and the journey begins taking entrants
        # Distinct signup endpoints, more than any run can use.
        signups = random.Random(0).sample(range(1, endpoints + 1), min(endpoints, 200_000))
        async with db.connect() as conn:
            data_directory = str(await conn.scalar(text("SHOW data_directory")))
        print(f"{producers} producers for {seconds:.0f}s...", flush=True)
        profiler = cProfile.Profile() if profile else None
        cpu0, pg_cpu0 = time.process_time(), server_cpu_seconds(data_directory)
        started = time.monotonic()
        if profiler is not None:
            profiler.enable()
        counts = await asyncio.gather(
            *(produce(state, app_id, endpoints, started + seconds, signups, p) for p in range(producers))
        )
        if profiler is not None:
            profiler.disable()
        elapsed = time.monotonic() - started
        app_cpu, pg_cpu = time.process_time() - cpu0, server_cpu_seconds(data_directory) - pg_cpu0
        events = sum(counts)
        app_us, pg_us = app_cpu / events * 1e6, pg_cpu / events * 1e6
        print(f"CPU per event: {app_us:.1f} us in this process, {pg_us:.1f} us in PostgreSQL", flush=True)
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        async with db.connect() as conn:
            stored = int(
                await conn.scalar(text("SELECT count(*) FROM events WHERE app_id = :a"), {"a": app_id}) or 0
            )
            signed_up = int(
                await conn.scalar(
                    text("SELECT count(*) FROM events WHERE app_id = :a AND event_type = 'signup'"),
                    {"a": app_id},
                )
                or 0
            )
        rate = events / elapsed
        print(f"{events} events acknowledged in {elapsed:.1f}s = {rate:.0f}/s; {stored} stored", flush=True)
        deadline = time.monotonic() + 180
        entered = 0
        while time.monotonic() < deadline:
            async with db.connect() as conn:
                entered = int(
                    await conn.scalar(
                        text("SELECT count(*) FROM messages WHERE journey_id = :j"), {"j": journey_id}
                    )
                    or 0
                )
            if entered >= signed_up:
                break
            await asyncio.sleep(1)
        async with db.connect() as conn:
            latencies = [
                float(r[0])
                for r in await conn.execute(
                    text(
                        "SELECT extract(epoch FROM m.created_at - e.received_at) FROM messages m "
                        "JOIN events e ON e.app_id = m.app_id AND e.endpoint_id = m.endpoint_id "
                        "AND e.event_type = 'signup' WHERE m.journey_id = :j ORDER BY 1"
                    ),
                    {"j": journey_id},
                )
            ]
        p50 = latencies[len(latencies) // 2] if latencies else float("nan")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
        print(
            f"{signed_up} signups, {entered} entered the journey; signup -> first email claimed p50 {p50:.2f}s "
            f"p99 {p99:.2f}s",
            flush=True,
        )
        return (
            f"events_per_s={rate:.1f} events={events} stored={stored} signups={signed_up} entered={entered} "
            f"entry_p50_s={p50:.2f} entry_p99_s={p99:.2f} app_cpu_us_per_event={app_us:.1f} "
            f"pg_cpu_us_per_event={pg_us:.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=100_000, help="seeded endpoints (default 100000)")
    parser.add_argument("--seconds", type=float, default=20, help="how long to send (default 20)")
    parser.add_argument("--producers", type=int, default=4, help="concurrent PutEvents callers (default 4)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the producers, print the top functions"
    )
    args = parser.parse_args()
    print(asyncio.run(main(args.endpoints, args.seconds, args.producers, args.profile)))
