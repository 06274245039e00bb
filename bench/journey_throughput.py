"""Journey throughput on the embedded stack: cohort workflows versus one workflow per participant.

    python bench/journey_throughput.py --endpoints 100000
    python bench/journey_throughput.py --endpoints 100000 --scenario full
    python bench/journey_throughput.py --in-flight 1000000

``--scenario full`` runs a journey with every activity type (EMAIL, RandomSplit, Holdout, MultiCondition, Wait,
ConditionalSplit on opens, a wait-for-event split released by PutEvents, SMS and PUSH through file providers, a
CUSTOM webhook and a ContactCenter hand-off to a local HTTP server), quiet time evaluated in each participant's
zone (24 zones, a window that drops the zones it covers), a per-journey DailyCap and the project's TimeframeCap
(shared caps: endpoints locked per claim). Its participants are users: every email endpoint has a user id, and
one user in ten also has an SMS endpoint, another one in ten a GCM (push) endpoint. ``--in-flight N`` enrolls N
participants into EMAIL -> Wait P1D with every cohort running at once and reports the worker's memory with all
of them in flight (no baseline).

Starts its own PostgreSQL and Temporal dev server (SQLite, WAL) in a temporary directory, seeds N email
endpoints in one segment, runs EMAIL -> Wait -> ConditionalSplit on open -> EMAIL with the null email transport
(the ledger is still written) while 20% of recipients "open" (``_email.open`` events tied to their message), and
then runs the same journey written as one plain Temporal workflow per participant on a sample (the baseline).
The last line is machine-readable:

    participants_per_s=<float> history_events_per_participant=<float> baseline_ratio=<float> peak_rss_mb=<int>

``--scenario full`` also prints where a wait-for-event release's time goes (phases read from the histories of
30 cohort workflows) and the activity-slot time per kind of step, and reports the release latency twice:
PutEvents to the thanks email's claim (``event_release_p50_s``) and to its send (``event_release_sent_p50_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from sojourn.api.state import AppState
from sojourn.engine import names
from sojourn.engine.client import connect
from sojourn.settings import Settings
from sojourn.stack import EmbeddedPostgres, TemporalDevServer, port_is_free
from sojourn.store.db import create_engine
from sojourn.store.migrate import upgrade_async

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.seed import call, ensure_template, onboarding

WAIT = "PT5S"
EVALUATION_WAIT = "PT3S"
OPEN_SHARE = 20


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert port_is_free(port)
    return port


def full_journey_request(
    segment_id: str, quiet: tuple[str, str], purchase_wait: int = 5, hook_url: str = "http://127.0.0.1:9"
) -> dict[str, Any]:
    """Every journey activity type, quiet time and caps (see the module docstring)."""
    opened = {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["_email.open"]}}
    clicked = {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["_email.click"]}}
    purchase = {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase"]}}
    return {
        "Name": "bench_full",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "QuietTime": {"Start": quiet[0], "End": quiet[1]},
        "WaitForQuietTime": False,
        "Limits": {"DailyCap": 3},
        "JourneyChannelSettings": {"ConnectCampaignArn": f"{hook_url}/contact-center"},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "bench_welcome", "NextActivity": "pick"}},
            "pick": {
                "RandomSplit": {
                    "Branches": [
                        {"Percentage": 50, "NextActivity": "control"},
                        {"Percentage": 50, "NextActivity": "pause"},
                    ]
                }
            },
            "control": {"Holdout": {"Percentage": 10, "NextActivity": "engaged"}},
            "engaged": {
                "MultiCondition": {
                    "Branches": [
                        {
                            "Condition": {
                                "EventCondition": {"MessageActivity": "welcome", "Dimensions": clicked}
                            },
                            "NextActivity": "await",
                        },
                        {
                            "Condition": {
                                "EventCondition": {"MessageActivity": "welcome", "Dimensions": opened}
                            },
                            "NextActivity": "await",
                        },
                    ],
                    "DefaultActivity": "await",
                    "EvaluationWaitTime": {"WaitFor": EVALUATION_WAIT},
                }
            },
            "pause": {"Wait": {"WaitTime": {"WaitFor": WAIT}, "NextActivity": "opened"}},
            "opened": {
                "ConditionalSplit": {
                    "Condition": {
                        "Conditions": [
                            {"EventCondition": {"MessageActivity": "welcome", "Dimensions": opened}}
                        ]
                    },
                    "EvaluationWaitTime": {"WaitFor": EVALUATION_WAIT},
                    "TrueActivity": "thanks",
                    "FalseActivity": "await",
                }
            },
            "await": {
                "ConditionalSplit": {
                    "Condition": {"Conditions": [{"EventCondition": {"Dimensions": purchase}}]},
                    "EvaluationWaitTime": {"WaitFor": f"PT{purchase_wait}S"},
                    "TrueActivity": "thanks",
                    "FalseActivity": "nudge",
                }
            },
            "thanks": {"EMAIL": {"TemplateName": "bench_thanks", "NextActivity": "thankssms"}},
            "thankssms": {"SMS": {"TemplateName": "bench_sms", "NextActivity": "crm"}},
            "crm": {"CUSTOM": {"DeliveryUri": f"{hook_url}/crm", "EndpointTypes": ["EMAIL", "SMS", "GCM"]}},
            "nudge": {"EMAIL": {"TemplateName": "bench_nudge", "NextActivity": "nudgepush"}},
            "nudgepush": {"PUSH": {"TemplateName": "bench_push", "NextActivity": "handoff"}},
            "handoff": {"ContactCenter": {}},
        },
    }


async def add_channels(state: AppState, app_id: str) -> None:
    """Users, SMS and push endpoints, the SMS channel and the SMS and push templates of the full scenario."""
    await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
    await call(
        state,
        "CreateSmsTemplate",
        TemplateName="bench_sms",
        SMSTemplateRequest={"Body": "Thanks {{Address}}"},
    )
    await call(
        state,
        "CreatePushTemplate",
        TemplateName="bench_push",
        PushNotificationTemplateRequest={"Default": {"Title": "Still there?", "Body": "Come back"}},
    )
    async with state.db.begin() as conn:
        await conn.execute(
            text("UPDATE endpoints SET user_id = 'u' || substr(id, 3) WHERE app_id = :a"), {"a": app_id}
        )
        # One user in ten also has a phone, another one in ten a GCM device, in the segment and the user's zone.
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, attributes, demographic, user_id, "
                "cohort_id) SELECT app_id, kind || substr(id, 3), CASE kind WHEN 'sms' THEN 'SMS' ELSE 'GCM' END, "
                "CASE kind WHEN 'sms' THEN '+1206555' || lpad(substr(id, 3), 4, '0') ELSE 'token-' || id END, "
                "attributes, demographic, user_id, cohort_id FROM endpoints, "
                "LATERAL (SELECT CASE substr(id, 3)::int % 10 WHEN 0 THEN 'sms' WHEN 5 THEN 'gcm' END AS kind) k "
                "WHERE app_id = :a AND kind IS NOT NULL"
            ),
            {"a": app_id},
        )


class HookServer:
    """A local HTTP server answering 200 to every POST: the CUSTOM webhook and the contact center."""

    def __init__(self) -> None:
        import http.server
        import threading

        calls = self.calls = [0]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                calls[0] += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def quiet_window_now() -> tuple[str, str]:
    """Quiet time from this UTC hour for three hours: in 24 zones, three zones are in it (their mail is dropped)."""
    now = datetime.now(UTC)
    return f"{now.hour:02d}:00", f"{(now.hour + 3) % 24:02d}:00"


def journey_request(segment_id: str) -> dict[str, Any]:
    return onboarding(
        segment_id,
        name="bench",
        wait=WAIT,
        evaluation_wait=EVALUATION_WAIT,
        templates=("bench_welcome", "bench_thanks", "bench_nudge"),
    )


async def seed(state: AppState, n: int, *, zones: bool = False) -> tuple[str, str]:
    """An app with N endpoints in a segment (bulk SQL: seeding is not what is measured)."""
    app_id = (await call(state, "CreateApp", CreateApplicationRequest={"Name": "bench"}))[
        "ApplicationResponse"
    ]["Id"]
    await call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "bench@sojourn.test", "Identity": "sojourn.test"},
    )
    for name in ("bench_welcome", "bench_thanks", "bench_nudge"):
        await ensure_template(state, name)
    async with state.db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, attributes, user_attributes, cohort_id) "
                "SELECT :a, 'ep' || g, 'EMAIL', 'user' || g || '@bench.test', '{\"group\": [\"bench\"]}'::jsonb, "
                "jsonb_build_object('FirstName', jsonb_build_array('User' || g)), g % 100 FROM generate_series(1, :n) g"
            ),
            {"a": app_id, "n": n},
        )
        if zones:
            # 24 whole-hour zones, round robin: Etc/GMT-11 ... Etc/GMT+12 (POSIX signs are inverted).
            await conn.execute(
                text(
                    "UPDATE endpoints SET demographic = jsonb_build_object('Timezone', "
                    "CASE WHEN (substr(id, 3)::int % 24) - 12 = 0 THEN 'Etc/UTC' "
                    "WHEN (substr(id, 3)::int % 24) - 12 > 0 THEN 'Etc/GMT+' || ((substr(id, 3)::int % 24) - 12) "
                    "ELSE 'Etc/GMT' || ((substr(id, 3)::int % 24) - 12) END) WHERE app_id = :a"
                ),
                {"a": app_id},
            )
    segment = await call(
        state,
        "CreateSegment",
        ApplicationId=app_id,
        WriteSegmentRequest={
            "Name": "bench",
            "Dimensions": {"Attributes": {"group": {"AttributeType": "INCLUSIVE", "Values": ["bench"]}}},
        },
    )
    return app_id, segment["SegmentResponse"]["Id"]


async def simulate_opens(db: AsyncEngine, journey_id: str, stop: asyncio.Event) -> None:
    """20% of sent welcome emails get an ``_email.open`` event tied to their message, soon after sending."""
    while not stop.is_set():
        async with db.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO events (app_id, endpoint_id, event_id, event_type, occurred_at, message_id) "
                    "SELECT m.app_id, m.endpoint_id, 'open-' || m.message_id, '_email.open', now(), m.message_id "
                    "FROM messages m WHERE m.journey_id = :j AND m.activity_id = 'welcome' AND m.status = 'sent' "
                    "AND ('x' || substr(m.message_id, 1, 8))::bit(32)::bigint % 100 < :share "
                    "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.message_id)"
                ),
                {"j": journey_id, "share": OPEN_SHARE},
            )
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def simulate_purchases(state: AppState, app_id: str, journey_id: str, stop: asyncio.Event) -> None:
    """10% of the participants waiting at the wait-for-event split buy: PutEvents, the path a shop would take."""
    sent: set[str] = set()
    while not stop.is_set():
        async with state.db.connect() as conn:
            waiting = [
                r[0]
                for r in await conn.execute(
                    text(
                        "SELECT endpoint_id FROM participants WHERE journey_id = :j AND status = 'active' "
                        "AND position = 'await' AND ('x' || substr(md5(endpoint_id), 1, 8))::bit(32)::bigint % 10 = 0"
                    ),
                    {"j": journey_id},
                )
                if r[0] not in sent
            ]
        for start in range(0, len(waiting), 100):
            batch = waiting[start : start + 100]
            now = datetime.now(UTC).isoformat()
            await call(
                state,
                "PutEvents",
                ApplicationId=app_id,
                EventsRequest={
                    "BatchItem": {
                        e: {
                            "Endpoint": {},
                            "Events": {f"buy-{e}": {"EventType": "purchase", "Timestamp": now}},
                        }
                        for e in batch
                    }
                },
            )
            sent.update(batch)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def purchase_latency(
    db: AsyncEngine, journey_id: str, purchase_wait: int, until: str = "created_at"
) -> tuple[float, float, int]:
    """p50 and p99 seconds from a purchase's PutEvents (its received_at) to the claim of the buyer's thanks
    email (the wait-for-event split released them), and how many were released before the timeout.

    ``until="sent_at"`` measures to the thanks email's send instead (the database clock when the ledger
    recorded it sent): the claim time is the journey clock the step was scheduled with, which does not
    include the step's own wait for an activity slot.

    Buyers buy within about a second of arriving at the split, so a thanks claimed more than
    ``purchase_wait - 1`` seconds after the purchase came from the split's timeout, not from the release; with
    the default 5 s wait that cut censors slow releases, which ``--purchase-wait 30`` avoids.
    """
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT extract(epoch FROM m.{until} - e.received_at) FROM events e "
                    "JOIN messages m ON m.journey_id = :j AND m.endpoint_id = e.endpoint_id AND m.activity_id = 'thanks' "
                    f"WHERE e.event_type = 'purchase' AND m.{until} >= e.received_at "
                    f"AND m.{until} < e.received_at + make_interval(secs => :window) ORDER BY 1"
                ),
                {"j": journey_id, "window": purchase_wait - 1},
            )
        ).all()
    values = [float(r[0]) for r in rows]
    if not values:
        return float("nan"), float("nan"), 0
    return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))], len(values)


async def history_events(client: Client, app_id: str, journey_id: str) -> int:
    total = 0
    async for wf in client.list_workflows(f"AppId = '{app_id}' AND JourneyId = '{journey_id}'"):
        total += (
            await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
        ).raw_description.workflow_execution_info.history_length
    return total


def _phase_stats(values: list[float]) -> str:
    if not values:
        return "n=0"
    values = sorted(values)
    return (
        f"n={len(values)} p50={values[len(values) // 2]:.2f}s "
        f"p90={values[min(len(values) - 1, int(len(values) * 0.9))]:.2f}s"
    )


async def release_path(client: Client, app_id: str, journey_id: str, cohorts: int = 30) -> str:
    """Where a release's time goes, read from the histories of up to ``cohorts`` cohort workflows.

    For each ``events_arrived`` signal that led to a ``release_waiting`` activity: signal -> release
    scheduled (the workflow task that took the signal), scheduled -> started (waiting for an activity slot),
    started -> completed (the release's SQL), completed -> the released lane's next step scheduled (the
    workflow task that took the result; the bench's latency ends there, at the next step's claim time), and
    that step's own wait for a slot. The time from PutEvents to the signal is the rest of the bench's p50.
    """
    phases: dict[str, list[float]] = {
        "signal->scheduled": [],
        "signal->local release recorded": [],
        "slot wait": [],
        "release SQL": [],
        "->next step scheduled": [],
        "next step slot wait": [],
        "activity slot wait (other steps)": [],
    }
    # Seconds each kind of step held an activity slot (started -> completed), from the activities' summaries.
    held: dict[str, float] = {}
    seen = 0
    async for wf in client.list_workflows(
        f"AppId = '{app_id}' AND JourneyId = '{journey_id}' AND SojournKind = 'cohort'"
    ):
        if seen >= cohorts:
            break
        seen += 1
        events = [e async for e in client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history_events()]
        at = {e.event_id: e.event_time.ToDatetime() for e in events}
        names_of: dict[int, str] = {}
        kinds_of: dict[int, str] = {}
        started_of: dict[int, datetime] = {}
        last_signal: datetime | None = None
        pending_release: datetime | None = None
        for e in events:
            kind = e.WhichOneof("attributes")
            when = at[e.event_id]
            if kind == "workflow_execution_signaled_event_attributes":
                if e.workflow_execution_signaled_event_attributes.signal_name == "events_arrived":
                    last_signal = last_signal or when
            elif kind == "marker_recorded_event_attributes" and last_signal is not None:
                # A release run as a local activity (recorded with the workflow task that took the signal).
                phases["signal->local release recorded"].append((when - last_signal).total_seconds())
                last_signal = None
                pending_release = when
            elif kind == "activity_task_scheduled_event_attributes":
                name = e.activity_task_scheduled_event_attributes.activity_type.name
                names_of[e.event_id] = name
                summary = e.user_metadata.summary.data if e.HasField("user_metadata") else b""
                kinds_of[e.event_id] = (
                    str(json.loads(summary)).split(" ")[0] if summary and name == "run_step" else name
                )
                if name == "release_waiting" and last_signal is not None:
                    phases["signal->scheduled"].append((when - last_signal).total_seconds())
                    last_signal = None
                elif name == "run_step" and pending_release is not None:
                    payloads = e.activity_task_scheduled_event_attributes.input.payloads
                    lane = str(json.loads(payloads[0].data).get("lane") or "") if payloads else ""
                    if lane.split(".")[-1].startswith("e"):
                        phases["->next step scheduled"].append((when - pending_release).total_seconds())
                        names_of[e.event_id] = "released run_step"
                        pending_release = None
            elif kind == "activity_task_started_event_attributes":
                sched = e.activity_task_started_event_attributes.scheduled_event_id
                started_of[sched] = when
                wait = (when - at[sched]).total_seconds()
                name = names_of.get(sched, "")
                key = {"release_waiting": "slot wait", "released run_step": "next step slot wait"}.get(
                    name, "activity slot wait (other steps)"
                )
                phases[key].append(wait)
            elif kind == "activity_task_completed_event_attributes":
                sched = e.activity_task_completed_event_attributes.scheduled_event_id
                if sched in started_of:
                    kind_of = kinds_of.get(sched, "?")
                    held[kind_of] = held.get(kind_of, 0.0) + (when - started_of[sched]).total_seconds()
                if names_of.get(sched) == "release_waiting" and sched in started_of:
                    phases["release SQL"].append((when - started_of[sched]).total_seconds())
                    pending_release = when
    total = sum(held.values()) or 1.0
    slots = ", ".join(
        f"{kind} {100 * seconds / total:.0f}%"
        for kind, seconds in sorted(held.items(), key=lambda kv: -kv[1])
    )
    return (
        f"release path over {seen} cohorts: "
        + "; ".join(f"{name} {_phase_stats(values)}" for name, values in phases.items())
        + f"\nactivity slot time by step ({total:.0f} slot-seconds over those cohorts): {slots}"
    )


def rss_mb(pid: int, field: str) -> int:
    """A memory field of /proc/<pid>/status (VmRSS: now, VmHWM: peak), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    return 0


def peak_rss_mb(pid: int) -> int:
    return rss_mb(pid, "VmHWM:")


# ---- the baseline: the same journey as one plain workflow per participant ----


@dataclass
class ParticipantInput:
    app_id: str
    run_id: str
    endpoint_id: str
    address: str


class BaselineActivities:
    def __init__(self, db: AsyncEngine) -> None:
        self.db = db

    @activity.defn(name="baseline_send")
    async def send(self, inp: ParticipantInput, activity_id: str) -> str:
        message_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{inp.run_id}/{activity_id}/{inp.endpoint_id}").hex
        async with self.db.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO messages (message_id, app_id, journey_id, activity_id, endpoint_id, channel, address, status, sent_at) "
                    "VALUES (:m, :a, :j, :act, :e, 'EMAIL', :addr, 'sent', now()) ON CONFLICT DO NOTHING"
                ),
                {
                    "m": message_id,
                    "a": inp.app_id,
                    "j": inp.run_id,
                    "act": activity_id,
                    "e": inp.endpoint_id,
                    "addr": inp.address,
                },
            )
            if activity_id == "welcome" and int(message_id[:8], 16) % 100 < OPEN_SHARE:
                await conn.execute(
                    text(
                        "INSERT INTO events (app_id, endpoint_id, event_id, event_type, occurred_at, message_id) "
                        "VALUES (:a, :e, :m, '_email.open', now(), :m)"
                    ),
                    {"a": inp.app_id, "e": inp.endpoint_id, "m": message_id},
                )
        return message_id

    @activity.defn(name="baseline_opened")
    async def opened(self, message_id: str) -> bool:
        async with self.db.connect() as conn:
            return bool(
                await conn.scalar(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM events WHERE message_id = :m AND event_type = '_email.open')"
                    ),
                    {"m": message_id},
                )
            )


