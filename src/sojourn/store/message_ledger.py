"""The message ledger: one row per message, keyed by a deterministic id, claimed before anything is sent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.lists import OPT_IN, ListRuleError, may_send, topics_from_json
from sojourn.store import lists_repo
from sojourn.store.suppression_repo import ENFORCED_REASONS_SQL, suppressed_addresses

__all__ = [
    "LIST_SKIP_REASON_SQL",
    "SKIP_REASON_SQL",
    "ListFilter",
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
    WHERE s.email_address = lower(btrim(e.address)) AND s.reason = ANY({ENFORCED_REASONS_SQL})
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

#: Why list mail does not go to an endpoint (alias ``e``): its address is not subscribed to the topic of the
#: list (an unsubscribed-from-all contact, else its explicit preference, else the topic's default; a recipient
#: who is no contact of the list gets the default). NULL when it may be sent to. The list, topic and default
#: come from the row ``l`` joined to each claimed row by :data:`LIST_FILTER_JOIN` (``list_name``, ``topic``,
#: ``topic_default``, ``problem``, ``unsubscribed``), with ``list_name`` NULL for mail that is not list mail
#: (see :class:`ListFilter`). One index probe of
#: ``contacts`` (its primary key) per endpoint, in the claim itself: no round trip after it.
LIST_SKIP_REASON_SQL = f"""
CASE
  WHEN l.list_name IS NULL THEN NULL
  WHEN l.problem IS NOT NULL THEN l.problem
  WHEN COALESCE(
      (SELECT CASE WHEN lc.unsubscribe_all THEN 'OPT_OUT'
                   ELSE COALESCE(lc.topic_preferences ->> l.topic, l.topic_default) END
       FROM contacts lc WHERE lc.list_name = l.list_name AND lc.email_address = lower(btrim(e.address))),
      l.topic_default) = '{OPT_IN}' THEN NULL
  ELSE l.unsubscribed
END
"""


@dataclass(frozen=True)
class ListFilter:
    """The subscription test of list mail (a template naming a contact list and topic), checked in the claim.

    Attributes:
        list_name: The contact list.
        topic: The topic, or None (then only UnsubscribeAll stops a send).
        topic_default: The topic's DefaultSubscriptionStatus (``OPT_IN`` without a topic).
        problem: ``LIST_NOT_FOUND: ...`` when the list or topic does not exist (every message is skipped).
    """

    list_name: str
    topic: str | None
    topic_default: str
    problem: str | None

    @property
    def unsubscribed(self) -> str:
        """The skip reason of a recipient who is not subscribed."""
        return f"UNSUBSCRIBED: not subscribed to {self.list_name}/{self.topic or '*'}"


async def load_list_filter(conn: AsyncConnection, list_name: str, topic: str | None) -> ListFilter:
    """The subscription test of mail to ``list_name``/``topic`` as the list is now.

    Args:
        conn: A connection.
        list_name: ListManagementOptions.ContactListName.
        topic: ListManagementOptions.TopicName, or None.

    Returns:
        The filter; its ``problem`` says when the list or the topic does not exist.
    """
    listing = await lists_repo.get_list(conn, list_name)
    if listing is None:
        return ListFilter(
            list_name, topic, OPT_IN, f"LIST_NOT_FOUND: contact list {list_name} does not exist"
        )
    topics = topics_from_json(listing.topics)
    try:
        # The domain rule says whether the topic exists (and its words when it does not).
        may_send(topics, topic, unsubscribe_all=False, preferences={})
    except ListRuleError as err:
        return ListFilter(list_name, topic, OPT_IN, f"LIST_NOT_FOUND: {err}")
    default = next((t.default_status for t in topics if t.name == topic), OPT_IN)
    return ListFilter(list_name, topic, default, None)


def list_filter_params(filters: Sequence[ListFilter | None]) -> dict[str, list[Any]]:
    """Parameters of :data:`LIST_FILTER_JOIN` for claimed rows whose list filters are ``filters`` (one entry per
    row, None for mail that is not list mail).

    ``l_slot`` gives each row the 1-based slot of its filter among the few distinct ones (``l_names``,
    ``l_topics``, ``l_defaults``, ``l_problems``, ``l_unsubscribed``): a page of 500 rows carries 500 small
    integers and one entry per treatment, not five strings per row.
    """
    distinct = list(dict.fromkeys(f for f in filters if f is not None))
    slot = {f: i + 1 for i, f in enumerate(distinct)}
    return {
        "l_slot": [slot[f] if f is not None else None for f in filters],
        "l_names": [f.list_name for f in distinct],
        "l_topics": [f.topic for f in distinct],
        "l_defaults": [f.topic_default for f in distinct],
        "l_problems": [f.problem for f in distinct],
        "l_unsubscribed": [f.unsubscribed for f in distinct],
    }


#: Joins each claimed row (alias ``t``, with an ``l_slot`` column from :func:`list_filter_params`) to its list
#: filter as ``l``, the alias :data:`LIST_SKIP_REASON_SQL` reads (all NULL for mail that is not list mail).
LIST_FILTER_JOIN = """
LEFT JOIN unnest(CAST(:l_names AS text[]), CAST(:l_topics AS text[]), CAST(:l_defaults AS text[]),
                 CAST(:l_problems AS text[]), CAST(:l_unsubscribed AS text[])) WITH ORDINALITY
          AS l(list_name, topic, topic_default, problem, unsubscribed, slot) ON l.slot = t.l_slot
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

