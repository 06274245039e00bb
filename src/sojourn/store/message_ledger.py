"""The message ledger: one row per message, keyed by a deterministic id, claimed before anything is sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.store.suppression_repo import ENABLED_REASONS_SQL, suppressed_addresses

__all__ = [
    "SKIP_REASON_SQL",
    "claim_journey_emails",
    "mark_failed",
    "mark_sent",
    "pending_journey_emails",
    "suppressed_addresses",
]

#: Why an endpoint (alias ``e``, an ``endpoints`` row, possibly all NULL from an outer join) gets no email,
#: in Pinpoint's run-filter vocabulary plus ``SUPPRESSED``, ``PENDING_CONFIRMATION`` and ``NO_PERMISSION``;
#: NULL when it may be sent to. Journeys, campaigns and direct sends all use this one fragment.
#:
#: Suppression: the address is on the account suppression list for a reason the account has enabled.
#: Permission: an endpoint with OptOut NONE is permitted on its channel (Pinpoint's default) unless its
#: permission for the channel is withdrawn (NO_PERMISSION), pending or expired (PENDING_CONFIRMATION), or
#: the app requires consent (``app_privacy.require_consent``) and it has no granted permission.
#: One index probe per table per endpoint (no per-query hash of whole tables, which could spill at scale).
SKIP_REASON_SQL = f"""
CASE
  WHEN e.id IS NULL THEN 'ENDPOINT_MISSING'
  WHEN e.opt_out = 'ALL' THEN 'ENDPOINT_OPT_OUT'
  WHEN e.endpoint_status <> 'ACTIVE' THEN 'ENDPOINT_INACTIVE'
  WHEN e.channel_type IS DISTINCT FROM 'EMAIL' THEN 'ENDPOINT_MISSING_CHANNEL'
  WHEN e.address IS NULL OR e.address = '' THEN 'ENDPOINT_MISSING_ADDRESS'
  WHEN EXISTS (
    SELECT 1 FROM suppressed_destinations s
    WHERE s.email_address = lower(btrim(e.address)) AND s.reason = ANY({ENABLED_REASONS_SQL})
  ) THEN 'SUPPRESSED'
  ELSE CASE COALESCE(
      (SELECT p.status FROM channel_permissions p
       WHERE p.app_id = e.app_id AND p.endpoint_id = e.id AND p.channel = e.channel_type),
      CASE WHEN e.app_id IN (SELECT ap.app_id FROM app_privacy ap WHERE ap.require_consent) THEN 'none'
           ELSE 'granted' END)
    WHEN 'granted' THEN NULL
    WHEN 'pending' THEN 'PENDING_CONFIRMATION'
    WHEN 'expired' THEN 'PENDING_CONFIRMATION'
    ELSE 'NO_PERMISSION'
  END
END
"""

# The journey's per-endpoint caps (Limits.DailyCap, Limits.TotalCap), over messages sent or pending.
_CAP_REASON = """
CASE
  WHEN CAST(:daily_cap AS int) > 0 AND (
    SELECT count(*) FROM messages c WHERE c.journey_id = :journey_id AND c.endpoint_id = p.endpoint_id
      AND c.status IN ('pending', 'sent') AND c.created_at > CAST(:now AS timestamptz) - interval '24 hours'
  ) >= CAST(:daily_cap AS int) THEN 'DAILY_CAP'
  WHEN CAST(:total_cap AS int) > 0 AND (
    SELECT count(*) FROM messages c WHERE c.journey_id = :journey_id AND c.endpoint_id = p.endpoint_id
      AND c.status IN ('pending', 'sent')
  ) >= CAST(:total_cap AS int) THEN 'TOTAL_CAP'
  ELSE NULL
