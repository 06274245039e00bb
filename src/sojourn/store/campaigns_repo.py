"""Campaigns, their versions and runs in Postgres, and the campaign side of the message ledger.

A campaign message's id is md5(app/campaign/run key/treatment/endpoint) (:func:`campaign_message_id`), the
same on every retry of a send activity, so ``ON CONFLICT DO NOTHING`` makes every claim idempotent and a
retried activity never sends twice.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, literal_column, null, or_, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.store.message_ledger import (
    LIST_FILTER_JOIN,
    LIST_SKIP_REASON_SQL,
    ListFilter,
    json_param,
    list_filter_params,
    lock_endpoints,
    skip_reason_sql,
)
from sojourn.store.tables import endpoints


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def insert_campaign(
    conn: AsyncConnection,
    app_id: str,
    campaign_id: str,
    name: str,
    state: str,
    definition: dict[str, Any],
    tags: dict[str, str],
) -> None:
    """Store a new campaign as version 1."""
    await conn.execute(
        text(
            "INSERT INTO campaigns (app_id, id, name, state, version, definition, tags) "
            "VALUES (:a, :c, :n, :s, 1, CAST(:d AS jsonb), CAST(:t AS jsonb))"
        ),
        {"a": app_id, "c": campaign_id, "n": name, "s": state, "d": _json(definition), "t": _json(tags)},
    )
    await conn.execute(
        text(
            "INSERT INTO campaign_versions (campaign_id, version, definition) VALUES (:c, 1, CAST(:d AS jsonb))"
        ),
        {"c": campaign_id, "d": _json(definition)},
    )


async def get_campaign(
    conn: AsyncConnection, app_id: str, campaign_id: str, *, for_update: bool = False
) -> Any | None:
    """The campaign row, or None."""
    lock = " FOR UPDATE" if for_update else ""
    result = await conn.execute(
        text(f"SELECT * FROM campaigns WHERE app_id = :a AND id = :c{lock}"), {"a": app_id, "c": campaign_id}
    )
    return result.first()


async def campaign_by_name(conn: AsyncConnection, app_id: str, name: str) -> Any | None:
    """The app's most recent campaign named ``name``, or None (the CLI deploys by name)."""
    result = await conn.execute(
        text("SELECT * FROM campaigns WHERE app_id = :a AND name = :n ORDER BY created_at DESC LIMIT 1"),
        {"a": app_id, "n": name},
    )
    return result.first()


async def list_campaigns(conn: AsyncConnection, app_id: str, offset: int, limit: int) -> list[Any]:
    """A page of the app's campaigns, oldest first."""
    result = await conn.execute(
        text("SELECT * FROM campaigns WHERE app_id = :a ORDER BY created_at, id OFFSET :o LIMIT :l"),
        {"a": app_id, "o": offset, "l": limit},
    )
    return list(result)


async def update_definition(
    conn: AsyncConnection,
    app_id: str,
    campaign_id: str,
    *,
    name: str,
    definition: dict[str, Any],
    state: str,
) -> int:
    """Store ``definition`` as the campaign's next version; returns the new version number."""
    version = (
        await conn.execute(
            text(
                "UPDATE campaigns SET version = version + 1, name = :n, definition = CAST(:d AS jsonb), "
                "state = :s, updated_at = now() WHERE app_id = :a AND id = :c RETURNING version"
            ),
            {"a": app_id, "c": campaign_id, "n": name, "d": _json(definition), "s": state},
        )
    ).scalar_one()
    await conn.execute(
        text(
            "INSERT INTO campaign_versions (campaign_id, version, definition) VALUES (:c, :v, CAST(:d AS jsonb))"
        ),
        {"c": campaign_id, "v": version, "d": _json(definition)},
    )
    return int(version)


async def set_state(
    conn: AsyncConnection, app_id: str, campaign_id: str, state: str, *, unless: Sequence[str] = ()
) -> None:
    """Record the campaign's status (not over one of the ``unless`` states)."""
    await conn.execute(
        text("UPDATE campaigns SET state = :s WHERE app_id = :a AND id = :c AND NOT (state = ANY(:unless))"),
        {"a": app_id, "c": campaign_id, "s": state, "unless": list(unless)},
    )


