"""Campaign blast on the embedded stack: one IMMEDIATE email campaign to N endpoints with the null transport.

    python bench/campaign_blast.py --endpoints 100000

Starts its own PostgreSQL and Temporal dev server in a temporary directory, seeds N email endpoints in one
segment, and runs a campaign with an A/B treatment, a 10% holdout and Daily/Total caps (so every claim counts
the caps and takes the per-endpoint locks) through a `sojourn worker` process with ``null://`` email (templates
are rendered, tracking links signed, the ledger written; nothing leaves the machine). The last line is
machine-readable:

    messages_per_s=<float> sent=<int> held_out=<int> peak_rss_mb=<int> processes=<int>

``--profile PATH`` runs the worker under cProfile (slower: compare its shares, not its rates) and prints the
functions that took the most CPU.

``--pg-stats`` loads ``pg_stat_statements`` and prints, after each blast, the statements that took PostgreSQL
the most time.

``--processes N`` runs ``sojourn worker`` with ``SOJOURN_WORKER_PROCESSES=N``: the run is sent in N parts by N
worker processes (peak RSS is the largest process's, CPU the sum).

With ``--compare-list`` the same run then blasts the same audience again as list mail: a contact list with a
topic (default OPT_IN) holding every endpoint's address, 5% of them opted out, and templates whose
``X-SES-LIST-MANAGEMENT-OPTIONS`` header names the list and topic (subscription filter plus List-Unsubscribe
headers on every message), then the plain blast once more (the list blast runs on a ledger the first blast grew:
the cost of list filtering is taken against the mean of the two plain blasts); the last line then also gives
``list_messages_per_s`` and the cost of list filtering, in throughput and in CPU (worker plus PostgreSQL CPU time
per endpoint, from /proc: on a shared machine the CPU figure is the steadier one). The database is vacuumed
before each blast (not measured), so a blast's CPU window holds its own work, not the vacuum of the one before.

With ``--probe`` the bench also serves the API over HTTP (uvicorn in this process, which stands for a separate
``sojourn api`` process) and, while the first blast runs, times one boto3 SendMessages call (one EMAIL address)
after another until the blast ends; the last line then also gives ``send_messages_p50_ms``/``_p99_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import uvicorn
from botocore.config import Config
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.engine import names
from sojourn.stack import free_local_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded import embedded_stack, top_statements
from journey_throughput import peak_rss_mb, seed
from send_messages_latency import percentile, setup_app, timed_calls
from tests.support.seed import call


def worker_cpu_seconds(pid: int) -> float:
    """User plus system CPU time the worker process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants, live or exited and reaped (Linux /proc): what the
    PostgreSQL server (postmaster, backends, WAL writer, autovacuum...) used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0  # a backend that just exited: its time is in its parent's reaped-children time
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_seconds(int(child)) for child in children)


def postgres_pid(database_url: str) -> int:
    """The postmaster of the embedded PostgreSQL serving ``database_url`` (by its port)."""
    port = str(make_url(database_url).port)
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = stat.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"postgres") and port.encode() in args:
            return int(stat.parent.name)
    raise LookupError(f"no postgres process listening on port {port}")


class CpuMeter:
    """CPU seconds the worker processes and the PostgreSQL server used, between marks."""

    def __init__(self, worker_pid: int, database_url: str) -> None:
        self.worker_pid = worker_pid
        self.postgres = postgres_pid(database_url)
        self.last = self.now()

    def now(self) -> tuple[float, float]:
        return (
            sum(worker_cpu_seconds(pid) for pid in worker_pids(self.worker_pid)),
            tree_cpu_seconds(self.postgres),
        )

    def lap(self) -> tuple[float, float]:
        """(worker, PostgreSQL) CPU seconds since the last lap."""
        now = self.now()
        worker, postgres = now[0] - self.last[0], now[1] - self.last[1]
        self.last = now
        return worker, postgres


async def vacuum_ledger(db: AsyncEngine) -> None:
    """VACUUM (ANALYZE) the ledger, so the next blast's CPU window does not also hold the vacuum of this one's rows."""
    async with db.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM (ANALYZE) messages"))


