"""The ``sojourn`` command: run the embedded stack, the API, the worker; migrate; deploy journeys from Python."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sojourn.cli_privacy import add_privacy_commands
from sojourn.settings import Settings, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sojourn`` command."""
    parser = argparse.ArgumentParser(
        prog="sojourn",
        description="Self-hosted, Pinpoint-compatible journeys on Temporal and PostgreSQL. "
        "Configuration comes from SOJOURN_* environment variables (see the README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser(
        "up", help="run everything on this machine: PostgreSQL, Temporal, migrations, worker, API"
    )
    up.set_defaults(run=cmd_up)
    api = sub.add_parser("api", help="run the API server (needs SOJOURN_DATABASE_URL and Temporal)")
    api.set_defaults(run=cmd_api)
    worker = sub.add_parser("worker", help="run a worker (needs SOJOURN_DATABASE_URL and Temporal)")
    worker.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes to run on this machine (default: SOJOURN_WORKER_PROCESSES, half the cores)",
    )
    worker.set_defaults(run=cmd_worker)
    migrate = sub.add_parser("migrate", help="apply database migrations to SOJOURN_DATABASE_URL")
    migrate.set_defaults(run=cmd_migrate)
    deploy = sub.add_parser(
        "deploy", help="create or update the journeys and campaigns defined in a Python file (see workflows/)"
    )
    deploy.add_argument(
        "file", type=Path, help="a Python file that defines sojourn.dsl.Journey and Campaign objects"
    )
    deploy.add_argument("--app", required=True, help="the application (project) id to deploy into")
    deploy.add_argument(
        "--endpoint-url", default=None, help="API URL (default: http://SOJOURN_API_HOST:SOJOURN_API_PORT)"
    )
    deploy.set_defaults(run=cmd_deploy)
    journeys = sub.add_parser("journeys", help="work with journeys")
    journeys_sub = journeys.add_subparsers(dest="journeys_command", required=True, metavar="COMMAND")
    review = journeys_sub.add_parser(
        "review",
        help="review journeys before activation: blocking errors, then recommendations",
        description="Review the journeys of a Python file (see workflows/), or one journey of an app through the API. "
        "Exits 1 when a journey has a blocking error.",
    )
    review.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="a Python file that defines sojourn.dsl.Journey and Campaign objects",
    )
    review.add_argument(
        "--app", help="application id (with --journey: review a stored journey through the API)"
    )
    review.add_argument("--journey", help="journey id")
    review.add_argument(
        "--endpoint-url", default=None, help="API URL (default: http://SOJOURN_API_HOST:SOJOURN_API_PORT)"
    )
    review.set_defaults(run=cmd_journeys_review)
    show = journeys_sub.add_parser(
        "show",
        help="print a journey's graph with per-activity counts",
        description="Print a stored journey as a tree of activities, each with its execution metrics.",
    )
    show.add_argument("--app", required=True, help="application id")
    show.add_argument("--journey", required=True, help="journey id")
    show.add_argument(
        "--endpoint-url", default=None, help="API URL (default: http://SOJOURN_API_HOST:SOJOURN_API_PORT)"
    )
    show.set_defaults(run=cmd_journeys_show)
    tester = journeys_sub.add_parser(
        "test",
        help="send test participants through a copy of a journey with its waits compressed",
        description="Create the copy Test-<name> of a stored journey with every wait and evaluation wait "
        "compressed, no quiet time and no caps, send the given endpoints through it (real messages go out), "
        "and print the path each took. The copy is cancelled at the end. Needs the API and the database "
        "(SOJOURN_DATABASE_URL, else the embedded one of `sojourn up`).",
    )
    tester.add_argument("--app", required=True, help="application id")
    tester.add_argument("--journey", required=True, help="journey id of the journey to test")
    tester.add_argument(
        "--endpoint", required=True, action="append", help="an endpoint id to send through (repeat for more)"
    )
    tester.add_argument("--wait", default="PT5S", help="what every wait becomes, ISO-8601 (default PT5S)")
    tester.add_argument("--timeout", type=float, default=300, help="seconds to wait for the participants")
    tester.add_argument(
        "--endpoint-url", default=None, help="API URL (default: http://SOJOURN_API_HOST:SOJOURN_API_PORT)"
    )
    tester.set_defaults(run=cmd_journeys_test)
    simulate = journeys_sub.add_parser(
        "simulate",
        help="run a journey from a Python file against a synthetic audience, in skipped time",
        description="Run the journeys of a Python file (see workflows/) against a synthetic audience on the "
        "Temporal time-skipping server with a throw-away PostgreSQL: days of journey in seconds, nothing sent. "
        "Simulated recipients open a share of the emails and click a share of those; then the journey's "
        "graph is printed with, per activity, how many arrived, were sent, capped, held for quiet time, and left.",
    )
    simulate.add_argument("file", type=Path, help="a Python file that defines sojourn.dsl.Journey objects")
    simulate.add_argument("--journey", help="the journey's Name, when the file defines several")
    simulate.add_argument("--audience", type=int, default=1000, help="simulated endpoints (default 1000)")
    simulate.add_argument("--open-rate", type=float, default=0.3, help="share of emails opened (default 0.3)")
    simulate.add_argument(
        "--click-rate", type=float, default=0.3, help="share of opened emails clicked (default 0.3)"
    )
    simulate.add_argument(
        "--zones",
        default=None,
        help="comma-separated time zones assigned in turn ('none': no zone); default: Los Angeles, New York, "
        "London, Berlin, Kolkata, Tokyo, Sydney and none",
    )
    simulate.set_defaults(run=cmd_journeys_simulate)
    trace = sub.add_parser(
        "trace",
        help="show one participant's path through a journey",
        description="Print each entry of an endpoint into a journey: the activities it passed (with the branch "
        "it took at each split), where it is now, and every message with its outcome, opens and clicks. Reads "
        "the ledgers in PostgreSQL (SOJOURN_DATABASE_URL, else the embedded one of `sojourn up`).",
    )
    trace.add_argument("--journey", required=True, help="journey id")
    trace.add_argument("--endpoint", required=True, help="endpoint id")
    trace.set_defaults(run=cmd_trace)
    add_privacy_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("SOJOURN_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Migration chatter is not news on every start.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return int(args.run(args, get_settings()) or 0)


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> int:
    """Apply migrations."""
    from sojourn.store.migrate import upgrade

    if not settings.database_url:
        print("SOJOURN_DATABASE_URL is not set", file=sys.stderr)
        return 2
    upgrade(settings.database_url)
    print("database is up to date")
    return 0


def cmd_api(_: argparse.Namespace, settings: Settings) -> int:
    """Serve the API with uvicorn."""
    import uvicorn

    from sojourn.api.app import create_app

    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")  # type: ignore[arg-type]
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the Temporal worker until SIGINT/SIGTERM; with ``--processes N`` N of them (this one and N-1 children,
    which the task queue shares work among, and which stop with it)."""
    from sojourn.engine.worker import run_worker

    processes = args.processes or settings.worker_processes
    if processes < 1:
        print("--processes must be at least 1", file=sys.stderr)
        return 2
    env = {**os.environ, "SOJOURN_WORKER_PROCESSES": str(processes)}
    children = [
        subprocess.Popen([sys.executable, "-m", "sojourn", "worker", "--processes", "1"], env=env)
        for _ in range(processes - 1)
    ]
    # Every process plans campaign runs in as many parts as there are processes.
    settings = settings.model_copy(update={"worker_processes": processes})
    try:
        asyncio.run(_run_one_worker(settings, run_worker))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)
    return 0


async def _run_one_worker(settings: Settings, run_worker: Any) -> None:
    """One worker until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop)