async def delete_campaign(conn: AsyncConnection, app_id: str, campaign_id: str) -> None:
    """Remove the campaign, its versions, runs and waiting intake (its messages stay in the ledger)."""
    params = {"a": app_id, "c": campaign_id}
    await conn.execute(text("DELETE FROM campaigns WHERE app_id = :a AND id = :c"), params)
    for table in ("campaign_versions", "campaign_runs", "campaign_intake"):
        await conn.execute(text(f"DELETE FROM {table} WHERE campaign_id = :c"), params)


async def get_version(conn: AsyncConnection, campaign_id: str, version: int) -> Any | None:
    """One stored version, or None."""
    result = await conn.execute(
        text("SELECT * FROM campaign_versions WHERE campaign_id = :c AND version = :v"),
        {"c": campaign_id, "v": version},
    )
    return result.first()


async def list_versions(conn: AsyncConnection, campaign_id: str, offset: int, limit: int) -> list[Any]:
    """A page of versions, newest first (as Pinpoint lists them)."""
    result = await conn.execute(
        text(
            "SELECT * FROM campaign_versions WHERE campaign_id = :c ORDER BY version DESC OFFSET :o LIMIT :l"
        ),
        {"c": campaign_id, "o": offset, "l": limit},
    )
    return list(result)


async def list_runs(conn: AsyncConnection, campaign_id: str, offset: int, limit: int) -> list[Any]:
    """A page of the campaign's runs (one row per run and treatment), newest first."""
    result = await conn.execute(
        text(
            "SELECT * FROM campaign_runs WHERE campaign_id = :c "
            "ORDER BY scheduled_start DESC, run_key DESC, treatment_id OFFSET :o LIMIT :l"
        ),
        {"c": campaign_id, "o": offset, "l": limit},
    )
    return list(result)


async def start_run(
    conn: AsyncConnection,
    *,
    app_id: str,
    campaign_id: str,
    version: int,
    run_key: str,
    treatments: Sequence[int],
    scheduled_start: datetime,
    started_at: datetime,
    timezones_total: int,
    metrics: Mapping[str, int] | None = None,
) -> None:
    """Record a run as RUNNING, one row per treatment (a retried call changes nothing)."""
    for treatment_id in treatments:
        await conn.execute(
            text(
                "INSERT INTO campaign_runs (campaign_id, run_key, treatment_id, app_id, version, state, "
                "scheduled_start, started_at, timezones_total, metrics) "
                "VALUES (:c, :k, :t, :a, :v, 'RUNNING', :s, :st, :z, CAST(:m AS jsonb)) ON CONFLICT DO NOTHING"
            ),
            {
                "c": campaign_id,
                "k": run_key,
                "t": treatment_id,
                "a": app_id,
                "v": version,
                "s": scheduled_start,
                "st": started_at,
                "z": timezones_total,
                "m": _json(dict(metrics or {}) if treatment_id == 0 else {}),
            },
        )


async def shift_treatment_starts(
    conn: AsyncConnection, campaign_id: str, run_key: str, delays: Sequence[int]
) -> None:
    """Give each treatment's row of a run its own ScheduledStart: the run's plus the treatment's delay (seconds).

    Idempotent: only rows still at the run's own start (that of treatment 0, whose delay is always 0) move.
    """
    for treatment_id, delay in enumerate(delays):
        if not delay:
            continue
        await conn.execute(
            text(
                "UPDATE campaign_runs r SET scheduled_start = d.scheduled_start + make_interval(secs => :s) "
                "FROM campaign_runs d WHERE r.campaign_id = :c AND r.run_key = :k AND r.treatment_id = :t "
                "AND d.campaign_id = :c AND d.run_key = :k AND d.treatment_id = 0 "
                "AND r.scheduled_start = d.scheduled_start"
            ),
            {"c": campaign_id, "k": run_key, "t": treatment_id, "s": delay},
        )