# Caps shared with other journeys and campaigns of the app (project settings, the journey's TimeframeCap).
_SHARED_CAP_REASON = """
CASE
  WHEN CAST(:all_daily AS int) > 0 AND (
    SELECT count(*) FROM messages c WHERE c.app_id = :app_id AND c.endpoint_id = p.endpoint_id
      AND c.status IN ('pending', 'sent') AND c.created_at > CAST(:now AS timestamptz) - interval '24 hours'
  ) >= CAST(:all_daily AS int) THEN 'DAILY_CAP'
  WHEN CAST(:journeys_daily AS int) > 0 AND (
    SELECT count(*) FROM messages c WHERE c.app_id = :app_id AND c.endpoint_id = p.endpoint_id
      AND c.journey_id IS NOT NULL AND c.status IN ('pending', 'sent')
      AND c.created_at > CAST(:now AS timestamptz) - interval '24 hours'
  ) >= CAST(:journeys_daily AS int) THEN 'DAILY_CAP'
  WHEN CAST(:timeframe_cap AS int) > 0 AND (
    SELECT count(*) FROM messages c WHERE c.app_id = :app_id AND c.endpoint_id = p.endpoint_id
      AND c.journey_id IS NOT NULL AND c.status IN ('pending', 'sent')
      AND c.created_at > CAST(:now AS timestamptz) - make_interval(days => CAST(:timeframe_days AS int))
  ) >= CAST(:timeframe_cap AS int) THEN 'TIMEFRAME_CAP'
  ELSE NULL
END
"""


@dataclass(frozen=True)
class SharedCaps:
    """Per-endpoint caps that count messages of other journeys (and campaigns) too; 0 means no cap.

    Attributes:
        all_daily: Messages from all campaigns and journeys in 24 hours (the project's ``Limits.Daily``).
        journeys_daily: Messages from all journeys in 24 hours (the project's ``JourneyLimits.DailyCap``).
        timeframe_cap: Messages from all journeys within ``timeframe_days`` (``TimeframeCap.Cap``).
        timeframe_days: ``TimeframeCap.Days``.
    """

    all_daily: int = 0
    journeys_daily: int = 0
    timeframe_cap: int = 0
    timeframe_days: int = 0

    @property
    def active(self) -> bool:
        """Whether any of the caps is set."""
        return bool(self.all_daily or self.journeys_daily or (self.timeframe_cap and self.timeframe_days))


def json_param(values: Sequence[Any]) -> str:
    """A page's list of values as one JSON text parameter (read in SQL with :func:`json_text_array`).

    asyncpg encodes a ``text[]`` parameter element by element, with two ABC checks on each: about 0.8 µs of
    the worker's CPU per element, against 0.3 µs for a JSON text of the same list.
    """
    return orjson.dumps(list(values)).decode()


def json_text_array(param: str) -> str:
    """SQL for the ``text[]`` held by the JSON text parameter ``param`` (see :func:`json_param`), as a value
    for ``= ANY(...)``; its order is not kept."""
    return f"ARRAY(SELECT json_array_elements_text(CAST(:{param} AS json)))"


