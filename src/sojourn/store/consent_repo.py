"""The consent ledger and channel permissions: who agreed to what, when, how; export and erasure per contact.

Every change of an endpoint's permission for a channel appends a ``consent`` row and sets the endpoint's
``channel_permissions`` row (what the send path reads) in the same transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.store.endpoint_rows import upsert_endpoints
from sojourn.store.suppression_repo import normalize_address
from sojourn.store.suppression_tables import app_privacy, channel_permissions, consent, consent_erasures

STATUSES = ("granted", "withdrawn", "pending", "expired")
SOURCES = ("form", "import", "api", "confirmation", "sunset", "feedback", "unsubscribe", "keyword")
METHODS = ("single_opt_in", "double_opt_in")

EXPORT_COLUMNS = (
    "id", "app_id", "endpoint_id", "address", "channel", "status", "recorded_at", "source", "method", "ip",
    "user_agent", "consent_text", "reason",
)  # fmt: skip


@dataclass(frozen=True)
class ConsentEvent:
    """One change of permission to record."""

    app_id: str
    channel: str
    status: str
    source: str
    endpoint_id: str | None = None
    address: str | None = None
    method: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    consent_text: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"consent status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.source not in SOURCES:
            raise ValueError(f"consent source {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.method is not None and self.method not in METHODS:
            raise ValueError(f"consent method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.endpoint_id is None and self.address is None:
            raise ValueError("a consent record needs an endpoint id or an address")


async def record(
    conn: AsyncConnection, event: ConsentEvent, *, at: datetime | None = None, update_permission: bool = True
) -> int:
    """Append ``event`` to the ledger and, for an endpoint, set its permission for the channel.

    Args:
        conn: A connection inside a transaction.
        event: What changed.
        at: When (default: the database's now()).
        update_permission: False to record history only, when another mechanism holds the state (an
            unsubscribe is OptOut ALL on the endpoint, which the Pinpoint API can set back to NONE).

    Returns:
        The consent row's id.
    """
    values: dict[str, Any] = {
        "app_id": event.app_id,
        "endpoint_id": event.endpoint_id,
        "address": normalize_address(event.address) if event.address else None,
        "channel": event.channel,
        "status": event.status,
        "source": event.source,
        "method": event.method,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "consent_text": event.consent_text,
        "reason": event.reason,
    }
    if at is not None:
        values["recorded_at"] = at
    row_id = await conn.scalar(consent.insert().values(**values).returning(consent.c.id))
    if event.endpoint_id is not None and update_permission:
        await set_permission(conn, event.app_id, event.endpoint_id, event.channel, event.status, at=at)
    return int(row_id or 0)


async def record_history(conn: AsyncConnection, events: Sequence[ConsentEvent]) -> int:
    """Append many ledger rows in one statement, without touching permissions (bulk history, e.g. sunset).

    Returns:
        How many rows were appended.
    """
    if not events:
        return 0
    await conn.execute(
        consent.insert(),
        [
            {
                "app_id": e.app_id,
                "endpoint_id": e.endpoint_id,
                "address": normalize_address(e.address) if e.address else None,
                "channel": e.channel,
                "status": e.status,
                "source": e.source,
                "method": e.method,
                "ip": e.ip,
                "user_agent": e.user_agent,
                "consent_text": e.consent_text,
                "reason": e.reason,
            }
            for e in events
        ],
    )
    return len(events)


async def name_consent_source(conn: AsyncConnection, source: str) -> None:
    """For the rest of the transaction, OptOut changes are recorded in the ledger with ``source``.

    The database records every endpoint OptOut change in the consent ledger (a trigger; source ``api`` by
    default). Writers that record their own, richer row pass ``"none"`` to skip the automatic one.
    """
    await conn.execute(text("SELECT set_config('sojourn.consent_source', :s, true)"), {"s": source})


async def set_permission(
    conn: AsyncConnection,
    app_id: str,
    endpoint_id: str,
    channel: str,
    status: str,
    *,
    at: datetime | None = None,
) -> None:
    """Set the endpoint's current permission for ``channel`` (use :func:`record` to keep the ledger too).

    With ``at`` (a back-dated record, e.g. an import), a permission set later than ``at`` is kept.
    """
    values: dict[str, Any] = {
        "app_id": app_id,
        "endpoint_id": endpoint_id,
        "channel": channel,
        "status": status,
    }
    if at is not None:
        values["updated_at"] = at
    stmt = pg_insert(channel_permissions).values(**values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                channel_permissions.c.app_id,
                channel_permissions.c.endpoint_id,
                channel_permissions.c.channel,
            ],
            set_={"status": stmt.excluded.status, "updated_at": stmt.excluded.updated_at},
            where=channel_permissions.c.updated_at <= stmt.excluded.updated_at,
        )
    )


async def permission(conn: AsyncConnection, app_id: str, endpoint_id: str, channel: str) -> str | None:
    """The endpoint's current permission for ``channel`` (None: never recorded)."""
    value = await conn.scalar(
        text(
            "SELECT status FROM channel_permissions WHERE app_id = :a AND endpoint_id = :e AND channel = :c"
        ),
        {"a": app_id, "e": endpoint_id, "c": channel},
    )
    return str(value) if value is not None else None


async def require_consent(conn: AsyncConnection, app_id: str, required: bool) -> None:
    """Turn the app's RequireConsent on or off (on: only endpoints with granted consent are reachable)."""
    stmt = pg_insert(app_privacy).values(app_id=app_id, require_consent=required)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[app_privacy.c.app_id],
            set_={"require_consent": stmt.excluded.require_consent, "updated_at": text("now()")},
        )
    )