END
"""


async def claim_journey_emails(
    conn: AsyncConnection,
    *,
    app_id: str,
    journey_id: str,
    version: int,
    cohort_no: int,
    lane: str,
    activity_id: str,
    visit: str,
    now: datetime,
    daily_cap: int = 0,
    total_cap: int = 0,
) -> Counter[str]:
    """Insert a ledger row for every member of the lane at ``activity_id``; unreachable or capped ones as ``skipped``.

    The message id is md5(app/journey/version/activity/endpoint/entry/visit): the same on every retry, so
    ``ON CONFLICT DO NOTHING`` makes the claim idempotent. The journey's DailyCap (rolling 24 hours before
    ``now``) and TotalCap count this journey's messages to the endpoint that are sent or about to be; one
    endpoint is in at most one step of a journey at a time, so the counts cannot race.

    Returns:
        New rows per status/reason (``pending`` or a skip reason); empty on a retry.
    """
    result = await conn.execute(
        text(
            f"""
            INSERT INTO messages (message_id, app_id, journey_id, activity_id, endpoint_id, entry_no, channel, address,
                                  status, status_message, created_at)
            SELECT md5(:app_id || '/' || :journey_id || '/' || :version || '/' || :activity_id || '/' || p.endpoint_id
                       || '/' || p.entry_no || '/' || :visit),
                   :app_id, :journey_id, :activity_id, p.endpoint_id, p.entry_no, 'EMAIL', e.address,
                   CASE WHEN r.reason IS NULL THEN 'pending' ELSE 'skipped' END, r.reason, :now
            FROM participants p
            LEFT JOIN endpoints e ON e.app_id = :app_id AND e.id = p.endpoint_id
            CROSS JOIN LATERAL (SELECT COALESCE({SKIP_REASON_SQL}, {_CAP_REASON}) AS reason) r
            WHERE p.journey_id = :journey_id AND p.cohort_no = :cohort_no AND p.lane = :lane
              AND p.status = 'active' AND p.position = :activity_id
            ON CONFLICT (message_id) DO NOTHING
            RETURNING COALESCE(status_message, status)
            """
        ),
        {
            "app_id": app_id,
            "journey_id": journey_id,
            "version": str(version),
            "activity_id": activity_id,
            "visit": visit,
            "cohort_no": cohort_no,
            "lane": lane,
            "now": now,
            "daily_cap": daily_cap,
            "total_cap": total_cap,
        },
    )
    return Counter(str(r[0]) for r in result)


async def pending_journey_emails(
    conn: AsyncConnection, *, journey_id: str, cohort_no: int, lane: str, activity_id: str, limit: int
) -> list[dict[str, Any]]:
    """Claimed, not yet sent messages of the lane at ``activity_id``, with their endpoint rows."""
    result = await conn.execute(
        text(
            """
            SELECT m.message_id, e.*
            FROM participants p
            JOIN messages m ON m.journey_id = p.journey_id AND m.activity_id = :activity_id
                           AND m.endpoint_id = p.endpoint_id AND m.entry_no = p.entry_no AND m.status = 'pending'
            JOIN endpoints e ON e.app_id = p.app_id AND e.id = p.endpoint_id
            WHERE p.journey_id = :journey_id AND p.cohort_no = :cohort_no AND p.lane = :lane
              AND p.status = 'active' AND p.position = :activity_id
            ORDER BY m.message_id
            LIMIT :limit
            """
        ),
        {
            "journey_id": journey_id,
            "cohort_no": cohort_no,
            "lane": lane,
            "activity_id": activity_id,
            "limit": limit,
        },
    )
    return [dict(r._mapping) for r in result]


async def mark_sent(conn: AsyncConnection, message_ids: Sequence[str]) -> int:
    """Mark messages sent (the commit point of a send). Returns how many changed."""
    result = await conn.execute(
        text(
            "UPDATE messages SET status = 'sent', sent_at = now(), attempts = attempts + 1 "
            "WHERE message_id = ANY(:ids) AND status = 'pending'"
        ),
        {"ids": list(message_ids)},
    )
    return int(result.rowcount or 0)


async def mark_failed(conn: AsyncConnection, failures: Sequence[tuple[str, str, str]]) -> Counter[str]:
    """Record failed messages: (message id, metric such as PERMANENT_FAILURE, the server's words)."""
    counts: Counter[str] = Counter()
    for message_id, metric, why in failures:
        result = await conn.execute(
            text(
                "UPDATE messages SET status = 'failed', status_message = :why, attempts = attempts + 1 "
                "WHERE message_id = :id AND status IN ('pending', 'sent')"
            ),
            {"id": message_id, "why": f"{metric}: {why}"[:500]},
        )
        counts[metric] += int(result.rowcount or 0)
    return counts