async def lock_endpoints(
    conn: AsyncConnection, app_id: str, endpoint_ids_sql: str, params: Mapping[str, Any]
) -> None:
    """Take a transaction-scoped advisory lock per endpoint, in key order (so concurrent claimers never deadlock).

    Whoever counts an endpoint's messages against a shared cap and then inserts one holds its lock until
    commit, so two cohorts (of any journeys or campaigns) cannot both see room under the cap.

    Args:
        conn: A connection inside the claiming transaction.
        app_id: The application.
        endpoint_ids_sql: A query returning the endpoint ids, as ``endpoint_id``.
        params: Its parameters.
    """
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(CAST(:lock_app AS text) || '/' "
            f"|| endpoint_id, 0) AS k FROM ({endpoint_ids_sql}) ids ORDER BY 1) keys"
        ),
        {**params, "lock_app": app_id},
    )


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
    skips: Mapping[tuple[str, int], str] | None = None,
    shared: SharedCaps | None = None,
    channel: str = "EMAIL",
    channel_sql: str = "'EMAIL'",
) -> Counter[str]:
    """Insert a ledger row for every member of the lane at ``activity_id``; unreachable or capped ones as ``skipped``.

    A user participant's endpoints move together, but only those on the step's channel get a row (each with
    its own caps and reachability); its endpoints on other channels pass the step without one, unless the
    user has no endpoint on the channel at all (then they are skipped as ENDPOINT_MISSING_CHANNEL, as an
    endpoint participant would be).

    The message id is md5(app/journey/version/activity/endpoint/entry/visit): the same on every retry, so
    ``ON CONFLICT DO NOTHING`` makes the claim idempotent. The journey's DailyCap (rolling 24 hours before
    ``now``) and TotalCap count this journey's messages to the endpoint that are sent or about to be; one
    endpoint is in at most one step of a journey at a time, so the counts cannot race.

    Args:
        skips: Members (endpoint id, entry number) the step itself decided not to message, with the reason
            (quiet time); an unreachable endpoint keeps its own reason first.
        shared: Caps counted across journeys and campaigns; when any is set the members' endpoints are
            locked first (see :func:`lock_endpoints`), so the caps hold under concurrent claims.
        channel: The ledger's channel of the messages (EMAIL, SMS, PUSH, ...).
        channel_sql: SQL for the endpoint channel type the message needs (see :func:`skip_reason_sql`).

    Returns:
        New rows per status/reason (``pending`` or a skip reason); empty on a retry.
    """
    skipped = dict(skips or {})
    caps = shared or SharedCaps()
    if caps.active:
        await lock_endpoints(
            conn,
            app_id,
            "SELECT endpoint_id FROM participants WHERE journey_id = :journey_id AND cohort_no = :cohort_no "
            "AND lane = :lane AND status = 'active' AND position = :activity_id",
            {"journey_id": journey_id, "cohort_no": cohort_no, "lane": lane, "activity_id": activity_id},
        )
    result = await conn.execute(
        text(
            f"""
            WITH users_on_channel AS (
              -- The lane's user participants with an endpoint on the step's channel (none in an endpoint lane).
              SELECT DISTINCT q.user_id FROM participants q
              JOIN endpoints e ON e.app_id = q.app_id AND e.id = q.endpoint_id
              WHERE q.journey_id = :journey_id AND q.cohort_no = :cohort_no AND q.lane = :lane
                AND q.status = 'active' AND q.position = :activity_id AND q.user_id IS NOT NULL
                AND e.channel_type IS NOT DISTINCT FROM {channel_sql})
            INSERT INTO messages (message_id, app_id, journey_id, activity_id, endpoint_id, entry_no, channel, address,
                                  status, status_message, created_at)
            SELECT md5(:app_id || '/' || :journey_id || '/' || :version || '/' || :activity_id || '/' || p.endpoint_id
                       || '/' || p.entry_no || '/' || :visit),
                   :app_id, :journey_id, :activity_id, p.endpoint_id, p.entry_no, :channel, e.address,
                   CASE WHEN r.reason IS NULL THEN 'pending' ELSE 'skipped' END, r.reason, :now
            FROM participants p
            LEFT JOIN endpoints e ON e.app_id = :app_id AND e.id = p.endpoint_id
            LEFT JOIN unnest(CAST(:skip_ids AS text[]), CAST(:skip_entries AS int[]), CAST(:skip_reasons AS text[]))
                 AS s(endpoint_id, entry_no, reason) ON s.endpoint_id = p.endpoint_id AND s.entry_no = p.entry_no
            CROSS JOIN LATERAL (
                SELECT COALESCE({skip_reason_sql(channel_sql)}, s.reason, {_CAP_REASON}, {_SHARED_CAP_REASON}) AS reason
                OFFSET 0  -- worked out once per row (inlined, it would be evaluated for status and status_message)
            ) r
            WHERE p.journey_id = :journey_id AND p.cohort_no = :cohort_no AND p.lane = :lane
              AND p.status = 'active' AND p.position = :activity_id
              -- A user participant is messaged on its endpoints of the step's channel; its other endpoints pass
              -- without a row, unless it has none on the channel (then each is ENDPOINT_MISSING_CHANNEL).
              AND (p.user_id IS NULL OR e.channel_type IS NOT DISTINCT FROM {channel_sql}
                   OR p.user_id NOT IN (SELECT user_id FROM users_on_channel))
            ON CONFLICT (message_id) DO NOTHING
            RETURNING COALESCE(status_message, status)
            """
        ),
        {
            "app_id": app_id,
            "channel": channel,
            "journey_id": journey_id,
            "version": str(version),
            "activity_id": activity_id,
            "visit": visit,
            "cohort_no": cohort_no,
            "lane": lane,
            "now": now,
            "daily_cap": daily_cap,
            "total_cap": total_cap,
            "skip_ids": [endpoint for endpoint, _ in skipped],
            "skip_entries": [entry for _, entry in skipped],
            "skip_reasons": list(skipped.values()),
            "all_daily": caps.all_daily,
            "journeys_daily": caps.journeys_daily,
            "timeframe_cap": caps.timeframe_cap,
            "timeframe_days": caps.timeframe_days,
        },
    )
    return Counter(str(r[0]) for r in result)