async def finish_run(
    conn: AsyncConnection,
    *,
    campaign_id: str,
    run_key: str,
    ended_at: datetime,
    timezones_completed: int,
    extra: Mapping[str, int],
    result: str,
) -> dict[int, dict[str, int]]:
    """Close a run: its counts are read back from the message ledger (so they are exact under retries).

    Args:
        extra: Counts the ledger does not hold (HOLDOUT, EVENT_EXPIRED, MAXIMUM_DURATION, ...), added to
            the default treatment's row.

    Returns:
        The metrics written, per treatment.
    """
    rows = await conn.execute(
        text(
            "SELECT activity_id, COALESCE(status_message, status) AS what, count(*) AS n FROM messages "
            "WHERE campaign_id = :c AND activity_id LIKE :prefix GROUP BY 1, 2"
        ),
        {"c": campaign_id, "prefix": f"{run_key}-t%"},
    )
    per: dict[int, Counter[str]] = {}
    for activity_id, what, n in rows:
        treatment_id = int(str(activity_id).rsplit("-t", 1)[1])
        per.setdefault(treatment_id, Counter())[str(what).split(":", 1)[0]] += int(n)
    existing = await conn.execute(
        text("SELECT treatment_id, metrics FROM campaign_runs WHERE campaign_id = :c AND run_key = :k"),
        {"c": campaign_id, "k": run_key},
    )
    written: dict[int, dict[str, int]] = {}
    for treatment_id, stored in existing:
        counts = per.get(int(treatment_id), Counter())
        metrics = {k: int(v) for k, v in counts.items() if k not in ("pending", "sending")}
        if treatment_id == 0:
            for key, value in {**(stored or {}), **extra}.items():
                metrics[key] = int(value)
        sent = metrics.get("sent", 0)
        targeted = sum(v for k, v in counts.items())
        await conn.execute(
            text(
                "UPDATE campaign_runs SET state = 'COMPLETED', result = :r, ended_at = :e, targeted = :tg, "
                "sent = :sent, metrics = CAST(:m AS jsonb), timezones_completed = :zc "
                "WHERE campaign_id = :c AND run_key = :k AND treatment_id = :t"
            ),
            {
                "r": result,
                "e": ended_at,
                "tg": targeted,
                "sent": sent,
                "m": _json(metrics),
                "zc": timezones_completed,
                "c": campaign_id,
                "k": run_key,
                "t": treatment_id,
            },
        )
        written[int(treatment_id)] = metrics
    return written


async def bump_timezones_completed(conn: AsyncConnection, campaign_id: str, run_key: str, done: int) -> None:
    """Progress of a local-time run: ``done`` of its zone slices are sent."""
    await conn.execute(
        text(
            "UPDATE campaign_runs SET timezones_completed = GREATEST(timezones_completed, :d) "
            "WHERE campaign_id = :c AND run_key = :k"
        ),
        {"c": campaign_id, "k": run_key, "d": done},
    )


# ---------------------------------------------------------------------------------------------------------
# The audience and the ledger


def campaign_message_id(
    app_id: str, campaign_id: str, run_key: str, treatment_id: int, endpoint_id: str
) -> str:
    """The deterministic id of one campaign message (retries find the same ledger row)."""
    key = f"{app_id}/{campaign_id}/{run_key}/{treatment_id}/{endpoint_id}"
    return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()


def activity_id_of(run_key: str, treatment_id: int) -> str:
    """The Pinpoint activity id of one treatment's share of a run (``messages.activity_id``)."""
    return f"{run_key}-t{treatment_id}"


# The endpoint's JSONB columns. Most are empty objects on most endpoints; the audience queries send those as
# NULL and the rows get a fresh ``{}`` back, which spares decoding millions of ``{}`` texts in a blast.
_OBJECT_COLUMNS = ("user_attributes", "attributes", "metrics", "demographic", "location")


