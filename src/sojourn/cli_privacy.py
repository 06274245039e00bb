"""``sojourn consent ...`` and ``sojourn hygiene ...``: the consent ledger and unengaged removal from the shell.

These commands talk to PostgreSQL directly (``SOJOURN_DATABASE_URL``, or the embedded one of ``sojourn up``);
``hygiene enable`` also starts the app's SunsetWorkflow on Temporal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sojourn.settings import Settings

SAMPLE_SIZE = 10


def add_privacy_commands(sub: Any) -> None:
    """Register the ``consent`` and ``hygiene`` command groups on the main parser's subparsers."""
    consent = sub.add_parser("consent", help="the consent ledger: export, erase, form keys, RequireConsent")
    consent_sub = consent.add_subparsers(dest="consent_command", required=True, metavar="COMMAND")
    export = consent_sub.add_parser(
        "export",
        help="print every consent record of a contact (CSV or JSON)",
        description="Every grant, withdrawal, pending and expired opt-in of the contact, oldest first: "
        "channel, status, when, source, method, ip, user agent and the consent text.",
    )
    export.add_argument("--app", required=True, help="application id")
    export.add_argument("--address", required=True, help="the contact's email address")
    export.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="output format (default csv)"
    )
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")
    export.set_defaults(run=cmd_consent_export)
    erase = consent_sub.add_parser(
        "erase",
        help="erase a contact's personal data and consent records (keeps the suppression entry)",
        description="Deletes the app's endpoints with the address, their events, participant rows and consent "
        "records, blanks the address on their message ledger rows, and records an erasure marker that holds "
        "only a hash of the address. A suppression-list entry is kept, so the address is never mailed again. "
        "Without --yes, only shows what would be erased.",
    )
    erase.add_argument("--app", required=True, help="application id")
    erase.add_argument("--address", required=True, help="the contact's email address")
    erase.add_argument("--yes", action="store_true", help="really erase (otherwise a dry run)")
    erase.set_defaults(run=cmd_consent_erase)
    imp = consent_sub.add_parser(
        "import",
        help="import consent records (CSV or JSON) from another system, as source 'import'",
        description="Columns/fields: address, status (granted|withdrawn) required; channel (default EMAIL), "
        "recorded_at (ISO 8601 with zone), method (single_opt_in|double_opt_in), ip, user_agent, consent_text, "
        "endpoint_id optional. All rows or none: the first bad row is reported and nothing is imported. "
        "The newest row per endpoint and channel sets its current permission.",
    )
    imp.add_argument("--app", required=True, help="application id")
    imp.add_argument("file", type=Path, help="a .csv (with a header row) or .json (an array of objects) file")
    imp.set_defaults(run=cmd_consent_import)
    subs = consent_sub.add_parser(
        "subscriptions",
        help="print the SES Subscription events of a contact list (JSON lines)",
        description="Every change of a contact's subscription to the list (one-click, preference page, mailto, "
        "CreateContact/UpdateContact), oldest first, one JSON object per line: "
        '{"eventType": "Subscription", "emailAddress", "subscription": {contactList, timestamp, source, '
        "newTopicPreferences, oldTopicPreferences}}.",
    )
    subs.add_argument("--list", required=True, dest="list_name", help="contact list name")
    subs.add_argument("--address", help="only this contact's events")
    subs.add_argument("--since", help="only events from this time on (ISO 8601 with zone)")
    subs.add_argument("--limit", type=int, default=10000, help="at most this many events (default 10000)")
    subs.set_defaults(run=cmd_consent_subscriptions)
    key = consent_sub.add_parser(
        "form-key",
        help="print the app's public opt-in form key (for POST /optin/{app})",
        description="The key identifies the app's sign-up forms; it is public (it is in the page), not a secret.",
    )
    key.add_argument("--app", required=True, help="application id")
    key.set_defaults(run=cmd_consent_form_key)
    require = consent_sub.add_parser(
        "require",
        help="turn RequireConsent on or off for an app",
        description="On: only endpoints with granted consent for a channel are sent to (double opt-in apps). "
        "Off (default): endpoints with OptOut NONE are permitted, as in Pinpoint.",
    )
    require.add_argument("--app", required=True, help="application id")
    require.add_argument("state", choices=("on", "off"), help="on or off")
    require.set_defaults(run=cmd_consent_require)

    hygiene = sub.add_parser("hygiene", help="list hygiene: find and remove unengaged endpoints")
    hygiene_sub = hygiene.add_subparsers(dest="hygiene_command", required=True, metavar="COMMAND")
    report = hygiene_sub.add_parser(
        "report",
        help="dry run: count and sample the endpoints a sunset policy would act on",
        description="Unengaged: EMAIL endpoints older than --days that were sent an email within the last "
        "--days days and had no open or click in that time. Changes nothing.",
    )
    report.add_argument("--app", required=True, help="application id")
    report.add_argument("--days", type=int, default=90, help="the window, 30-365 days (default 90)")
    report.set_defaults(run=cmd_hygiene_report)
    enable = hygiene_sub.add_parser(
        "enable",
        help="store the app's sunset policy and start (or wake) its daily SunsetWorkflow",
        description="Prints the dry-run report, stores the policy, and starts the app's SunsetWorkflow "
        "(id sunset/<app>), which applies it now and then once a day. Policies: unsubscribe (OptOut ALL and "
        "consent withdrawn), segment (attribute sunset=true, selected by the app's 'sunset' segment), "
        "report (log only).",
    )
    enable.add_argument("--app", required=True, help="application id")
    enable.add_argument("--days", type=int, default=90, help="the window, 30-365 days (default 90)")
    enable.add_argument(
        "--policy", choices=("unsubscribe", "segment", "report"), default="report", help="default report"
    )
    enable.set_defaults(run=cmd_hygiene_enable)
    disable = hygiene_sub.add_parser("disable", help="stop the app's sunset policy (the workflow ends)")
    disable.add_argument("--app", required=True, help="application id")
    disable.set_defaults(run=cmd_hygiene_disable)