def worker_pids(pid: int) -> list[int]:
    """The worker process and the worker processes it started (``sojourn worker --processes N``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


LIST = "bench_list"


async def seed_list(state: AppState, endpoints: int) -> None:
    """A contact list with topic weekly (OPT_IN by default) holding every endpoint; 5% opted out of the topic."""
    from sojourn.api.handlers import HANDLERS
    from sojourn.api.server import RequestContext

    ctx = RequestContext(
        request_id=uuid.uuid4().hex, operation="CreateContactList", service="sesv2", state=state
    )
    await HANDLERS["sesv2:CreateContactList"](
        ctx,
        {
            "ContactListName": LIST,
            "Topics": [
                {"TopicName": "weekly", "DisplayName": "Weekly", "DefaultSubscriptionStatus": "OPT_IN"}
            ],
        },
    )
    async with state.db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (list_name, email_address, topic_preferences) "
                "SELECT :l, 'user' || g || '@bench.test', "
                "CASE WHEN g % 20 = 0 THEN '{\"weekly\": \"OPT_OUT\"}'::jsonb ELSE '{}'::jsonb END "
                "FROM generate_series(1, :n) g"
            ),
            {"l": LIST, "n": endpoints},
        )
        await conn.execute(text("ANALYZE contacts"))
    for name in ("bench_welcome", "bench_thanks"):
        stored = await call(state, "GetEmailTemplate", TemplateName=name)
        body = {
            k: v
            for k, v in stored["EmailTemplateResponse"].items()
            if k in ("Subject", "HtmlPart", "TextPart", "DefaultSubstitutions")
        }
        body["Headers"] = [
            {"Name": "X-SES-LIST-MANAGEMENT-OPTIONS", "Value": f"contactListName={LIST}; topicName=weekly"}
        ]
        await call(state, "CreateEmailTemplate", TemplateName=f"{name}_list", EmailTemplateRequest=body)


async def blast(state: AppState, client: Any, app_id: str, segment_id: str, suffix: str) -> tuple[str, float]:
    """Run one IMMEDIATE campaign to the segment; its id and how long it took."""
    started = time.monotonic()
    created = await call(
        state,
        "CreateCampaign",
        ApplicationId=app_id,
        WriteCampaignRequest={
            "Name": f"blast{suffix}",
            "SegmentId": segment_id,
            "Schedule": {"StartTime": "IMMEDIATE"},
            "TemplateConfiguration": {"EmailTemplate": {"Name": f"bench_welcome{suffix}"}},
            "HoldoutPercent": 10,
            "AdditionalTreatments": [
                {
                    "SizePercent": 30,
                    "TemplateConfiguration": {"EmailTemplate": {"Name": f"bench_thanks{suffix}"}},
                }
            ],
            "Limits": {"Daily": 5, "Total": 10},
        },
    )
    campaign_id = created["CampaignResponse"]["Id"]
    handle = client.get_workflow_handle(names.campaign_workflow_id(app_id, campaign_id))
    result = await handle.result()
    assert result == "COMPLETED", result
    return campaign_id, time.monotonic() - started


@asynccontextmanager
async def served_api(state: AppState) -> AsyncIterator[Any]:
    """The API over HTTP on a free port (uvicorn in this event loop); yields a boto3 pinpoint client for it."""
    settings = state.settings
    port = free_local_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, state), host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no started event)
        await asyncio.sleep(0.05)
    try:
        yield boto3.client(
            "pinpoint",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            config=Config(retries={"max_attempts": 1}),
        )
    finally:
        server.should_exit = True
        await serving


async def probe_during(client: Any, app_id: str, running: asyncio.Task[Any]) -> list[float]:
    """SendMessages latencies (ms), one call after another, until ``running`` is done."""
    latencies: list[float] = []
    while not running.done():
        latencies += await asyncio.to_thread(timed_calls, client, app_id, 1)
    return latencies


async def main(
    endpoints: int,
    compare_list: bool = False,
    processes: int = 1,
    probe: bool = False,
    profile: str | None = None,
    pg_stats: bool = False,
) -> str:
    async with embedded_stack(pg_stats) as stack:
        state, db, client = stack.state, stack.state.db, stack.client
        print(f"seeding {endpoints} endpoints...", flush=True)
        app_id, segment_id = await seed(state, endpoints)
        async with db.begin() as conn:
            await conn.execute(text("ANALYZE"))
        worker = stack.start_worker(profile, SOJOURN_WORKER_PROCESSES=str(processes))
        await asyncio.sleep(2)
        if compare_list:
            print(f"seeding a contact list of {endpoints} contacts...", flush=True)
            await seed_list(state, endpoints)
        async with db.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM (ANALYZE)"))
        print("running the campaign...", flush=True)
        meter = CpuMeter(worker.pid, stack.settings.database_url or "")
        latencies: list[float] = []
        if probe:
            async with served_api(state) as api:
                probe_app = await asyncio.to_thread(setup_app, api)
                await asyncio.to_thread(timed_calls, api, probe_app, 10)  # warm up
                first = asyncio.create_task(blast(state, client, app_id, segment_id, ""))
                latencies = await probe_during(api, probe_app, first)
                campaign_id, elapsed = await first
        else:
            campaign_id, elapsed = await blast(state, client, app_id, segment_id, "")
        async with db.connect() as conn:
            sent = int(
                await conn.scalar(
                    text("SELECT count(*) FROM messages WHERE campaign_id = :c AND status = 'sent'"),
                    {"c": campaign_id},
                )
                or 0
            )
            metrics = await conn.scalar(
                text("SELECT metrics FROM campaign_runs WHERE campaign_id = :c AND treatment_id = 0"),
                {"c": campaign_id},
            )
        held_out = int((metrics or {}).get("HOLDOUT", 0))
        plain_cpu = meter.lap()
        pids = worker_pids(worker.pid)
        rss = max(peak_rss_mb(pid) for pid in pids)
        cpu = sum(worker_cpu_seconds(pid) for pid in pids)
        rate = sent / elapsed
        print(
            f"campaign blast: {sent} sent ({held_out} held out) of {endpoints} endpoints in {elapsed:.1f}s "
            f"= {rate:.0f} messages/s; {len(pids)} worker process(es), peak RSS {rss} MB (largest), "
            f"worker CPU {cpu:.1f}s ({cpu / elapsed:.0%} of one core); per endpoint: worker "
            f"{plain_cpu[0] / endpoints * 1e6:.0f} µs, PostgreSQL {plain_cpu[1] / endpoints * 1e6:.0f} µs of CPU",
            flush=True,
        )
        line = (
            f"messages_per_s={rate:.1f} sent={sent} held_out={held_out} peak_rss_mb={rss} processes={len(pids)} "
            f"worker_cpu_us_per_endpoint={plain_cpu[0] / endpoints * 1e6:.0f} "
            f"postgres_cpu_us_per_endpoint={plain_cpu[1] / endpoints * 1e6:.0f}"
        )
        if probe:
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            print(
                f"SendMessages during the blast: {len(latencies)} calls, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"max {max(latencies):.1f} ms",
                flush=True,
            )
            line += f" send_messages_p50_ms={p50:.1f} send_messages_p99_ms={p99:.1f}"
        if pg_stats:
            print(f"PostgreSQL, plain blast:\n{await top_statements(db)}", flush=True)
            async with db.begin() as conn:
                await conn.execute(text("SELECT pg_stat_statements_reset()"))
        if compare_list:
            # The list blast runs second, on a ledger that the first blast grew; a second plain blast after it
            # shows how much of the difference is that order (the cost is taken against the mean of both).
            print("running the same blast as list mail...", flush=True)
            await vacuum_ledger(db)
            meter.lap()
            list_campaign, list_elapsed = await blast(state, client, app_id, segment_id, "_list")
            list_cpu = meter.lap()
            async with db.connect() as conn:
                counts: dict[str, int] = dict(
                    (
                        await conn.execute(
                            text(
                                "SELECT split_part(COALESCE(status_message, status), ':', 1), count(*) "
                                "FROM messages WHERE campaign_id = :c GROUP BY 1"
                            ),
                            {"c": list_campaign},
                        )
                    ).all()
                )
            if pg_stats:
                print(f"PostgreSQL, list blast:\n{await top_statements(db)}", flush=True)
            print("running the plain blast again...", flush=True)
            await vacuum_ledger(db)
            meter.lap()
            _, again = await blast(state, client, app_id, segment_id, "")
            again_cpu = meter.lap()
            list_rate = endpoints / list_elapsed
            plain_rate = endpoints / ((elapsed + again) / 2)
            # CPU per endpoint (worker plus PostgreSQL) weighs other load on the machine far less than rates.
            plain_us = (plain_cpu[0] + plain_cpu[1] + again_cpu[0] + again_cpu[1]) / 2 / endpoints * 1e6
            list_us = (list_cpu[0] + list_cpu[1]) / endpoints * 1e6
            print(
                f"list blast: {counts} in {list_elapsed:.1f}s; endpoints/s {list_rate:.0f} vs {plain_rate:.0f} "
                f"plain (first {endpoints / elapsed:.0f}, again {endpoints / again:.0f}); CPU per endpoint "
                f"(worker + PostgreSQL): list {list_cpu[0] / endpoints * 1e6:.0f} + "
                f"{list_cpu[1] / endpoints * 1e6:.0f} µs, plain {plain_cpu[0] / endpoints * 1e6:.0f} + "
                f"{plain_cpu[1] / endpoints * 1e6:.0f} µs, again {again_cpu[0] / endpoints * 1e6:.0f} + "
                f"{again_cpu[1] / endpoints * 1e6:.0f} µs",
                flush=True,
            )
            line += (
                f" list_messages_per_s={int(counts.get('sent', 0)) / list_elapsed:.1f} "
                f"plain_again_s={again:.1f} list_filter_cost={1 - list_rate / plain_rate:.1%} "
                f"list_filter_cpu_cost={list_us / plain_us - 1:.1%}"
            )
        return line


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--endpoints", type=int, default=100_000, help="endpoints in the segment (default 100000)"
    )
    parser.add_argument(
        "--compare-list",
        action="store_true",
        help="also blast the audience as list mail to a topic, same run",
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes (SOJOURN_WORKER_PROCESSES, default 1)"
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="time boto3 SendMessages calls over HTTP while the first blast runs",
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="run the worker under cProfile, write its stats to PATH and print the top functions",
    )
    parser.add_argument(
        "--pg-stats",
        action="store_true",
        help="load pg_stat_statements and print the statements that took PostgreSQL longest, per blast",
    )
    args = parser.parse_args()
    print(
        asyncio.run(
            main(args.endpoints, args.compare_list, args.processes, args.probe, args.profile, args.pg_stats)
        )
    )
    if args.profile:
        import pstats

        pstats.Stats(args.profile).sort_stats("tottime").print_stats(40)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(60)