async def pending_journey_emails(
    conn: AsyncConnection,
    *,
    journey_id: str,
    cohort_no: int,
    lane: str,
    activity_id: str,
    limit: int,
    by_participant: bool = False,
) -> list[dict[str, Any]]:
    """Claimed, not yet sent messages of the lane at ``activity_id``, with their endpoint rows.

    Args:
        by_participant: Order by participant (a user's endpoints together) and add each row's ``participant``
            key, so a caller can keep a user's endpoints in one call.
    """
    order = (
        "coalesce('u:' || p.user_id, 'e:' || p.endpoint_id), m.message_id"
        if by_participant
        else "m.message_id"
    )
    result = await conn.execute(
        text(
            f"""
            SELECT m.message_id, e.*, coalesce('u:' || p.user_id, 'e:' || p.endpoint_id) AS participant
            FROM participants p
            JOIN messages m ON m.journey_id = p.journey_id AND m.activity_id = :activity_id
                           AND m.endpoint_id = p.endpoint_id AND m.entry_no = p.entry_no AND m.status = 'pending'
            JOIN endpoints e ON e.app_id = p.app_id AND e.id = p.endpoint_id
            WHERE p.journey_id = :journey_id AND p.cohort_no = :cohort_no AND p.lane = :lane
              AND p.status = 'active' AND p.position = :activity_id
            ORDER BY {order}
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
            f"WHERE message_id = ANY({json_text_array('ids')}) AND status = 'pending'"
        ),
        {"ids": json_param(message_ids)},
    )
    return int(result.rowcount or 0)


async def mark_skipped(conn: AsyncConnection, skips: Sequence[tuple[str, str]]) -> int:
    """Record claimed messages that are not sent after all: (message id, ``REASON: words``)."""
    if not skips:
        return 0
    result = await conn.execute(
        text(
            "UPDATE messages m SET status = 'skipped', status_message = s.why "
            "FROM unnest(CAST(:ids AS text[]), CAST(:whys AS text[])) AS s(id, why) "
            "WHERE m.message_id = s.id AND m.status = 'pending'"
        ),
        {"ids": [i for i, _ in skips], "whys": [w[:500] for _, w in skips]},
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


def skip_reason_sql(channel_sql: str = "'EMAIL'") -> str:
    """The reachability rule (:data:`SKIP_REASON_SQL`) as an SQL expression over an endpoint aliased ``e``.

    Args:
        channel_sql: SQL for the channel the endpoint must have; direct sends pass ``"e.channel_type"`` (any
            channel: each endpoint is sent on its own) and check the channel themselves.

    Returns:
        A ``CASE`` expression: NULL when the endpoint can be sent to, else the reason (ENDPOINT_MISSING,
        ENDPOINT_OPT_OUT, ENDPOINT_INACTIVE, ENDPOINT_MISSING_CHANNEL, ENDPOINT_MISSING_ADDRESS, ...).
    """
    channel_test = "e.channel_type IS DISTINCT FROM 'EMAIL'"
    assert channel_test in SKIP_REASON_SQL
    return SKIP_REASON_SQL.replace(channel_test, f"e.channel_type IS DISTINCT FROM {channel_sql}")
