"""SendMessages latency while a bulk email blast runs through the same process's transport, versus idle.

    python bench/send_messages_latency.py --background 5000 --calls 200

Starts its own PostgreSQL, an aiosmtpd relay (own process) that takes ``--relay-delay`` seconds per message,
and the API (uvicorn, in this process and event loop, with the process's send lanes; each lane is paced at
``--max-rate`` emails/s, standing for the relay's sending quota). Then it times ``--calls`` boto3
SendMessages calls (one EMAIL address each, over HTTP) three times:

1. idle;
2. while ``--background`` emails are sent on the *bulk* lane (the priority lane at work);
3. while the same blast runs on the *transactional* lane (what it would be like without lanes: both share one
   rate bucket and one connection pool).

The last line is machine-readable:

    idle_p50_ms=<f> idle_p99_ms=<f> bulk_p50_ms=<f> bulk_p99_ms=<f> shared_p50_ms=<f> shared_p99_ms=<f>
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import uvicorn
from botocore.config import Config

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.channels.email import OutgoingEmail
from sojourn.channels.priority import Lane
from sojourn.channels.senders import SendLanes
from sojourn.settings import Settings
from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import create_engine
from sojourn.store.migrate import upgrade_async

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.helpers import free_port
from tests.support.smtp_pressure import PressureSmtpSink


def run_relay(port_out: Any, count: Any, delay: float) -> None:
    """The SMTP relay, in its own process (so it does not compete with the API for this process's CPU)."""
    relay = PressureSmtpSink(delay=delay)

    def seen(_n: int) -> None:
        with count.get_lock():
            count.value += 1

    relay.on_message = seen
    relay.start()
    port_out.put(relay.port)
    time.sleep(3600)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup_app(client: Any) -> str:
    """An app with an email channel (boto3 blocks: run it off the event loop that serves the API)."""
    app_id: str = client.create_app(CreateApplicationRequest={"Name": "bench"})["ApplicationResponse"]["Id"]
    client.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "bench@sojourn.test", "Identity": "sojourn.test"},
    )
    return app_id


def timed_calls(client: Any, app_id: str, calls: int) -> list[float]:
    """``calls`` SendMessages requests, one after another; each one's latency in ms."""
    latencies = []
    for i in range(calls):
        address = f"txn{i}-{uuid.uuid4().hex[:6]}@example.com"
        started = time.perf_counter()
        response = client.send_messages(
            ApplicationId=app_id,
            MessageRequest={
                "Addresses": {address: {"ChannelType": "EMAIL"}},
                "MessageConfiguration": {
                    "EmailMessage": {
                        "SimpleEmail": {"Subject": {"Data": "code"}, "TextPart": {"Data": "1234"}}
                    }
                },
            },
        )
        latencies.append((time.perf_counter() - started) * 1000)
        status = response["MessageResponse"]["Result"][address]["DeliveryStatus"]
        if status != "SUCCESSFUL":
            raise RuntimeError(f"SendMessages answered {status}")
    return latencies


async def measure(
    client: Any, app_id: str, calls: int, lanes: SendLanes, blast_lane: Lane | None, background: int
) -> list[float]:
    """Latencies of ``calls`` SendMessages, with a blast of ``background`` emails on ``blast_lane`` running."""
    blast: asyncio.Task[Any] | None = None
    if blast_lane is not None:
        emails = [
            OutgoingEmail(
                f"bulk-{uuid.uuid4().hex}", "news@sojourn.test", f"r{i}@example.com", "news", None, "x"
            )
            for i in range(background)
        ]

        async def ignore(_ids: Sequence[str]) -> None:
            pass

        blast = asyncio.create_task(lanes.email(blast_lane).send_batch(emails, ignore))
        await asyncio.sleep(1.0)  # let the blast reach full speed
    try:
        latencies = await asyncio.to_thread(timed_calls, client, app_id, calls)
        running = blast is not None and not blast.done()
    finally:
        if blast is not None:
            blast.cancel()
            await asyncio.gather(blast, return_exceptions=True)
    if blast is not None and not running:
        print("warning: the blast ended before the calls did; raise --background", flush=True)
    return latencies


async def main(background: int, calls: int, relay_delay: float, max_rate: float) -> str:
    with tempfile.TemporaryDirectory(prefix="sojourn-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", port=free_port())
        pg.start()
        pg.ensure_database("sojourn")
        ports: Any = multiprocessing.Queue()
        relayed_count: Any = multiprocessing.Value("i", 0)
        relay = multiprocessing.Process(
            target=run_relay, args=(ports, relayed_count, relay_delay), daemon=True
        )
        relay.start()
        try:
            settings = Settings(
                database_url=pg.url("sojourn"),
                data_dir=Path(tmp),
                smtp_url=f"smtp://127.0.0.1:{ports.get(timeout=30)}",
                api_port=free_port(),
                smtp_max_rate=max_rate,
            )
            await upgrade_async(settings.database_url or "")
            state = AppState(db=create_engine(settings.database_url or "", pool_size=10), settings=settings)
            lanes = SendLanes(settings)
            state.use_send_lanes(lanes)
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings, state), host="127.0.0.1", port=settings.api_port, log_level="warning"
                )  # type: ignore[arg-type]
            )
            serving = asyncio.create_task(server.serve())
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no started event)
                await asyncio.sleep(0.05)
            client = boto3.client(
                "pinpoint",
                endpoint_url=f"http://127.0.0.1:{settings.api_port}",
                region_name="us-east-1",
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
                config=Config(retries={"max_attempts": 1}),
            )
            app_id = await asyncio.to_thread(setup_app, client)
            await asyncio.to_thread(timed_calls, client, app_id, 10)  # warm up connections and caches
            results: dict[str, list[float]] = {}
            for name, lane in (("idle", None), ("bulk", Lane.BULK), ("shared", Lane.TRANSACTIONAL)):
                before = relayed_count.value
                started = time.perf_counter()
                results[name] = await measure(client, app_id, calls, lanes, lane, background)
                elapsed = time.perf_counter() - started
                relayed = relayed_count.value - before
                print(
                    f"{name:>6}: p50 {statistics.median(results[name]):.1f} ms, p99 "
                    f"{percentile(results[name], 0.99):.1f} ms over {calls} calls; relay took {relayed} "
                    f"messages in {elapsed:.1f}s ({relayed / elapsed:.0f}/s)",
                    flush=True,
                )
            server.should_exit = True
            await serving
            await lanes.close()
            await state.db.dispose()
            return " ".join(
                f"{name}_p50_ms={statistics.median(v):.1f} {name}_p99_ms={percentile(v, 0.99):.1f}"
                for name, v in results.items()
            )
        finally:
            relay.terminate()
            pg.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--background", type=int, default=5000, help="emails in the blast (default 5000)")
    parser.add_argument(
        "--calls", type=int, default=200, help="timed SendMessages calls per run (default 200)"
    )
    parser.add_argument(
        "--relay-delay", type=float, default=0.005, help="seconds the relay takes per message (default 0.005)"
    )
    parser.add_argument(
        "--max-rate", type=float, default=300.0, help="SOJOURN_SMTP_MAX_RATE: emails/s per lane (default 300)"
    )
    args = parser.parse_args()
    print(asyncio.run(main(args.background, args.calls, args.relay_delay, args.max_rate)))