@workflow.defn(name="BaselineParticipantJourney", sandboxed=False)
class BaselineParticipantJourney:
    @workflow.run
    async def run(self, inp: ParticipantInput) -> str:
        opts: dict[str, Any] = {"start_to_close_timeout": timedelta(minutes=1)}
        message_id = await workflow.execute_activity(
            "baseline_send", args=[inp, "welcome"], result_type=str, **opts
        )
        await workflow.sleep(timedelta(seconds=5))
        await workflow.sleep(timedelta(seconds=3))
        opened = await workflow.execute_activity("baseline_opened", message_id, result_type=bool, **opts)
        await workflow.execute_activity(
            "baseline_send", args=[inp, "thanks" if opened else "nudge"], result_type=str, **opts
        )
        return "yes" if opened else "no"


async def run_baseline(client: Client, db: AsyncEngine, app_id: str, sample: int) -> tuple[float, float]:
    """Rate (participants/s) and history events per participant of one workflow per participant."""
    queue = f"baseline-{uuid.uuid4().hex}"
    run_id = f"baseline-{uuid.uuid4().hex[:8]}"
    acts = BaselineActivities(db)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BaselineParticipantJourney],
        activities=[acts.send, acts.opened],
        max_concurrent_activities=100,
    ):
        started = time.monotonic()
        sem = asyncio.Semaphore(100)

        async def start(i: int) -> Any:
            async with sem:
                return await client.start_workflow(
                    BaselineParticipantJourney.run,
                    ParticipantInput(app_id, run_id, f"ep{i + 1}", f"user{i + 1}@bench.test"),
                    id=f"{run_id}-{i}",
                    task_queue=queue,
                )

        handles = await asyncio.gather(*(start(i) for i in range(sample)))
        await asyncio.gather(*(h.result() for h in handles))
        elapsed = time.monotonic() - started
        events = 0
        for h in handles[:50]:
            events += (await h.describe()).raw_description.workflow_execution_info.history_length
    return sample / elapsed, events / min(50, len(handles))


