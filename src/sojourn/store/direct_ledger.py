"""Direct sends in the message ledger: recipients' reachability, claims, results, delivery reports, opt-outs.

Direct messages are ``messages`` rows with ``journey_id`` and ``campaign_id`` NULL; a message to a raw address
has ``endpoint_id`` '' (no endpoint). Their provider-side facts live in ``message_deliveries``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.store.message_ledger import skip_reason_sql
from sojourn.store.suppression_repo import suppressed_addresses

#: ``messages.endpoint_id`` of a message sent to a raw address.
NO_ENDPOINT = ""

#: ``address_opt_outs.app_id`` of a number that opted out of every app: a STOP from a number no app has an
#: endpoint for (the account's opt-out list, as AWS keeps for SMS).
EVERY_APP = "*"


async def endpoints_with_reasons(
    conn: AsyncConnection, app_id: str, endpoint_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Each requested endpoint's row plus ``skip_reason`` (the ledger's reachability rule); missing ones too.

    Returns:
        Endpoint id -> row (column name -> value; only ``skip_reason`` ``ENDPOINT_MISSING`` when absent).
    """
    if not endpoint_ids:
        return {}
    rows = await conn.execute(
        text(
            f"""
            SELECT k.requested_id, e.*, {skip_reason_sql("e.channel_type")} AS skip_reason
            FROM unnest(CAST(:ids AS text[])) AS k(requested_id)
            LEFT JOIN endpoints e ON e.app_id = :a AND e.id = k.requested_id
            """
        ),
        {"a": app_id, "ids": list(endpoint_ids)},
    )
    return {r.requested_id: dict(r._mapping) for r in rows}