def database_url(settings: Settings) -> str:
    """The configured database, or the embedded one ``sojourn up`` runs."""
    return settings.database_url or f"postgresql://postgres@127.0.0.1:{settings.postgres_port}/sojourn"


def _with_db(settings: Settings, work: Callable[[Any], Awaitable[int]]) -> int:
    from sojourn.store.db import create_engine

    async def run() -> int:
        db = create_engine(database_url(settings), pool_size=2)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


async def _app_exists(conn: Any, app_id: str) -> bool:
    from sqlalchemy import text

    return await conn.scalar(text("SELECT 1 FROM apps WHERE id = :a"), {"a": app_id}) is not None


def _no_app(app_id: str) -> int:
    print(f"application {app_id} not found", file=sys.stderr)
    return 2


def cmd_consent_export(args: argparse.Namespace, settings: Settings) -> int:
    """Print the contact's consent records as CSV or JSON."""
    from sojourn.store import consent_repo

    async def work(db: Any) -> int:
        async with db.connect() as conn:
            if not await _app_exists(conn, args.app):
                return _no_app(args.app)
            records = await consent_repo.contact_records(conn, args.app, args.address)
        out = consent_repo.export_json(records) if args.format == "json" else consent_repo.export_csv(records)
        if args.output:
            args.output.write_text(out if out.endswith("\n") else out + "\n")
            print(f"wrote {len(records)} consent records to {args.output}", file=sys.stderr)
        else:
            print(out, end="" if out.endswith("\n") else "\n")
        return 0

    return _with_db(settings, work)


def cmd_consent_subscriptions(args: argparse.Namespace, settings: Settings) -> int:
    """Print a contact list's Subscription events as JSON lines."""
    import json

    from sojourn.domain.lists import ListRuleError, normalize_email
    from sojourn.store import subscription_repo

    try:
        email = normalize_email(args.address) if args.address else None
    except ListRuleError as err:
        print(f"--address: {err}", file=sys.stderr)
        return 2
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            print(f"--since {args.since!r} is not ISO 8601 (e.g. 2026-11-01T00:00:00Z)", file=sys.stderr)
            return 2
        if since.tzinfo is None:
            print(f"--since {args.since!r} needs a time zone (e.g. Z)", file=sys.stderr)
            return 2

    async def work(db: Any) -> int:
        async with db.connect() as conn:
            events = await subscription_repo.list_events(
                conn,
                list_name=args.list_name,
                email=email,
                since=since,
                limit=args.limit,
            )
        for event in events:
            print(json.dumps(event, separators=(",", ":")))
        return 0

    return _with_db(settings, work)


def cmd_consent_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Erase the contact (with --yes), or show what would be erased."""
    from sojourn.store import consent_repo

    async def work(db: Any) -> int:
        async with db.connect() as conn:
            transaction = await conn.begin()
            if not await _app_exists(conn, args.app):
                return _no_app(args.app)
            counts = await consent_repo.erase_contact(conn, args.app, args.address)
            summary = ", ".join(f"{n} {name}" for name, n in counts.items())
            if not args.yes:
                await transaction.rollback()
                print(f"dry run, nothing erased: would remove {summary}. Run again with --yes to erase.")
                return 0
            await transaction.commit()
        print(f"erased: {summary}; the suppression entry (if any) is kept")
        return 0

    return _with_db(settings, work)


def cmd_consent_import(args: argparse.Namespace, settings: Settings) -> int:
    """Import consent records from a CSV or JSON file."""
    import csv
    import json

    from sojourn.store import consent_repo

    try:
        raw = args.file.read_text(encoding="utf-8")
        rows = (
            json.loads(raw) if args.file.suffix.lower() == ".json" else list(csv.DictReader(raw.splitlines()))
        )
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("a JSON import is an array of objects")
        events = consent_repo.parse_import(rows, args.app)
    except (OSError, ValueError) as err:
        print(f"{args.file}: {err}; nothing imported", file=sys.stderr)
        return 2

    async def work(db: Any) -> int:
        async with db.begin() as conn:
            if not await _app_exists(conn, args.app):
                return _no_app(args.app)
            count = await consent_repo.import_records(conn, events)
        print(f"imported {count} consent records into {args.app}")
        return 0

    return _with_db(settings, work)


def cmd_consent_form_key(args: argparse.Namespace, settings: Settings) -> int:
    """Print the app's form key and an example form."""
    from sojourn.domain.optin import form_key

    key = form_key(args.app, settings.consent_key)
    print(key)
    print(
        f"\nexample form:\n<form method='post' action='{settings.effective_public_url}/optin/{args.app}'>\n"
        f"  <input type='hidden' name='form_key' value='{key}'>\n"
        "  <input type='hidden' name='consent_text' value='Monthly news from us. Unsubscribe any time.'>\n"
        "  <input type='email' name='address'> <button>Subscribe</button>\n</form>",
        file=sys.stderr,
    )
    return 0