def cmd_up(_: argparse.Namespace, settings: Settings) -> int:
    """Run the embedded stack in the foreground; Ctrl-C stops every child process."""
    from sojourn.stack import run_up

    return run_up(settings)


def _api_client(settings: Settings, endpoint_url: str | None) -> Any:
    """A botocore Pinpoint client on this sojourn's API, signed with the configured key pair."""
    import botocore.session

    return botocore.session.get_session().create_client(
        "pinpoint",
        endpoint_url=endpoint_url or f"http://{settings.api_host}:{settings.api_port}",
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
    )


def _dsl_journeys(path: Path) -> list[Any]:
    from sojourn.dsl import Journey

    return [v for v in runpy.run_path(str(path)).values() if isinstance(v, Journey)]


def cmd_journeys_review(args: argparse.Namespace, settings: Settings) -> int:
    """Print each journey's blocking errors and recommendations; exit 1 if any journey cannot be published."""
    from datetime import UTC, datetime

    from sojourn.domain.journeys import JourneyDefinition
    from sojourn.domain.review import review_journey

    if args.file is not None:
        definitions = [j.definition() for j in _dsl_journeys(args.file)]
    elif args.app and args.journey:
        body = _api_client(settings, args.endpoint_url).get_journey(
            ApplicationId=args.app, JourneyId=args.journey
        )
        stored = {k: v for k, v in body["JourneyResponse"].items() if k in JourneyDefinition.model_fields}
        definitions = [JourneyDefinition.model_validate(stored)]
    else:
        print("give a Python file, or --app and --journey", file=sys.stderr)
        return 2
    if not definitions:
        if args.file is not None and _dsl_campaigns(args.file):
            print(f"{args.file} defines campaigns only: no journey to review")
            return 0
        print("no journey to review", file=sys.stderr)
        return 2
    blocked = False
    for definition in definitions:
        result = review_journey(definition, now=datetime.now(UTC))
        blocked = blocked or not result.ok
        print(f"journey {definition.Name}: {'ready' if result.ok else 'cannot be published'}")
        for error in result.errors:
            print(f"  error: {error}")
        for advice in result.recommendations:
            print(f"  recommendation: {advice}")
    return 1 if blocked else 0


