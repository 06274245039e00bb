"""EVENT campaign latency on the embedded stack: PutEvents at a steady rate, time from each event to its send.

    python bench/event_campaign_latency.py --rate 2000 --seconds 10

Starts its own PostgreSQL and Temporal dev server, seeds endpoints in a segment, creates an EVENT campaign
(EventType ``buy``, null email transport: rendered, ledger written, nothing leaves the machine) run by a
``sojourn worker`` process, then calls the PutEvents handler in process at ``--rate`` events per second for
``--seconds``, each event from a different endpoint. Latency is the ledger's ``sent_at`` minus the event's
``received_at`` (both the database's clock). The last line is machine-readable:

    events=<int> sent=<int> p50_s=<float> p99_s=<float> max_s=<float>
"""

from __future__ import annotations

import argparse
import asyncio
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


async def fire(state: AppState, app_id: str, rate: int, seconds: float) -> int:
    """PutEvents in batches of BATCH at ``rate`` events/s; returns how many were sent."""
    interval = BATCH / rate
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        due = started + (sent // BATCH) * interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        now = datetime.now(UTC).isoformat()
        batch = {
            f"ep{sent + i + 1}": {
                "Endpoint": {},
                "Events": {f"buy{sent + i}": {"EventType": "buy", "Timestamp": now}},
            }
            for i in range(BATCH)
        }
        await call(state, "PutEvents", ApplicationId=app_id, EventsRequest={"BatchItem": batch})
        sent += BATCH
    return sent


async def main(rate: int, seconds: float) -> str:
    endpoints = int(rate * seconds) + BATCH
    async with embedded_stack() as stack:
        state, db = stack.state, stack.state.db
        print(f"seeding {endpoints} endpoints...", flush=True)
        app_id, segment_id = await seed(state, endpoints)
        stack.start_worker()
        now = datetime.now(UTC)
        created = await call(
            state,
            "CreateCampaign",
            ApplicationId=app_id,
            WriteCampaignRequest={
                "Name": "on-buy",
                "SegmentId": segment_id,
                "TemplateConfiguration": {"EmailTemplate": {"Name": "bench_welcome"}},
                "Schedule": {
                    "StartTime": (now - timedelta(minutes=1)).isoformat(),
                    "EndTime": (now + timedelta(hours=1)).isoformat(),
                    "Frequency": "EVENT",
                    "EventFilter": {
                        "FilterType": "ENDPOINT",
                        "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["buy"]}},
                    },
                },
            },
        )
        campaign_id = created["CampaignResponse"]["Id"]
        await asyncio.sleep(3)  # the worker starts and the campaign workflow begins waiting for events
        print(f"firing {rate} events/s for {seconds:.0f}s...", flush=True)
        events = await fire(state, app_id, rate, seconds)
        deadline = time.monotonic() + 120
        sent = 0
        while time.monotonic() < deadline:
            async with db.connect() as conn:
                sent = int(
                    await conn.scalar(
                        text("SELECT count(*) FROM messages WHERE campaign_id = :c AND status = 'sent'"),
                        {"c": campaign_id},
                    )
                    or 0
                )
            if sent >= events:
                break
            await asyncio.sleep(1)
        async with db.connect() as conn:
            latencies = [
                float(r[0])
                for r in await conn.execute(
                    text(
                        "SELECT extract(epoch FROM m.sent_at - e.received_at) FROM messages m "
                        "JOIN events e ON e.app_id = m.app_id AND e.endpoint_id = m.endpoint_id "
                        "AND e.event_type = 'buy' WHERE m.campaign_id = :c AND m.status = 'sent' ORDER BY 1"
                    ),
                    {"c": campaign_id},
                )
            ]
        if not latencies:
            return f"events={events} sent=0"
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"{events} events, {sent} sent; event to send p50 {p50:.2f}s p99 {p99:.2f}s max {latencies[-1]:.2f}s"
        )
        return f"events={events} sent={sent} p50_s={p50:.2f} p99_s={p99:.2f} max_s={latencies[-1]:.2f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=2000, help="PutEvents events per second (default 2000)")
    parser.add_argument("--seconds", type=float, default=10, help="how long to fire (default 10)")
    args = parser.parse_args()
    print(asyncio.run(main(args.rate, args.seconds)))