async def users_endpoints_with_reasons(
    conn: AsyncConnection, app_id: str, user_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Every endpoint of each user (oldest first) with ``skip_reason``; users without endpoints map to []."""
    found: dict[str, list[dict[str, Any]]] = {u: [] for u in user_ids}
    if not user_ids:
        return found
    rows = await conn.execute(
        text(
            f"""
            SELECT e.*, {skip_reason_sql("e.channel_type")} AS skip_reason
            FROM endpoints e
            WHERE e.app_id = :a AND e.user_id = ANY(CAST(:u AS text[]))
            ORDER BY e.creation_date, e.id
            """
        ),
        {"a": app_id, "u": list(user_ids)},
    )
    for r in rows:
        found[r.user_id].append(dict(r._mapping))
    return found


async def address_skip_reasons(
    conn: AsyncConnection, app_id: str, targets: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Why raw addresses (no endpoint row) may not be sent to: (channel, address) -> reason; absent = sendable.

    ``SUPPRESSED`` when an email address is on the account suppression list for an enforced reason;
    ``ADDRESS_OPT_OUT`` when the address opted out of the channel (an SMS STOP) or an endpoint of the app with
    that address has OptOut ALL.
    """
    pairs = sorted(set(targets))
    if not pairs:
        return {}
    rows = await conn.execute(
        text(
            """
            SELECT t.channel, t.address
            FROM unnest(CAST(:channels AS text[]), CAST(:addresses AS text[])) AS t(channel, address)
            WHERE EXISTS (SELECT 1 FROM address_opt_outs o
                          WHERE o.app_id IN (:a, '*') AND o.channel = t.channel AND o.address = t.address)
               OR EXISTS (SELECT 1 FROM endpoints e
                          WHERE e.app_id = :a AND e.address = t.address AND e.opt_out = 'ALL')
            """
        ),
        {"a": app_id, "channels": [c for c, _ in pairs], "addresses": [a for _, a in pairs]},
    )
    reasons = {(r.channel, r.address): "ADDRESS_OPT_OUT" for r in rows}
    emails = [address for channel, address in pairs if channel == "EMAIL"]
    for address in await suppressed_addresses(conn, emails) if emails else set():
        reasons[("EMAIL", address)] = "SUPPRESSED"
    return reasons


@dataclass(frozen=True)
class Claim:
    """One ledger row to claim for a direct message."""

    message_id: str
    channel: str
    endpoint_id: str
    address: str | None
    skip_reason: str | None = None


@dataclass(frozen=True)
class DeliveryMeta:
    """What every message of one request shares."""

    app_id: str
    request_id: str
    trace_id: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


async def claim_direct(
    conn: AsyncConnection, meta: DeliveryMeta, claims: Sequence[Claim], now: datetime
) -> None:
    """Insert the ledger rows (``pending``, or ``skipped`` with the reason) and their delivery rows."""
    if not claims:
        return
    await conn.execute(
        text(
            """
            INSERT INTO messages (message_id, app_id, endpoint_id, channel, address, status, status_message,
                                  created_at)
            SELECT m, :a, e, c, ad, CASE WHEN r IS NULL THEN 'pending' ELSE 'skipped' END, r, :now
            FROM unnest(CAST(:ids AS text[]), CAST(:eps AS text[]), CAST(:chs AS text[]),
                        CAST(:ads AS text[]), CAST(:rs AS text[])) AS t(m, e, c, ad, r)
            ON CONFLICT (message_id) DO NOTHING
            """
        ),
        {
            "a": meta.app_id,
            "now": now,
            "ids": [c.message_id for c in claims],
            "eps": [c.endpoint_id for c in claims],
            "chs": [c.channel for c in claims],
            "ads": [c.address for c in claims],
            "rs": [c.skip_reason for c in claims],
        },
    )
    await conn.execute(
        text(
            """
            INSERT INTO message_deliveries (message_id, channel, request_id, trace_id, context)
            SELECT m, c, :req, :trace, CAST(:ctx AS jsonb)
            FROM unnest(CAST(:ids AS text[]), CAST(:chs AS text[])) AS t(m, c)
            ON CONFLICT (message_id) DO NOTHING
            """
        ),
        {
            "req": meta.request_id,
            "trace": meta.trace_id,
            "ctx": json.dumps(dict(meta.context)),
            "ids": [c.message_id for c in claims],
            "chs": [c.channel for c in claims],
        },
    )


@dataclass(frozen=True)
class Outcome:
    """What the provider or relay said about one message."""

    message_id: str
    delivery_status: str
    status_code: int
    status_message: str
    provider_message_id: str | None = None


async def record_outcomes(conn: AsyncConnection, outcomes: Sequence[Outcome]) -> None:
    """Write each message's provider answer; failed messages become ``failed`` in the ledger.

    Accepted messages were already marked ``sent`` by the provider's commit callback.
    """
    if not outcomes:
        return
    await conn.execute(
        text(
            """
            UPDATE message_deliveries d
            SET delivery_status = t.s, status_code = t.code, status_message = t.msg,
                provider_message_id = COALESCE(t.pid, d.provider_message_id), updated_at = now()
            FROM unnest(CAST(:ids AS text[]), CAST(:ss AS text[]), CAST(:codes AS int[]),
                        CAST(:msgs AS text[]), CAST(:pids AS text[])) AS t(m, s, code, msg, pid)
            WHERE d.message_id = t.m
            """
        ),
        {
            "ids": [o.message_id for o in outcomes],
            "ss": [o.delivery_status for o in outcomes],
            "codes": [o.status_code for o in outcomes],
            "msgs": [o.status_message[:500] for o in outcomes],
            "pids": [o.provider_message_id for o in outcomes],
        },
    )
    failed = [o for o in outcomes if o.delivery_status != "SUCCESSFUL"]
    if failed:
        await conn.execute(
            text(
                """
                UPDATE messages m SET status = 'failed', status_message = left(t.why, 500),
                                      attempts = m.attempts + 1
                FROM unnest(CAST(:ids AS text[]), CAST(:whys AS text[])) AS t(id, why)
                WHERE m.message_id = t.id AND m.status IN ('pending', 'sent')
                """
            ),
            {
                "ids": [o.message_id for o in failed],
                "whys": [f"{o.delivery_status}: {o.status_code} {o.status_message}" for o in failed],
            },
        )


# ---- delivery reports (callbacks) ----


async def find_message(
    conn: AsyncConnection, channel: str, *, message_id: str | None, provider_message_id: str | None
) -> dict[str, Any] | None:
    """The ledger row (with its delivery row) a delivery report names, by sojourn's id or the provider's.

    A provider id is looked up within the channel; should a provider ever reuse one, the newest message wins.
    """
    if message_id:
        where, params = "m.message_id = :id", {"id": message_id}
    elif provider_message_id:
        where, params = (
            "d.channel = :ch AND d.provider_message_id = :pid",
            {"ch": channel, "pid": provider_message_id},
        )
    else:
        return None
    row = (
        await conn.execute(
            text(
                f"""
                SELECT m.*, d.provider_message_id, d.context, d.request_id, d.trace_id
                FROM messages m LEFT JOIN message_deliveries d ON d.message_id = m.message_id
                WHERE {where}
                ORDER BY m.created_at DESC
                LIMIT 1
                """
            ),
            params,
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def apply_report(
    conn: AsyncConnection, message_id: str, *, delivered: bool | None, status: str, reason: str
) -> None:
    """Record a delivery report: ``delivered`` True keeps ``sent``; False marks the message ``failed``."""
    if delivered is False:
        await conn.execute(
            text(
                "UPDATE messages SET status = 'failed', status_message = left(:why, 500) "
                "WHERE message_id = :id AND status IN ('pending', 'sent')"
            ),
            {"id": message_id, "why": f"{status}: {reason}"},
        )
    await conn.execute(
        text(
            """
            INSERT INTO message_deliveries (message_id, channel, delivery_status, status_message)
            SELECT message_id, channel, :s, :why FROM messages WHERE message_id = :id
            ON CONFLICT (message_id) DO UPDATE
            SET delivery_status = excluded.delivery_status, status_message = excluded.status_message,
                updated_at = now()
            """
        ),
        {"id": message_id, "s": status, "why": reason[:500]},
    )


async def opt_out(conn: AsyncConnection, app_id: str, channel: str, address: str, endpoint_id: str) -> int:
    """An opt-out (SMS STOP): the endpoint (or every ACTIVE endpoint with the address) gets OptOut ALL.

    The address is also remembered in ``address_opt_outs`` so raw-address sends honour it.

    Returns:
        How many endpoints changed.
    """
    await conn.execute(
        text(
            "INSERT INTO address_opt_outs (app_id, channel, address) VALUES (:a, :c, :ad) ON CONFLICT DO NOTHING"
        ),
        {"a": app_id, "c": channel, "ad": address},
    )
    result = await conn.execute(
        text(
            """
            UPDATE endpoints SET opt_out = 'ALL', effective_date = now()
            WHERE app_id = :a AND opt_out <> 'ALL'
              AND (id = :e OR (address = :ad AND channel_type = :c))
            """
        ),
        {"a": app_id, "e": endpoint_id, "ad": address, "c": channel},
    )
    return int(result.rowcount or 0)


async def opt_in_again(conn: AsyncConnection, app_id: str, channel: str, address: str) -> int:
    """An opt-in after an opt-out (SMS START): the address's endpoints of ``channel`` get OptOut NONE again and
    the address leaves ``address_opt_outs`` (also the every-app list: the number said START); the undoing of
    :func:`opt_out`.

    Returns:
        How many endpoints changed.
    """
    await conn.execute(
        text("DELETE FROM address_opt_outs WHERE app_id IN (:a, :every) AND channel = :c AND address = :ad"),
        {"a": app_id, "every": EVERY_APP, "c": channel, "ad": address},
    )
    result = await conn.execute(
        text(
            """
            UPDATE endpoints SET opt_out = 'NONE', effective_date = now()
            WHERE app_id = :a AND opt_out = 'ALL' AND address = :ad AND channel_type = :c
            """
        ),
        {"a": app_id, "ad": address, "c": channel},
    )
    return int(result.rowcount or 0)


async def opt_out_everywhere(conn: AsyncConnection, channel: str, address: str) -> bool:
    """An opt-out from an address no app has an endpoint for (an SMS STOP from an unknown number).

    The address goes on the every-app list: raw-address sends of every app refuse it, and an endpoint created
    later with that address starts with OptOut ALL (:func:`opted_out_addresses`), until the number sends START.

    Returns:
        Whether the address was not on the list before.
    """
    result = await conn.execute(
        text(
            "INSERT INTO address_opt_outs (app_id, channel, address) VALUES (:every, :c, :ad) "
            "ON CONFLICT DO NOTHING"
        ),
        {"every": EVERY_APP, "c": channel, "ad": address},
    )
    return bool(result.rowcount)


async def opt_in_everywhere(conn: AsyncConnection, channel: str, address: str) -> bool:
    """A START from an address no app has an endpoint for: it leaves the every-app list.

    Returns:
        Whether it was on the list.
    """
    result = await conn.execute(
        text("DELETE FROM address_opt_outs WHERE app_id = :every AND channel = :c AND address = :ad"),
        {"every": EVERY_APP, "c": channel, "ad": address},
    )
    return bool(result.rowcount)


async def opted_out_addresses(
    conn: AsyncConnection, app_id: str, channel: str, addresses: Iterable[str]
) -> set[str]:
    """Which of ``addresses`` opted out of ``channel`` in the app or in every app (``address_opt_outs``)."""
    wanted = sorted(set(addresses))
    if not wanted:
        return set()
    rows = await conn.execute(
        text(
            "SELECT DISTINCT address FROM address_opt_outs "
            "WHERE app_id IN (:a, :every) AND channel = :c AND address = ANY(:ads)"
        ),
        {"a": app_id, "every": EVERY_APP, "c": channel, "ads": wanted},
    )
    return {r.address for r in rows}