async def endpoint_ids_for_address(
    conn: AsyncConnection, app_id: str, address: str, channel: str | None = None
) -> list[str]:
    """The app's endpoints whose address is ``address`` (case-insensitively), of ``channel`` when given."""
    rows = await conn.execute(
        text(
            "SELECT id FROM endpoints WHERE app_id = :a AND lower(btrim(address)) = :x "
            "AND (CAST(:c AS text) IS NULL OR channel_type = :c) ORDER BY id"
        ),
        {"a": app_id, "x": normalize_address(address), "c": channel},
    )
    return [str(r[0]) for r in rows]


async def endpoint_channel(conn: AsyncConnection, app_id: str, endpoint_id: str) -> str | None:
    """The endpoint's ChannelType (None: no such endpoint, or none set)."""
    value = await conn.scalar(
        text("SELECT channel_type FROM endpoints WHERE app_id = :a AND id = :e"),
        {"a": app_id, "e": endpoint_id},
    )
    return str(value) if value is not None else None


async def contact_records(conn: AsyncConnection, app_id: str, address: str) -> list[dict[str, Any]]:
    """Every consent row about the contact: by address, or by an endpoint that has the address, oldest first."""
    ids = await endpoint_ids_for_address(conn, app_id, address)
    rows = await conn.execute(
        text(
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM consent "
            "WHERE app_id = :a AND (address = :x OR endpoint_id = ANY(:ids)) ORDER BY recorded_at, id"
        ),
        {"a": app_id, "x": normalize_address(address), "ids": ids},
    )
    return [dict(r._mapping) for r in rows]


def export_json(records: Sequence[dict[str, Any]]) -> str:
    """Consent records as a JSON array (timestamps in ISO 8601)."""
    return json.dumps(
        [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()} for r in records],
        indent=2,
    )