async def main(
    endpoints: int,
    baseline_sample: int,
    cohort_size: int,
    scenario: str,
    in_flight: int,
    purchase_wait: int = 5,
) -> str:
    with tempfile.TemporaryDirectory(prefix="sojourn-bench-") as tmp:
        data = Path(tmp)
        pg = EmbeddedPostgres(data / "pg", port=free_port())
        pg.start()
        pg.ensure_database("sojourn")
        temporal = TemporalDevServer(data / "temporal", port=free_port(), ui_port=None)
        temporal.start(log_file=data / "temporal.log")
        worker: subprocess.Popen[bytes] | None = None
        try:
            settings = Settings(
                database_url=pg.url("sojourn"),
                temporal_address=temporal.address,
                smtp_url="null://",
                task_queue=f"bench-{uuid.uuid4().hex[:8]}",
                cohort_size=cohort_size,
            )
            if in_flight:
                endpoints = in_flight
            await upgrade_async(settings.database_url or "")
            db = create_engine(settings.database_url or "", pool_size=10)
            client = await connect(settings)
            state = AppState(db=db, settings=settings)
            state.use_temporal(client)
            print(f"seeding {endpoints} endpoints...", flush=True)
            app_id, segment_id = await seed(state, endpoints, zones=scenario == "full")
            hooks = HookServer() if scenario == "full" else None
            if scenario == "full":
                await add_channels(state, app_id)
                await call(
                    state,
                    "UpdateApplicationSettings",
                    ApplicationId=app_id,
                    WriteApplicationSettingsRequest={
                        "JourneyLimits": {"TimeframeCap": {"Cap": 3, "Days": 7}}
                    },
                )
            env = {
                **os.environ,
                "SOJOURN_DATABASE_URL": settings.database_url or "",
                "SOJOURN_TEMPORAL_ADDRESS": temporal.address,
                "SOJOURN_SMTP_URL": "null://",
                "SOJOURN_TASK_QUEUE": settings.task_queue,
                "SOJOURN_COHORT_SIZE": str(cohort_size),
                "SOJOURN_DATA_DIR": str(data),
                "SOJOURN_SMS_PROVIDER_URL": "file://sms.jsonl",
                "SOJOURN_PUSH_PROVIDER_URL": "file://push.jsonl",
                "SOJOURN_CUSTOM_PROVIDER_SECRET": "bench-secret",
                # Memory mode: every cohort running at once.
                **(
                    {"SOJOURN_MAX_COHORTS_IN_FLIGHT": str(min(1000, -(-in_flight // cohort_size)))}
                    if in_flight
                    else {}
                ),
                "SOJOURN_LOG_LEVEL": os.environ.get("SOJOURN_LOG_LEVEL", "WARNING"),
            }
            worker = subprocess.Popen([sys.executable, "-m", "sojourn", "worker"], env=env)
            await asyncio.sleep(2)
            if in_flight:
                return await measure_in_flight(state, client, worker, app_id, segment_id, in_flight)
            print(f"running the cohort journey ({scenario})...", flush=True)
            started = time.monotonic()
            request = (
                full_journey_request(
                    segment_id,
                    quiet_window_now(),
                    purchase_wait,
                    hooks.url if hooks else "http://127.0.0.1:9",
                )
                if scenario == "full"
                else journey_request(segment_id)
            )
            created = await call(state, "CreateJourney", ApplicationId=app_id, WriteJourneyRequest=request)
            journey_id = created["JourneyResponse"]["Id"]
            stop = asyncio.Event()
            opener = asyncio.create_task(simulate_opens(db, journey_id, stop))
            buyer = asyncio.create_task(simulate_purchases(state, app_id, journey_id, stop))
            result = await client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id)).result()
            elapsed = time.monotonic() - started
            stop.set()
            await opener
            await buyer
            assert result == "COMPLETED", result
            rate = endpoints / elapsed
            async with db.connect() as conn:
                sent: dict[str, int] = dict(
                    (
                        await conn.execute(
                            text(
                                "SELECT activity_id || ':' || COALESCE(status_message, status), count(*) FROM messages "
                                "WHERE journey_id = :j GROUP BY 1"
                            ),
                            {"j": journey_id},
                        )
                    ).all()
                )
            await asyncio.sleep(2)  # visibility is eventually consistent
            events = await history_events(client, app_id, journey_id)
            if scenario == "full":
                p50, p99, released = await purchase_latency(db, journey_id, purchase_wait)
                sent50, sent99, _ = await purchase_latency(db, journey_id, purchase_wait, until="sent_at")
                print(await release_path(client, app_id, journey_id), flush=True)
                await db.dispose()
                rss = peak_rss_mb(worker.pid)
                print(
                    f"full journey: {endpoints} participants in {elapsed:.1f}s = {rate:.0f}/s; messages {sent}; "
                    f"{hooks.calls[0] if hooks else 0} webhook calls (CUSTOM, contact center); "
                    f"{events} history events; worker peak RSS {rss} MB; wait-for-event: {released} released "
                    f"early, PutEvents -> thanks claimed p50 {p50:.2f}s p99 {p99:.2f}s, thanks sent p50 {sent50:.2f}s "
                    f"p99 {sent99:.2f}s",
                    flush=True,
                )
                return (
                    f"participants_per_s={rate:.1f} history_events_per_participant={events / endpoints:.4f} "
                    f"peak_rss_mb={rss} event_release_p50_s={p50:.2f} event_release_p99_s={p99:.2f} "
                    f"event_release_sent_p50_s={sent50:.2f} event_release_sent_p99_s={sent99:.2f}"
                )
            rss = peak_rss_mb(worker.pid)
            print(
                f"cohort journey: {endpoints} participants in {elapsed:.1f}s = {rate:.0f}/s; sent {sent}; "
                f"{events} history events; worker peak RSS {rss} MB",
                flush=True,
            )
            print(
                f"running the baseline (one workflow per participant) on {baseline_sample} participants...",
                flush=True,
            )
            base_rate, base_events = await run_baseline(client, db, app_id, baseline_sample)
            print(
                f"baseline: {base_rate:.1f} participants/s, {base_events:.1f} history events per participant",
                flush=True,
            )
            await db.dispose()
            return (
                f"participants_per_s={rate:.1f} history_events_per_participant={events / endpoints:.4f} "
                f"baseline_ratio={rate / base_rate:.1f} peak_rss_mb={rss}"
            )
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            temporal.stop()
            pg.stop()


async def measure_in_flight(
    state: AppState, client: Client, worker: subprocess.Popen[bytes], app_id: str, segment_id: str, n: int
) -> str:
    """Enroll N participants into EMAIL -> Wait P1D and measure the worker with all of them waiting."""
    request = journey_request(segment_id)
    request["Activities"] = {
        "welcome": {"EMAIL": {"TemplateName": "bench_welcome", "NextActivity": "later"}},
        "later": {"Wait": {"WaitTime": {"WaitFor": "P1D"}}},
    }
    request["StartActivity"] = "welcome"
    started = time.monotonic()
    created = await call(state, "CreateJourney", ApplicationId=app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    while True:
        async with state.db.connect() as conn:
            waiting = int(
                await conn.scalar(
                    text(
                        "SELECT count(*) FROM participants WHERE journey_id = :j AND status = 'active' AND position = 'later'"
                    ),
                    {"j": journey_id},
                )
                or 0
            )
        print(f"  {waiting} of {n} waiting after {time.monotonic() - started:.0f}s", flush=True)
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}")
        if waiting >= n:
            break
        await asyncio.sleep(10)
    elapsed = time.monotonic() - started
    await asyncio.sleep(5)
    current = rss_mb(worker.pid, "VmRSS:")
    peak = peak_rss_mb(worker.pid)
    handle = client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id))
    await handle.signal("set_state", "CANCELLED")
    print(
        f"in flight: {n} participants waiting after {elapsed:.0f}s; worker RSS {current} MB (peak {peak} MB)"
    )
    return f"in_flight={n} seconds_to_all_waiting={elapsed:.0f} worker_rss_mb={current} worker_peak_rss_mb={peak}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--endpoints", type=int, default=100_000, help="participants in the segment (default 100000)"
    )
    parser.add_argument(
        "--baseline-sample", type=int, default=1000, help="participants in the baseline run (default 1000)"
    )
    parser.add_argument(
        "--cohort-size", type=int, default=1000, help="participants per cohort workflow (default 1000)"
    )
    parser.add_argument(
        "--scenario",
        choices=("onboarding", "full"),
        default="onboarding",
        help="onboarding: EMAIL, Wait, split on open, EMAIL, with the baseline; full: every activity type, "
        "quiet time in 24 zones and caps",
    )
    parser.add_argument(
        "--in-flight", type=int, default=0, help="memory mode: N participants waiting at once (no baseline)"
    )
    parser.add_argument(
        "--purchase-wait",
        type=int,
        default=5,
        help="full scenario: seconds the wait-for-event split waits for a purchase (default 5; use 30 to "
        "measure release latency without cutting off slow releases)",
    )
    args = parser.parse_args()
    print(
        asyncio.run(
            main(
                args.endpoints,
                args.baseline_sample,
                args.cohort_size,
                args.scenario,
                args.in_flight,
                args.purchase_wait,
            )
        )
    )