def _audience_columns() -> list[ColumnElement[Any]]:
    """Every column of ``endpoints``, the JSONB ones NULL when they hold ``{}`` (see :func:`_endpoint_rows`)."""
    e = endpoints
    empty = literal_column("'{}'::jsonb", JSONB)
    return [
        case((c == empty, null()), else_=c).label(c.name) if c.name in _OBJECT_COLUMNS else c for c in e.c
    ]


def _endpoint_rows(result: Any) -> list[dict[str, Any]]:
    """The rows of an :func:`_audience_columns` query as dicts, with ``{}`` for the JSONB columns sent as NULL."""
    # zip over plain tuples: building each row's RowMapping first costs more than the dict itself.
    keys = tuple(result.keys())
    objects = [name for name in keys if name in _OBJECT_COLUMNS]
    rows = [dict(zip(keys, r, strict=True)) for r in result]
    for row in rows:
        for name in objects:
            if row[name] is None:
                row[name] = {}
    return rows


async def audience_page(
    conn: AsyncConnection,
    app_id: str,
    clause: ColumnElement[bool],
    *,
    after: str | None,
    limit: int,
    zones: Sequence[str] | None = None,
    part: tuple[int, int] = (0, 1),
) -> list[dict[str, Any]]:
    """The next ``limit`` segment members (whole endpoint rows) after endpoint id ``after``, in id order.

    Keyset paging: the audience is streamed, never held whole.

    Args:
        zones: Only endpoints whose ``Demographic.Timezone`` is one of these ("" for none); None: all.
        part: (i, n): only the endpoints whose CohortId % n == i (a run sent in n concurrent parts).
    """
    e = endpoints
    query = select(*_audience_columns()).where(e.c.app_id == app_id, clause)
    index, parts = part
    if parts > 1:
        # CohortId is 0-99 (endpoint_rows sets it): an IN list of the part's residues is the same test, and the
        # statistics estimate it (1/parts of the rows). The modulo alone was estimated at 0.5% of them, and the
        # planner then sorted the whole audience for every page. Values outside 0-99 keep the modulo test.
        query = query.where(
            or_(
                e.c.cohort_id.in_([c for c in range(100) if c % parts == index]),
                and_(or_(e.c.cohort_id < 0, e.c.cohort_id > 99), e.c.cohort_id % parts == index),
            )
        )
    if after is not None:
        query = query.where(e.c.id > after)
    if zones is not None:
        tz = e.c.demographic["Timezone"].astext
        named = [z for z in zones if z]
        conditions: list[ColumnElement[bool]] = [tz.in_(named)] if named else []
        if "" in zones:
            conditions.append(or_(tz.is_(None), tz == ""))
        query = query.where(or_(*conditions))
    return _endpoint_rows(await conn.execute(query.order_by(e.c.id).limit(limit)))