def export_csv(records: Sequence[dict[str, Any]]) -> str:
    """Consent records as CSV with a header row (timestamps in ISO 8601)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()})
    return out.getvalue()


def address_hash(address: str) -> str:
    """sha256 hex of the normalised address: names an erased contact without keeping the address."""
    return hashlib.sha256(normalize_address(address).encode()).hexdigest()


async def erase_contact(conn: AsyncConnection, app_id: str, address: str) -> dict[str, int]:
    """Erase a contact's personal data from the app, keeping the suppression entry (which must outlive it).

    Deletes the endpoints with the address and their events, participant rows and permissions, every consent
    row about them, blanks the address on their message ledger rows (ids and outcomes stay for metrics),
    and records an erasure marker that holds only the address's hash. Contact lists are the account's, not an
    app's, so the address's contacts in every list and its Subscription events go too (the suppression entry
    still keeps an unsubscribed address from being sent to).

    Returns:
        How many rows of each kind were removed or blanked.
    """
    x = normalize_address(address)
    ids = await endpoint_ids_for_address(conn, app_id, address)
    counts: dict[str, int] = {}
    statements = {
        "consent": "DELETE FROM consent WHERE app_id = :a AND (address = :x OR endpoint_id = ANY(:ids))",
        "channel_permissions": "DELETE FROM channel_permissions WHERE app_id = :a AND endpoint_id = ANY(:ids)",
        "events": "DELETE FROM events WHERE app_id = :a AND endpoint_id = ANY(:ids)",
        "participants": "DELETE FROM participants WHERE app_id = :a AND endpoint_id = ANY(:ids)",
        "messages": "UPDATE messages SET address = NULL WHERE app_id = :a AND endpoint_id = ANY(:ids)",
        "endpoints": "DELETE FROM endpoints WHERE app_id = :a AND id = ANY(:ids)",
        "contacts": "DELETE FROM contacts WHERE email_address = :x",
        "subscription_events": "DELETE FROM subscription_events WHERE email_address = :x",
    }
    for name, sql in statements.items():
        result = await conn.execute(text(sql), {"a": app_id, "x": x, "ids": ids})
        counts[name] = int(result.rowcount or 0)
    await conn.execute(
        consent_erasures.insert().values(app_id=app_id, address_sha256=address_hash(address), counts=counts)
    )
    return counts


@dataclass(frozen=True)
class PendingOptIn:
    """The endpoint an opt-in form made pending, or found already granted."""

    endpoint_id: str
    already_granted: bool


async def start_pending_optin(
    conn: AsyncConnection,
    app_id: str,
    address: str,
    *,
    endpoint_id: str,
    endpoint_body: dict[str, Any],
    consent_text: str,
    ip: str | None,
    user_agent: str | None,
    channel: str = "EMAIL",
) -> PendingOptIn:
    """Create or update the sign-up's endpoint and mark its permission for ``channel`` pending (double opt-in).

    An endpoint already granted for the channel stays as it is (nothing to confirm again). Otherwise the
    endpoint is upserted with ``endpoint_body`` (OptOut NONE: the form is a fresh request) and a
    ``pending`` consent row records the form's text, ip and user agent.

    Args:
        conn: A connection inside a transaction; the app must exist.
        app_id: The app.
        address: The email address (EMAIL) or E.164 phone number (SMS).
        endpoint_id: The id to use when the app has no EMAIL endpoint with the address.
        endpoint_body: EndpointRequest fields from the form (User, Attributes).
        consent_text: What the contact agrees to, as shown on the form.
        ip: The form submitter's IP address.
        user_agent: The form submitter's user agent.
        channel: The endpoint's ChannelType: EMAIL or SMS.
    """
    existing = await endpoint_ids_for_address(conn, app_id, address, channel)
    if existing:
        endpoint_id = existing[0]
        if await permission(conn, app_id, endpoint_id, channel) == "granted":
            return PendingOptIn(endpoint_id, already_granted=True)
    body = {**endpoint_body, "ChannelType": channel, "Address": address.strip(), "OptOut": "NONE"}
    await name_consent_source(conn, "none")  # the pending row below says it all
    await upsert_endpoints(conn, app_id, [(endpoint_id, body)], request_id=None)
    await record(
        conn,
        ConsentEvent(
            app_id=app_id,
            endpoint_id=endpoint_id,
            address=address,
            channel=channel,
            status="pending",
            source="form",
            method="double_opt_in",
            ip=ip,
            user_agent=user_agent,
            consent_text=consent_text,
        ),
    )
    return PendingOptIn(endpoint_id, already_granted=False)


IMPORT_STATUSES = ("granted", "withdrawn")
#: Permissions are kept per endpoint ChannelType (what the reachability rule compares), so imports name one.
IMPORT_CHANNELS = (
    "EMAIL", "SMS", "VOICE", "GCM", "APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "ADM", "BAIDU",
    "CUSTOM",
)  # fmt: skip
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def check_import_address(channel: str, address: str) -> str | None:
    """Why ``address`` cannot be a contact's address on ``channel`` (None: it can)."""
    if channel == "EMAIL" and "@" not in address:
        return f"address {address!r} is not an email address"
    if channel in ("SMS", "VOICE") and not _E164.fullmatch(address):
        return f"address {address!r} is not an E.164 phone number (e.g. +12065550100)"
    if not address:
        return "address is required"
    return None