def cmd_consent_require(args: argparse.Namespace, settings: Settings) -> int:
    """Turn RequireConsent on or off."""
    from sojourn.store import consent_repo

    async def work(db: Any) -> int:
        async with db.begin() as conn:
            if not await _app_exists(conn, args.app):
                return _no_app(args.app)
            await consent_repo.require_consent(conn, args.app, args.state == "on")
        print(f"RequireConsent is {args.state} for application {args.app}")
        return 0

    return _with_db(settings, work)


async def _print_report(conn: Any, app_id: str, days: int) -> int:
    from sojourn.store import hygiene_repo

    now = datetime.now(UTC)
    found = await hygiene_repo.unengaged_endpoints(conn, app_id, days=days, now=now)
    policy = await hygiene_repo.load_policy(conn, app_id)
    since = (now - timedelta(days=days)).date().isoformat()
    print(
        f"application {app_id}: {len(found)} unengaged endpoints "
        f"(created before {since}, mailed since {since}, no open or click since {since})"
    )
    if policy is not None:
        state = "enabled" if policy.enabled else "disabled"
        print(f"stored policy: {policy.policy}, {policy.days} days, {state}")
    else:
        print("stored policy: none (sojourn hygiene enable sets one)")
    if found:
        print(f"sample ({min(SAMPLE_SIZE, len(found))} of {len(found)}):")
        for u in found[:SAMPLE_SIZE]:
            print(
                f"  {u.endpoint_id}  {u.address or '-'}  last sent {u.last_sent_at.isoformat(timespec='seconds')}"
            )
    return len(found)


def _check_days(days: int) -> str | None:
    from sojourn.domain.hygiene import check_days

    try:
        check_days(days)
    except ValueError as err:
        return str(err)
    return None


def cmd_hygiene_report(args: argparse.Namespace, settings: Settings) -> int:
    """The dry-run report."""
    problem = _check_days(args.days)
    if problem:
        print(problem, file=sys.stderr)
        return 2

    async def work(db: Any) -> int:
        async with db.connect() as conn:
            if not await _app_exists(conn, args.app):
                return _no_app(args.app)
            await _print_report(conn, args.app, args.days)
        return 0

    return _with_db(settings, work)


def cmd_hygiene_enable(args: argparse.Namespace, settings: Settings) -> int:
    """Report, store the policy, start or wake the SunsetWorkflow."""
    from sojourn.engine.client import connect
    from sojourn.engine.sunset_workflow import ensure_sunset_workflow
    from sojourn.store import hygiene_repo

    problem = _check_days(args.days)
    if problem:
        print(problem, file=sys.stderr)
        return 2

    async def work(db: Any) -> int:
        async with db.begin() as conn:
            if not await _app_exists(conn, args.app):
                return _no_app(args.app)
            await _print_report(conn, args.app, args.days)
            await hygiene_repo.save_policy(conn, args.app, enabled=True, days=args.days, policy=args.policy)
        client = await connect(settings)
        workflow_id = await ensure_sunset_workflow(
            client, args.app, task_queue=settings.task_queue, observe=settings.temporal_search_attributes
        )
        print(f"policy {args.policy} ({args.days} days) enabled; workflow {workflow_id} runs it daily")
        return 0

    return _with_db(settings, work)


def cmd_hygiene_disable(args: argparse.Namespace, settings: Settings) -> int:
    """Disable the stored policy (the workflow ends at its next pass)."""
    from sojourn.store import hygiene_repo

    async def work(db: Any) -> int:
        async with db.begin() as conn:
            policy = await hygiene_repo.load_policy(conn, args.app)
            if policy is None:
                print(f"application {args.app} has no sunset policy", file=sys.stderr)
                return 2
            await hygiene_repo.save_policy(
                conn, args.app, enabled=False, days=policy.days, policy=policy.policy
            )
        print(f"sunset policy disabled for {args.app}; its workflow ends at its next daily pass")
        return 0

    return _with_db(settings, work)
