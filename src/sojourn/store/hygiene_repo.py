"""Unengaged removal (sunset) in SQL: the app's policy, the selection, and applying a policy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.hygiene import (
    ENGAGEMENT_EVENTS,
    SUNSET_ATTRIBUTE,
    SUNSET_SEGMENT_ID,
    check_days,
    check_policy,
)
from sojourn.domain.segments import WriteSegmentRequest
from sojourn.store import consent_repo
from sojourn.store.suppression_tables import app_privacy


@dataclass(frozen=True)
class SunsetPolicy:
    """An app's unengaged-removal settings."""

    enabled: bool
    days: int
    policy: str


@dataclass(frozen=True)
class Unengaged:
    """One endpoint the rule selected."""

    endpoint_id: str
    address: str | None
    last_sent_at: datetime


async def load_policy(conn: AsyncConnection, app_id: str) -> SunsetPolicy | None:
    """The app's stored policy (None: never configured)."""
    row = (
        await conn.execute(
            text("SELECT sunset_enabled, sunset_days, sunset_policy FROM app_privacy WHERE app_id = :a"),
            {"a": app_id},
        )
    ).first()
    return SunsetPolicy(row.sunset_enabled, row.sunset_days, row.sunset_policy) if row else None


async def save_policy(conn: AsyncConnection, app_id: str, *, enabled: bool, days: int, policy: str) -> None:
    """Store the app's policy (checked: days 30-365, a known policy)."""
    check_days(days)
    check_policy(policy)
    stmt = pg_insert(app_privacy).values(
        app_id=app_id, sunset_enabled=enabled, sunset_days=days, sunset_policy=policy
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[app_privacy.c.app_id],
            set_={
                "sunset_enabled": stmt.excluded.sunset_enabled,
                "sunset_days": stmt.excluded.sunset_days,
                "sunset_policy": stmt.excluded.sunset_policy,
                "updated_at": text("now()"),
            },
        )
    )


async def unengaged_endpoints(
    conn: AsyncConnection, app_id: str, *, days: int, now: datetime, limit: int | None = None
) -> list[Unengaged]:
    """Reachable EMAIL endpoints that :func:`sojourn.domain.hygiene.is_unengaged` selects, not yet sunset.

    Endpoints already opted out, or already marked ``sunset`` (segment policy), are left out, so applying a
    policy twice changes nothing.
    """
    since = now - timedelta(days=check_days(days))
    # Set-based (one pass over the app's recent messages and engagement events, hash-joined), so a daily
    # pass over a large app does not probe the ledger once per endpoint.
    rows = await conn.execute(
        text(
            f"""
            WITH sent AS (
              SELECT m.endpoint_id, max(m.sent_at) AS last_sent_at FROM messages m
              WHERE m.app_id = :a AND m.status = 'sent' AND m.sent_at >= :since
              GROUP BY m.endpoint_id
            ), engaged AS (
              SELECT DISTINCT v.endpoint_id FROM events v
              WHERE v.app_id = :a AND v.occurred_at >= :since
                AND v.event_type IN ({", ".join(f"'{t}'" for t in ENGAGEMENT_EVENTS)})
            )
            SELECT e.id, e.address, s.last_sent_at
            FROM endpoints e
            JOIN sent s ON s.endpoint_id = e.id
            WHERE e.app_id = :a AND e.channel_type = 'EMAIL' AND e.opt_out <> 'ALL'
              AND e.endpoint_status = 'ACTIVE' AND e.creation_date <= :since
              AND NOT (e.attributes @> CAST(:marked AS jsonb))
              AND NOT EXISTS (SELECT 1 FROM engaged g WHERE g.endpoint_id = e.id)
            ORDER BY e.id
            {"LIMIT :limit" if limit is not None else ""}
            """
        ),
        {"a": app_id, "since": since, "marked": json.dumps({SUNSET_ATTRIBUTE: ["true"]}), "limit": limit},
    )
    return [Unengaged(r.id, r.address, r.last_sent_at) for r in rows]


async def count_unengaged(conn: AsyncConnection, app_id: str, *, days: int, now: datetime) -> int:
    """How many endpoints :func:`unengaged_endpoints` selects."""
    return len(await unengaged_endpoints(conn, app_id, days=days, now=now))


async def ensure_sunset_segment(conn: AsyncConnection, app_id: str) -> str:
    """The app's dimensional "sunset" segment (endpoints with attribute sunset=true); created if missing."""
    definition = WriteSegmentRequest.model_validate(
        {
            "Name": "sunset",
            "Dimensions": {
                "Attributes": {SUNSET_ATTRIBUTE: {"AttributeType": "INCLUSIVE", "Values": ["true"]}}
            },
        }
    ).model_dump(mode="json", exclude_none=True)
    stored = json.dumps(definition)
    created = await conn.scalar(
        text(
            "INSERT INTO segments (app_id, id, name, definition) VALUES (:a, :s, 'sunset', CAST(:d AS jsonb)) "
            "ON CONFLICT (app_id, id) DO NOTHING RETURNING id"
        ),
        {"a": app_id, "s": SUNSET_SEGMENT_ID, "d": stored},
    )
    if created is not None:
        await conn.execute(
            text(
                "INSERT INTO segment_versions (app_id, segment_id, version, definition) "
                "VALUES (:a, :s, 1, CAST(:d AS jsonb))"
            ),
            {"a": app_id, "s": SUNSET_SEGMENT_ID, "d": stored},
        )
    return SUNSET_SEGMENT_ID


async def apply_policy(
    conn: AsyncConnection, app_id: str, found: list[Unengaged], *, policy: str, days: int
) -> int:
    """Apply ``policy`` to the selected endpoints; returns how many changed (0 for ``report``).

    - ``unsubscribe``: OptOut ALL, and a ``withdrawn`` consent row (source sunset) saying why.
    - ``segment``: attribute ``sunset=["true"]``, which the app's "sunset" segment selects.
    - ``report``: nothing changes.
    """
    check_policy(policy)
    ids = [u.endpoint_id for u in found]
    if not ids or policy == "report":
        return 0
    if policy == "unsubscribe":
        await consent_repo.name_consent_source(conn, "none")  # the rows below say why
        result = await conn.execute(
            text(
                "UPDATE endpoints SET opt_out = 'ALL', effective_date = now() "
                "WHERE app_id = :a AND id = ANY(:ids) AND opt_out <> 'ALL'"
            ),
            {"a": app_id, "ids": ids},
        )
        # OptOut ALL is the state (the API may set it back to NONE); the ledger keeps the why.
        await consent_repo.record_history(
            conn,
            [
                consent_repo.ConsentEvent(
                    app_id=app_id,
                    endpoint_id=u.endpoint_id,
                    address=u.address,
                    channel="EMAIL",
                    status="withdrawn",
                    source="sunset",
                    reason=f"unengaged: no open or click in {days} days",
                )
                for u in found
            ],
        )
        return int(result.rowcount or 0)
    await ensure_sunset_segment(conn, app_id)
    result = await conn.execute(
        text(
            "UPDATE endpoints SET attributes = attributes || CAST(:marked AS jsonb), effective_date = now() "
            "WHERE app_id = :a AND id = ANY(:ids)"
        ),
        {"a": app_id, "ids": ids, "marked": json.dumps({SUNSET_ATTRIBUTE: ["true"]})},
    )
    return int(result.rowcount or 0)