def parse_import(rows: Sequence[dict[str, Any]], app_id: str) -> list[tuple[ConsentEvent, datetime | None]]:
    """Consent records to import (from a CSV or JSON export of another system), checked, oldest first.

    Each row: ``address`` (required: an email address, or an E.164 number for SMS and VOICE), ``status``
    granted|withdrawn (required), and optionally ``channel`` (an endpoint ChannelType, default EMAIL),
    ``recorded_at`` (ISO 8601), ``method``, ``ip``, ``user_agent``, ``consent_text``, ``endpoint_id``.

    Raises:
        ValueError: naming the first bad row (1-based, as a person counts data rows) and field.
    """
    out: list[tuple[ConsentEvent, datetime | None]] = []
    for i, row in enumerate(rows, start=1):
        address = str(row.get("address") or "").strip()
        channel = str(row.get("channel") or "EMAIL").strip().upper()
        if channel not in IMPORT_CHANNELS:
            raise ValueError(
                f"row {i}: channel {channel!r} is not an endpoint ChannelType ({', '.join(IMPORT_CHANNELS)})"
            )
        problem = check_import_address(channel, address)
        if problem is not None:
            raise ValueError(f"row {i}: {problem}")
        status = str(row.get("status") or "")
        if status not in IMPORT_STATUSES:
            raise ValueError(f"row {i}: status {status!r} must be granted or withdrawn")
        when: datetime | None = None
        if row.get("recorded_at"):
            try:
                when = datetime.fromisoformat(str(row["recorded_at"]).replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"row {i}: recorded_at {row['recorded_at']!r} is not ISO 8601") from None
            if when.tzinfo is None:
                raise ValueError(f"row {i}: recorded_at {row['recorded_at']!r} needs a time zone (e.g. Z)")
        try:
            event = ConsentEvent(
                app_id=app_id,
                endpoint_id=str(row["endpoint_id"]) if row.get("endpoint_id") else None,
                address=address,
                channel=channel,
                status=status,
                source="import",
                method=str(row["method"]) if row.get("method") else None,
                ip=str(row["ip"]) if row.get("ip") else None,
                user_agent=str(row["user_agent"]) if row.get("user_agent") else None,
                consent_text=str(row["consent_text"]) if row.get("consent_text") else None,
            )
        except ValueError as err:
            raise ValueError(f"row {i}: {err}") from None
        out.append((event, when))
    # Oldest first, so the last one sets the endpoint's current permission.
    return sorted(out, key=lambda item: item[1].timestamp() if item[1] else float("inf"))


async def import_records(
    conn: AsyncConnection, events: Sequence[tuple[ConsentEvent, datetime | None]]
) -> int:
    """Record imported consent, in the caller's transaction (all or nothing).

    Rows without an endpoint id go to the app's endpoint of the row's channel with the address, when there is
    one. An imported
    row sets the endpoint's current permission only when it is newer than the permission's last change.

    Returns:
        How many rows were recorded.
    """
    for event, when in events:
        if event.endpoint_id is None and event.address is not None:
            ids = await endpoint_ids_for_address(conn, event.app_id, event.address, event.channel)
            if ids:
                event = replace(event, endpoint_id=ids[0])
        await record(conn, event, at=when)
    return len(events)