def cmd_journeys_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print the journey's activities as a tree, each with its metrics, after the journey-level counts."""
    from sojourn.domain.journey_tree import render_tree
    from sojourn.domain.journeys import JourneyDefinition

    client = _api_client(settings, args.endpoint_url)
    body = client.get_journey(ApplicationId=args.app, JourneyId=args.journey)["JourneyResponse"]
    definition = JourneyDefinition.model_validate(
        {k: v for k, v in body.items() if k in JourneyDefinition.model_fields}
    )
    totals = client.get_journey_execution_metrics(ApplicationId=args.app, JourneyId=args.journey)
    metrics = {
        activity_id: client.get_journey_execution_activity_metrics(
            ApplicationId=args.app, JourneyId=args.journey, JourneyActivityId=activity_id
        )["JourneyExecutionActivityMetricsResponse"]["Metrics"]
        for activity_id in definition.Activities
    }
    journey_counts = totals["JourneyExecutionMetricsResponse"]["Metrics"]
    print(f"journey {definition.Name} ({args.journey}), {body['State']}")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(journey_counts.items())))
    for line in render_tree(definition, metrics):
        print(line)
    return 0


def cmd_journeys_test(args: argparse.Namespace, settings: Settings) -> int:
    """Send test endpoints through a compressed copy of a journey and print each one's path."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from sojourn.domain.durations import parse_duration
    from sojourn.domain.journey_test_copy import build_test_copy
    from sojourn.domain.journeys import JourneyDefinition

    try:
        parse_duration(args.wait)
    except ValueError as err:
        print(f"--wait: {err}", file=sys.stderr)
        return 2
    client = _api_client(settings, args.endpoint_url)
    body = client.get_journey(ApplicationId=args.app, JourneyId=args.journey)["JourneyResponse"]
    definition = JourneyDefinition.model_validate(
        {k: v for k, v in body.items() if k in JourneyDefinition.model_fields}
    )
    entry_event = f"sojourn.test.{uuid.uuid4().hex[:12]}"
    copy = build_test_copy(
        definition,
        entry_event=entry_event,
        wait=args.wait,
        now=datetime.now(UTC),
        lifetime=timedelta(seconds=args.timeout) + timedelta(hours=1),
    )
    test_id = client.create_journey(ApplicationId=args.app, WriteJourneyRequest=copy)["JourneyResponse"]["Id"]
    print(
        f"created {copy['Name']} ({test_id}); sending {len(args.endpoint)} test participant(s)",
        file=sys.stderr,
    )
    now = datetime.now(UTC).isoformat()
    client.put_events(
        ApplicationId=args.app,
        EventsRequest={
            "BatchItem": {
                endpoint: {
                    "Endpoint": {},
                    "Events": {f"test-{endpoint}": {"EventType": entry_event, "Timestamp": now}},
                }
                for endpoint in args.endpoint
            }
        },
    )
    entries = asyncio.run(_await_test_participants(settings, test_id, args.endpoint, args.timeout))
    client.update_journey_state(
        ApplicationId=args.app, JourneyId=test_id, JourneyStateRequest={"State": "CANCELLED"}
    )
    unfinished = 0
    for endpoint in args.endpoint:
        traced = entries.get(endpoint, [])
        if not traced:
            print(
                f"endpoint {endpoint} did not enter (is it an endpoint of the app, reachable on the channel?)"
            )
            unfinished += 1
            continue
        unfinished += sum(1 for e in traced if e.status == "active")
        for line in render_trace(test_id, endpoint, traced):
            print(line)
    return 1 if unfinished else 0


async def _await_test_participants(
    settings: Settings, journey_id: str, endpoint_ids: Sequence[str], patience: float
) -> dict[str, list[Any]]:
    """Poll the ledger until every test participant left the journey (or ``patience`` seconds); their traces."""
    from sojourn.store.db import create_engine
    from sojourn.store.participant_trace import trace_endpoint

    engine = create_engine(settings.effective_database_url)
    deadline = time.monotonic() + patience
    try:
        while True:
            async with engine.connect() as conn:
                traces = {e: await trace_endpoint(conn, journey_id, e) for e in endpoint_ids}
            entered = sum(1 for t in traces.values() if t)
            done = sum(1 for t in traces.values() if t and all(e.status != "active" for e in t))
            print(f"  {entered} entered, {done} of {len(endpoint_ids)} done", file=sys.stderr, flush=True)
            if done == len(endpoint_ids) or time.monotonic() > deadline:
                return traces
            await asyncio.sleep(2)
    finally:
        await engine.dispose()


def cmd_journeys_simulate(args: argparse.Namespace, _settings: Settings) -> int:
    """Simulate one journey of a DSL file and print its per-activity report."""
    from sojourn.domain.journey_tree import render_tree
    from sojourn.simulate import DEFAULT_ZONES, Audience, render_report, simulate

    journeys = _dsl_journeys(args.file)
    if args.journey:
        journeys = [j for j in journeys if j.name == args.journey]
    if len(journeys) != 1:
        found = ", ".join(j.name for j in _dsl_journeys(args.file)) or "none"
        print(f"choose one journey with --journey (found: {found})", file=sys.stderr)
        return 2
    if not (0 <= args.open_rate <= 1 and 0 <= args.click_rate <= 1) or args.audience < 1:
        print(
            "--open-rate and --click-rate are shares between 0 and 1; --audience is at least 1",
            file=sys.stderr,
        )
        return 2
    zones = (
        tuple("" if z.strip() in ("", "none") else z.strip() for z in args.zones.split(","))
        if args.zones
        else DEFAULT_ZONES
    )
    audience = Audience(size=args.audience, zones=zones, open_rate=args.open_rate, click_rate=args.click_rate)
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {line}", file=sys.stderr, flush=True)

    report = asyncio.run(simulate(journeys[0].definition(), audience, progress=progress))
    progress("done")
    for line in render_report(report, render_tree):
        print(line)
    return 0


def cmd_trace(args: argparse.Namespace, settings: Settings) -> int:
    """Print one endpoint's entries into a journey, their paths and messages."""
    from sojourn.store.db import create_engine

    async def load() -> list[Any]:
        from sojourn.store.participant_trace import trace_endpoint

        engine = create_engine(settings.effective_database_url)
        try:
            async with engine.connect() as conn:
                return await trace_endpoint(conn, args.journey, args.endpoint)
        finally:
            await engine.dispose()

    entries = asyncio.run(load())
    if not entries:
        print(f"endpoint {args.endpoint} never entered journey {args.journey}", file=sys.stderr)
        return 1
    for line in render_trace(args.journey, args.endpoint, entries):
        print(line)
    return 0