async def members_among(
    conn: AsyncConnection, app_id: str, clause: ColumnElement[bool], endpoint_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The endpoint rows of those of ``endpoint_ids`` that are segment members now, in id order."""
    if not endpoint_ids:
        return []
    e = endpoints
    return _endpoint_rows(
        await conn.execute(
            select(*_audience_columns())
            .where(e.c.app_id == app_id, e.c.id.in_(list(endpoint_ids)), clause)
            .order_by(e.c.id)
        )
    )


async def audience_zones(conn: AsyncConnection, app_id: str, clause: ColumnElement[bool]) -> list[str]:
    """The distinct ``Demographic.Timezone`` values of the segment's members ("" for members without one)."""
    e = endpoints
    tz = e.c.demographic["Timezone"].astext
    rows = await conn.execute(select(tz).where(e.c.app_id == app_id, clause).distinct())
    return sorted({r[0] or "" for r in rows})


@dataclass(frozen=True)
class CampaignCaps:
    """Per-endpoint caps of a campaign send; 0 means no cap.

    Attributes:
        daily: Messages from this campaign in the 24 hours before the send (``Limits.Daily``).
        total: Messages from this campaign over all runs (``Limits.Total``; targeted ones count, quiet-time
            drops included, as Pinpoint counts them).
        all_daily: Messages from all campaigns and journeys in 24 hours (the project's ``Limits.Daily``).
    """

    daily: int = 0
    total: int = 0
    all_daily: int = 0

    @property
    def active(self) -> bool:
        """Whether any cap is set."""
        return bool(self.daily or self.total or self.all_daily)


# The campaign's own caps of one target ``t`` over its endpoint's messages of this campaign. Daily counts what
# was sent or pending in the 24 hours before the send; Total counts everything targeted (failed and quiet-time
# drops too, as Pinpoint counts them). With a Total cap both are counted in one pass over the endpoint's
# messages, which that cap has to read anyway; a Daily cap alone reads only the last 24 hours. The campaign is
# tested in the counts, not in WHERE: there it let the planner read the campaign's whole run so far through
# ix_messages_campaign for every target of a campaign too new for the statistics (quadratic in the run).
_CAMPAIGN_DAILY = """
(SELECT CASE WHEN count(*) FILTER (WHERE c.campaign_id = :campaign_id) >= CAST(:daily AS int) THEN 'DAILY_CAP' END
 FROM messages c WHERE c.app_id = :app_id AND c.endpoint_id = t.endpoint_id AND c.status IN ('pending', 'sent')
   AND c.created_at > CAST(:now AS timestamptz) - interval '24 hours')
"""
_CAMPAIGN_DAILY_AND_TOTAL = """
(SELECT CASE
   WHEN CAST(:daily AS int) > 0 AND count(*) FILTER (
     WHERE c.campaign_id = :campaign_id AND c.status IN ('pending', 'sent')
       AND c.created_at > CAST(:now AS timestamptz) - interval '24 hours'
   ) >= CAST(:daily AS int) THEN 'DAILY_CAP'
   WHEN count(*) FILTER (
     WHERE c.campaign_id = :campaign_id
       AND (c.status IN ('pending', 'sent', 'failed') OR c.status_message = 'QUIET_TIME')
   ) >= CAST(:total AS int) THEN 'TOTAL_CAP'
 END
 FROM messages c WHERE c.app_id = :app_id AND c.endpoint_id = t.endpoint_id)
"""
# The project's Daily cap: messages of every campaign and journey to the endpoint in 24 hours.
_ALL_DAILY = """
(SELECT CASE WHEN count(*) >= CAST(:all_daily AS int) THEN 'DAILY_CAP' END
 FROM messages c WHERE c.app_id = :app_id AND c.endpoint_id = t.endpoint_id
   AND c.status IN ('pending', 'sent') AND c.created_at > CAST(:now AS timestamptz) - interval '24 hours')
"""


def campaign_cap_reason_sql(caps: CampaignCaps) -> str:
    """Why a target ``t`` is capped (``DAILY_CAP``, ``TOTAL_CAP``) or NULL, as SQL reading only the caps set.

    The campaign's Daily cap goes first, then its Total, then the project's Daily (``all_daily``).
    """
    parts = []
    if caps.total:
        parts.append(_CAMPAIGN_DAILY_AND_TOTAL)
    elif caps.daily:
        parts.append(_CAMPAIGN_DAILY)
    if caps.all_daily:
        parts.append(_ALL_DAILY)
    return f"COALESCE({', '.join(parts)}, NULL)" if parts else "NULL"


# The shared reachability rule for the channel each target is sent on. t.channel NULL (the treatment has no
# message for the endpoint's channel) is ENDPOINT_MISSING_CHANNEL; PUSH and CUSTOM targets were matched to the
# endpoint's own type (GCM, APNS, ...; CUSTOM's EndpointTypes) when they were picked.
_REACHABLE = skip_reason_sql(
    "(CASE WHEN t.channel IS NULL THEN '-' WHEN t.channel IN ('PUSH', 'CUSTOM') THEN e.channel_type "
    "ELSE t.channel END)"
)


def _targets_json(
    app_id: str,
    campaign_id: str,
    run_key: str,
    targets: Sequence[tuple[str, int, str | None]],
    channels: Sequence[str | None],
    message_ids: Sequence[str] | None,
    slots: Sequence[int | None] | None,
) -> str:
    """The claim's rows as one JSON text for ``json_to_recordset`` (see :func:`claim_campaign_emails`)."""
    activities = {tr: activity_id_of(run_key, tr) for tr in {tr for _, tr, _ in targets}}
    mids = (
        message_ids
        if message_ids is not None
        else [campaign_message_id(app_id, campaign_id, run_key, tr, ep) for ep, tr, _ in targets]
    )
    return orjson.dumps(
        [
            {
                "message_id": mid,
                "activity_id": activities[tr],
                "endpoint_id": ep,
                "reason": reason,
                "channel": channel,
                "l_slot": slot,
            }
            for mid, (ep, tr, reason), channel, slot in zip(
                mids, targets, channels, slots or [None] * len(targets), strict=True
            )
        ]
    ).decode()


async def claim_campaign_emails(
    conn: AsyncConnection,
    *,
    app_id: str,
    campaign_id: str,
    run_key: str,
    targets: Sequence[tuple[str, int, str | None]],
    now: datetime,
    caps: CampaignCaps,
    channels: Sequence[str | None] | None = None,
    list_filters: Mapping[int, ListFilter] | None = None,
    message_ids: Sequence[str] | None = None,
) -> dict[str, str]:
    """Insert a ledger row per target; unreachable, quiet-time or capped ones as ``skipped`` with the reason.

    When a cap is set the targets' endpoints are locked first (``pg_advisory_xact_lock`` in key order, shared
    with journeys), and the caps are counted by the statement that inserts: concurrent sends of any campaign or
    journey to one endpoint are serialized, so a cap holds.

    Args:
        targets: (endpoint id, treatment id, reason decided before the claim or None).
        now: The send's scheduled instant (caps count 24 hours back from it; rows are stamped with it).
        channels: Per target, the channel the treatment sends it on (EMAIL, SMS, PUSH, VOICE, CUSTOM), or None
            when the treatment has nothing for the endpoint's channel (ENDPOINT_MISSING_CHANNEL); default: EMAIL.
        list_filters: Per treatment whose email is list mail, its subscription test: unsubscribed recipients of
            the email are claimed as skipped (``UNSUBSCRIBED: ...``) by the same statement.
        message_ids: The targets' :func:`campaign_message_id`, when the caller has them already.

    Returns:
        The new rows: message id -> ``pending`` or the skip reason (rows claimed before are left out).
    """
    if not targets:
        return {}
    sent_on = list(channels) if channels is not None else ["EMAIL"] * len(targets)
    # The subscription test is the email's: a treatment's SMS or push to the same segment is not list mail.
    filters = [
        (list_filters or {}).get(treatment) if channel == "EMAIL" else None
        for (_, treatment, _), channel in zip(targets, sent_on, strict=True)
    ]
    lists = any(filters)
    filter_params: dict[str, list[Any]] = list_filter_params(filters) if lists else {}
    slots = filter_params.pop("l_slot", None)
    ids = [t[0] for t in targets]
    if caps.active:
        await lock_endpoints(
            conn,
            app_id,
            "SELECT json_array_elements_text(CAST(:lock_ids AS json)) AS endpoint_id",
            {"lock_ids": json_param(ids)},
        )
    result = await conn.execute(
        text(
            f"""
            INSERT INTO messages (message_id, app_id, campaign_id, activity_id, endpoint_id, channel, address,
                                  status, status_message, created_at)
            SELECT t.message_id, :app_id, :campaign_id, t.activity_id, t.endpoint_id,
                   COALESCE(t.channel, 'EMAIL'), e.address,
                   CASE WHEN r.reason IS NULL THEN 'pending' ELSE 'skipped' END, r.reason, :now
            -- One JSON text of the page's rows (message id, activity, endpoint, reason, channel, list slot):
            -- asyncpg encodes six text[] parameters of 500 elements at several times the CPU.
            FROM json_to_recordset(CAST(:targets AS json))
                 AS t(message_id text, activity_id text, endpoint_id text, reason text, channel text, l_slot int)
            {LIST_FILTER_JOIN if lists else ""}
            -- OFFSET 0 keeps both subqueries as they are written: the endpoint is one primary-key probe per
            -- target (the planner would otherwise hash the app's whole endpoints table for a page of a
            -- mid-sized app), and the reason is worked out once per target (inlined, the planner evaluated it
            -- once for the status and again for the status message).
            LEFT JOIN LATERAL (
                SELECT * FROM endpoints ep WHERE ep.app_id = :app_id AND ep.id = t.endpoint_id OFFSET 0
            ) e ON true
            CROSS JOIN LATERAL (
                SELECT COALESCE({_REACHABLE}, t.reason, {campaign_cap_reason_sql(caps)},
                                {LIST_SKIP_REASON_SQL if lists else "NULL"}) AS reason
                OFFSET 0
            ) r
            ON CONFLICT (message_id) DO NOTHING
            RETURNING message_id, COALESCE(status_message, status)
            """
        ),
        {
            "app_id": app_id,
            "campaign_id": campaign_id,
            "targets": _targets_json(app_id, campaign_id, run_key, targets, sent_on, message_ids, slots),
            "now": now,
            "daily": caps.daily,
            "total": caps.total,
            "all_daily": caps.all_daily,
            **filter_params,
        },
    )
    return {str(r[0]): str(r[1]) for r in result}


async def pending_of(conn: AsyncConnection, message_ids: Sequence[str]) -> set[str]:
    """Which of these messages are claimed and not yet sent."""
    rows = await conn.execute(
        text("SELECT message_id FROM messages WHERE message_id = ANY(:ids) AND status = 'pending'"),
        {"ids": list(message_ids)},
    )
    return {r[0] for r in rows}


# ---------------------------------------------------------------------------------------------------------
# Event campaigns


async def event_campaigns(conn: AsyncConnection, app_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The app's EVENT campaigns that take events now (not paused, deleted or completed)."""
    rows = await conn.execute(
        text(
            "SELECT id, definition FROM campaigns WHERE app_id = :a "
            "AND state IN ('SCHEDULED', 'EXECUTING', 'PENDING_NEXT_RUN') "
            "AND definition -> 'Schedule' ->> 'Frequency' = 'EVENT'"
        ),
        {"a": app_id},
    )
    return [(r.id, r.definition) for r in rows]


async def add_intake(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Queue endpoints for EVENT campaigns (campaign_id, endpoint_id, event_row_id, occurred_at)."""
    if rows:
        await conn.execute(
            text(
                "INSERT INTO campaign_intake (campaign_id, endpoint_id, event_row_id, occurred_at) "
                "VALUES (:campaign_id, :endpoint_id, :event_row_id, :occurred_at)"
            ),
            list(rows),
        )


async def claim_intake(
    conn: AsyncConnection, campaign_id: str, batch_no: int, limit: int
) -> list[tuple[str, datetime]]:
    """Take up to ``limit`` waiting intake rows into batch ``batch_no`` (a retry gets the same rows back).

    Returns:
        (endpoint id, event time) per row, oldest first.
    """
    await conn.execute(
        text(
            "UPDATE campaign_intake SET batch_no = :b WHERE id IN ("
            "  SELECT id FROM campaign_intake WHERE campaign_id = :c AND batch_no IS NULL ORDER BY id LIMIT :l"
            "  FOR UPDATE SKIP LOCKED"
            ") AND NOT EXISTS (SELECT 1 FROM campaign_intake WHERE campaign_id = :c AND batch_no = :b)"
        ),
        {"c": campaign_id, "b": batch_no, "l": limit},
    )
    rows = await conn.execute(
        text(
            "SELECT endpoint_id, occurred_at FROM campaign_intake WHERE campaign_id = :c AND batch_no = :b "
            "ORDER BY id"
        ),
        {"c": campaign_id, "b": batch_no},
    )
    return [(r[0], r[1]) for r in rows]