def render_trace(journey_id: str, endpoint_id: str, entries: Sequence[Any]) -> list[str]:
    """The lines ``sojourn trace`` prints for ``entries`` (see :mod:`sojourn.store.participant_trace`)."""
    from sojourn.domain.journeys import JourneyDefinition
    from sojourn.domain.trace import participant_path

    lines = [f"endpoint {endpoint_id} in journey {journey_id}"]
    for entry in entries:
        where = f"at '{entry.position}'" if entry.position else "left the journey"
        lines.append(
            f"entry {entry.entry_no}: entered {entry.entered_at.isoformat(timespec='seconds')}, version "
            f"{entry.version}, cohort {entry.cohort_no}, lane {entry.lane}: {entry.status}, {where} "
            f"(last move {entry.updated_at.isoformat(timespec='seconds')})"
        )
        if entry.user_id is not None:
            lines.append(f"  as an endpoint of user {entry.user_id}: the user's endpoints move together")
        definition = JourneyDefinition.model_validate(entry.definition)
        for step in participant_path(definition, entry.lane, entry.position, entry.status):
            lines.append(f"  {step.activity_id} ({step.kind})" + (f": {step.note}" if step.note else ""))
            for message in entry.messages.get(step.activity_id, []):
                outcome = message.status + (f" ({message.reason})" if message.reason else "")
                when = (message.sent_at or message.created_at).isoformat(timespec="seconds")
                lines.append(f"    message {outcome} at {when}")
                lines += [f"    {kind} at {at.isoformat(timespec='seconds')}" for kind, at in message.events]
    return lines


def _dsl_campaigns(path: Path) -> list[Any]:
    from sojourn.dsl import Campaign

    return [v for v in runpy.run_path(str(path)).values() if isinstance(v, Campaign)]


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    """Create or update each journey and campaign defined in ``args.file`` (matched by name) through the API."""
    journeys = _dsl_journeys(args.file)
    campaigns = _dsl_campaigns(args.file)
    if not journeys and not campaigns:
        print(f"{args.file} defines no sojourn.dsl.Journey or sojourn.dsl.Campaign", file=sys.stderr)
        return 2
    client = _api_client(settings, args.endpoint_url)
    if journeys:
        _deploy_journeys(client, args.app, journeys)
    if campaigns:
        _deploy_campaigns(client, args.app, campaigns)
    return 0


def _deploy_journeys(client: Any, app_id: str, journeys: list[Any]) -> None:
    existing = {
        j["Name"]: j["Id"] for j in client.list_journeys(ApplicationId=app_id)["JourneysResponse"]["Item"]
    }
    for journey in journeys:
        request = journey.request()
        if journey.name in existing:
            response = client.update_journey(
                ApplicationId=app_id, JourneyId=existing[journey.name], WriteJourneyRequest=request
            )
            verb = "updated"
        else:
            response = client.create_journey(ApplicationId=app_id, WriteJourneyRequest=request)
            verb = "created"
        body = response["JourneyResponse"]
        print(f"{verb} journey {body['Name']} ({body['Id']}), state {body['State']}")


def _deploy_campaigns(client: Any, app_id: str, campaigns: list[Any]) -> None:
    existing: dict[str, str] = {}
    token: str | None = None
    while True:
        page = client.get_campaigns(ApplicationId=app_id, **({"Token": token} if token else {}))
        existing.update({c["Name"]: c["Id"] for c in page["CampaignsResponse"]["Item"]})
        token = page["CampaignsResponse"].get("NextToken")
        if not token:
            break
    for campaign in campaigns:
        request = campaign.request()
        if campaign.name in existing:
            response = client.update_campaign(
                ApplicationId=app_id, CampaignId=existing[campaign.name], WriteCampaignRequest=request
            )
            verb = "updated"
        else:
            response = client.create_campaign(ApplicationId=app_id, WriteCampaignRequest=request)
            verb = "created"
        body = response["CampaignResponse"]
        print(
            f"{verb} campaign {body['Name']} ({body['Id']}) version {body['Version']}, "
            f"state {body['State']['CampaignStatus']}"
        )


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    """Block until ``url`` answers (any status)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def spawn(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``sojourn <command>`` as a child process with ``env``."""
    return subprocess.Popen([sys.executable, "-m", "sojourn", command], env=env)


if __name__ == "__main__":
    raise SystemExit(main())
