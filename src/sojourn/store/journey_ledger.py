"""The participant ledger and journey counters: set-based SQL for every step of a cohort.

Every statement here is idempotent under activity retries: rows move only from the state a step expects
(a lane at an activity, an intake row not yet claimed), and counters grow only by the rows that moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.entry import EntryHistory

HASH_BUCKETS = 10_000


def stable_bucket(journey_id: str, activity_id: str, subject: str) -> int:
    """A participant's bucket 0-9999 for random splits and holdouts: stable, reproducible in analytics.

    Same as the SQL in :func:`split_by_buckets`: the first 8 hex digits of md5(journey/activity/subject), where
    the subject is the user id of a user participant, else the endpoint id
    (:func:`sojourn.domain.participants.bucket_subject`).
    """
    digest = hashlib.md5(f"{journey_id}/{activity_id}/{subject}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % HASH_BUCKETS


def bucket_sql(subject_sql: str) -> str:
    """:func:`stable_bucket` in SQL, over ``subject_sql`` (with the ``:journey_id`` and ``:activity_id`` params)."""
    return (
        "(('x' || substr(md5(:journey_id || '/' || :activity_id || '/' || "
        f"{subject_sql}), 1, 8))::bit(32)::bigint % 10000)"
    )


# A user's endpoints share the user's bucket, so random splits and holdouts never divide a user.
_BUCKET_SQL = bucket_sql("coalesce(p.user_id, p.endpoint_id)")

#: :func:`sojourn.domain.participants.participant_key` over a participants row ``p``.
PARTICIPANT_KEY_SQL = "coalesce('u:' || p.user_id, 'e:' || p.endpoint_id)"


JOURNEY_SHARD = -1


async def add_counts(
    conn: AsyncConnection, journey_id: str, counts: Mapping[tuple[str, str], int], *, shard: int
) -> None:
    """Add to journey counters keyed by (activity id or "" for the journey, metric).

    Args:
        shard: The cohort counting (or JOURNEY_SHARD): concurrent cohorts update different rows.
    """
    rows = [{"j": journey_id, "a": a, "m": m, "s": shard, "v": v} for (a, m), v in counts.items() if v]
    if not rows:
        return
    await conn.execute(
        text(
            "INSERT INTO journey_counters (journey_id, activity_id, metric, shard, value) VALUES (:j, :a, :m, :s, :v) "
            "ON CONFLICT (journey_id, activity_id, metric, shard) DO UPDATE SET value = journey_counters.value + EXCLUDED.value"
        ),
        rows,
    )


async def arrive(
    conn: AsyncConnection, journey_id: str, cohort_no: int, lane: str, activity_id: str, waited: Sequence[str]
) -> None:
    """Move a lane from the Wait activities it passed to ``activity_id``, counting each wait as completed."""
    if not waited:
        return
    result = await conn.execute(
        text(
            "UPDATE participants SET position = :act, updated_at = now() "
            "WHERE journey_id = :journey_id AND cohort_no = :cohort_no AND lane = :lane AND status = 'active' "
            "AND position = ANY(:waited)"
        ),
        {
            "act": activity_id,
            "journey_id": journey_id,
            "cohort_no": cohort_no,
            "lane": lane,
            "waited": list(waited),
        },
    )
    # Every member that moved passed every wait of the list.
    moved = int(result.rowcount or 0)
    await add_counts(conn, journey_id, {(w, "COMPLETED"): moved for w in waited}, shard=cohort_no)


async def move_lane(
    conn: AsyncConnection,
    journey_id: str,
    cohort_no: int,
    lane: str,
    from_activity: str,
    to_activity: str | None,
) -> int:
    """Move a lane's members at ``from_activity`` on to ``to_activity``; ``None`` means they leave (completed)."""
    if to_activity is None:
        result = await conn.execute(
            text(
                "UPDATE participants SET position = NULL, status = 'completed', updated_at = now() "
                "WHERE journey_id = :j AND cohort_no = :c AND lane = :lane AND status = 'active' AND position = :a"
            ),
            {"j": journey_id, "c": cohort_no, "lane": lane, "a": from_activity},
        )
    else:
        result = await conn.execute(
            text(
                "UPDATE participants SET position = :to, updated_at = now() "
                "WHERE journey_id = :j AND cohort_no = :c AND lane = :lane AND status = 'active' AND position = :a"
            ),
            {"j": journey_id, "c": cohort_no, "lane": lane, "a": from_activity, "to": to_activity},
        )
    return int(result.rowcount or 0)


async def end_lane(conn: AsyncConnection, journey_id: str, cohort_no: int, lane: str, status: str) -> int:
    """Every active member of a lane leaves the journey with ``status`` (completed, cancelled, ended)."""
    result = await conn.execute(
        text(
            "UPDATE participants SET position = NULL, status = :status, updated_at = now() "
            "WHERE journey_id = :j AND cohort_no = :c AND lane = :lane AND status = 'active'"
        ),
        {"j": journey_id, "c": cohort_no, "lane": lane, "status": status},
    )
    return int(result.rowcount or 0)


async def split_by_buckets(
    conn: AsyncConnection,
    journey_id: str,
    cohort_no: int,
    lane: str,
    activity_id: str,
    ranges: Sequence[tuple[int, int, str, str | None, str]],
) -> list[int]:
    """Divide a lane by stable hash buckets.

    Args:
        ranges: (first bucket, end bucket exclusive, new lane, next activity or None, status) per branch;
            status is 'active' to go on, or how members leave ('held_out').

    Returns:
        Members moved by each range, in order.
    """
    moved: list[int] = []
    for first, end, new_lane, next_activity, status in ranges:
        leaving = status != "active" or next_activity is None
        result = await conn.execute(
            text(
                "UPDATE participants p SET lane = :new_lane, position = :next, status = :status, updated_at = now() "
                "WHERE journey_id = :journey_id AND cohort_no = :c AND lane = :lane AND status = 'active' "
                f"AND position = :activity_id AND {_BUCKET_SQL} >= :first AND {_BUCKET_SQL} < :end"
            ),
            {
                "new_lane": new_lane,
                "next": None if leaving else next_activity,
                "status": (status if status != "active" else "completed") if leaving else "active",
                "journey_id": journey_id,
                "c": cohort_no,
                "lane": lane,
                "activity_id": activity_id,
                "first": first,
                "end": end,
            },
        )
        moved.append(int(result.rowcount or 0))
    return moved


async def lane_members(
    conn: AsyncConnection, journey_id: str, cohort_no: int, lane: str, activity_id: str
) -> list[tuple[str, int]]:
    """(endpoint id, entry number) of the lane's active members at ``activity_id``."""
    rows = await conn.execute(
        text(
            "SELECT endpoint_id, entry_no FROM participants "
            "WHERE journey_id = :j AND cohort_no = :c AND lane = :lane AND status = 'active' AND position = :a"
        ),
        {"j": journey_id, "c": cohort_no, "lane": lane, "a": activity_id},
    )
    return [(str(r[0]), int(r[1])) for r in rows]


async def lane_participants(
    conn: AsyncConnection, journey_id: str, cohort_no: int, lane: str, activity_id: str
) -> tuple[list[tuple[str, int]], dict[tuple[str, int], str]]:
    """The lane's active members at ``activity_id`` and, for those of user participants, their user ids.

    One query, so the split steps learn who belongs together at no extra cost.
    """
    rows = await conn.execute(
        text(
            "SELECT endpoint_id, entry_no, user_id FROM participants "
            "WHERE journey_id = :j AND cohort_no = :c AND lane = :lane AND status = 'active' AND position = :a"
        ),
        {"j": journey_id, "c": cohort_no, "lane": lane, "a": activity_id},
    )
    members: list[tuple[str, int]] = []
    users: dict[tuple[str, int], str] = {}
    for endpoint_id, entry_no, user_id in rows:
        member = (str(endpoint_id), int(entry_no))
        members.append(member)
        if user_id is not None:
            users[member] = str(user_id)
    return members, users


async def lane_size(conn: AsyncConnection, journey_id: str, cohort_no: int, lane: str) -> int:
    """Active members of a lane, wherever they are in the graph."""
    count = await conn.scalar(
        text(
            "SELECT count(*) FROM participants WHERE journey_id = :j AND cohort_no = :c AND lane = :lane "
            "AND status = 'active'"
        ),
        {"j": journey_id, "c": cohort_no, "lane": lane},
    )
    return int(count or 0)


@dataclass(frozen=True)
class MemberLocale:
    """What a member's local time is read from: their endpoint's zone and location fields."""

    endpoint_id: str
    entry_no: int
    timezone: str | None
    channel_type: str | None
    address: str | None
    country: str | None
    postal_code: str | None
    # The user participant the endpoint belongs to (its endpoints share one clock), else None.
    user_id: str | None = None


async def lane_member_locales(
    conn: AsyncConnection, app_id: str, journey_id: str, cohort_no: int, lane: str, activity_id: str
) -> list[MemberLocale]:
    """The lane's active members at ``activity_id`` with the fields their time zone is told from, by endpoint id."""
    rows = await conn.execute(
        text(
            "SELECT p.endpoint_id, p.entry_no, e.demographic->>'Timezone', e.channel_type, e.address, "
            "e.location->>'Country', e.location->>'PostalCode', p.user_id FROM participants p "
            "LEFT JOIN endpoints e ON e.app_id = :app AND e.id = p.endpoint_id "
            "WHERE p.journey_id = :j AND p.cohort_no = :c AND p.lane = :lane AND p.status = 'active' "
            "AND p.position = :a ORDER BY p.endpoint_id"
        ),
        {"app": app_id, "j": journey_id, "c": cohort_no, "lane": lane, "a": activity_id},
    )
    return [MemberLocale(str(r[0]), int(r[1]), *r[2:]) for r in rows]


def held_lane_name(lane: str, until: datetime) -> str:
    """The lane that waits at an activity until ``until`` (its release time is part of the name)."""
    return f"{lane}.q{int(until.timestamp())}"


async def held_lanes(
    conn: AsyncConnection, journey_id: str, cohort_no: int, lane: str, activity_id: str
) -> list[tuple[str, datetime, int]]:
    """(lane, release time, members) of the lanes held back from ``lane`` at ``activity_id`` (quiet time).

    Read from the ledger rather than remembered, so a retried step reports the lanes an earlier attempt made.
    """
    rows = await conn.execute(
        text(
            "SELECT lane, count(*) FROM participants WHERE journey_id = :j AND cohort_no = :c AND status = 'active' "
            "AND position = :a AND lane LIKE :prefix "
            "GROUP BY lane ORDER BY lane"
        ),
        # Lane names are digits, dots and "q": nothing LIKE would read as a wildcard.
        {"j": journey_id, "c": cohort_no, "a": activity_id, "prefix": f"{lane}.q%"},
    )
    found = [(str(r[0]), int(r[1])) for r in rows if str(r[0])[len(lane) + 2 :].isdigit()]
    return sorted(
        ((name, datetime.fromtimestamp(int(name.rsplit(".q", 1)[1]), UTC), n) for name, n in found),
        key=lambda t: (t[1], t[0]),
    )


async def split_by_members(
    conn: AsyncConnection,
    journey_id: str,
    cohort_no: int,
    lane: str,
    activity_id: str,
    branches: Sequence[tuple[str, str | None, set[tuple[str, int]] | None]],
) -> list[int]:
    """Send a lane's members at a split down its branches, in order.

    Args:
        branches: (new lane, next activity or None to leave, chosen members or None for everyone still
            at the split) per branch; members are (endpoint id, entry number).

    Returns:
        Members sent down each branch.
    """
    counts: list[int] = []
    at = "journey_id = :j AND cohort_no = :c AND lane = :lane AND status = 'active' AND position = :a"
    params = {"j": journey_id, "c": cohort_no, "lane": lane, "a": activity_id}
    for new_lane, next_activity, chosen in branches:
        if chosen is not None and not chosen:
            counts.append(0)
            continue
        pairs = sorted(chosen or ())
        pick = (
            "AND (endpoint_id, entry_no) IN (SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:entries AS int[])))"
            if chosen is not None
            else ""
        )
        result = await conn.execute(
            text(
                "UPDATE participants SET lane = :new_lane, position = :next, "
                "status = CASE WHEN CAST(:next AS text) IS NULL THEN 'completed' ELSE 'active' END, updated_at = now() "
                f"WHERE {at} {pick}"
            ),
            {
                **params,
                "new_lane": new_lane,
                "next": next_activity,
                "ids": [endpoint for endpoint, _ in pairs],
                "entries": [entry for _, entry in pairs],
            },
        )
        counts.append(int(result.rowcount or 0))
    return counts


async def claim_intake(conn: AsyncConnection, journey_id: str, cohort_no: int, limit: int) -> list[str]:
    """Claim up to ``limit`` waiting intake rows for a cohort; their endpoint ids, oldest first."""
    rows = await conn.execute(
        text(
            """
            WITH batch AS (
              SELECT id FROM journey_intake WHERE journey_id = :j AND cohort_no IS NULL
              ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)
            UPDATE journey_intake i SET cohort_no = :c FROM batch WHERE i.id = batch.id
            RETURNING i.id, i.endpoint_id
            """
        ),
        {"j": journey_id, "n": limit, "c": cohort_no},
    )
    return [str(r[1]) for r in sorted(rows, key=lambda r: r[0])]


async def intake_of_cohort(conn: AsyncConnection, journey_id: str, cohort_no: int) -> list[str]:
    """Endpoint ids of the intake rows a cohort claimed."""
    rows = await conn.execute(
        text("SELECT endpoint_id FROM journey_intake WHERE journey_id = :j AND cohort_no = :c ORDER BY id"),
        {"j": journey_id, "c": cohort_no},
    )
    return [str(r[0]) for r in rows]


async def entry_histories(
    conn: AsyncConnection, journey_id: str, endpoint_ids: Sequence[str], user_ids: Sequence[str] = ()
) -> dict[str, EntryHistory]:
    """Earlier entries into the journey, by participant key (see :data:`PARTICIPANT_KEY_SQL`).

    Args:
        endpoint_ids: Endpoints that would enter on their own (``e:`` keys).
        user_ids: Users that would enter with their endpoints (``u:`` keys): a user's entries are counted
            over all of its endpoints' rows.
    """
    rows = await conn.execute(
        text(
            "SELECT k, max(entry_no), bool_or(active), max(entered_at) FROM ("
            "  SELECT 'e:' || endpoint_id AS k, entry_no, status = 'active' AS active, entered_at FROM participants "
            "  WHERE journey_id = :j AND endpoint_id = ANY(:ids) AND user_id IS NULL"
            "  UNION ALL"
            "  SELECT 'u:' || user_id, entry_no, status = 'active', entered_at FROM participants "
            "  WHERE journey_id = :j AND user_id = ANY(:users)"
            ") h GROUP BY k"
        ),
        {"j": journey_id, "ids": list(endpoint_ids), "users": list(user_ids)},
    )
    return {str(r[0]): EntryHistory(entries=int(r[1]), active=bool(r[2]), last_entered_at=r[3]) for r in rows}


async def user_endpoints(conn: AsyncConnection, app_id: str, user_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every endpoint of these users in the app (a user participant enters with all of them), by user id."""
    if not user_ids:
        return {}
    rows = await conn.execute(
        text(
            "SELECT user_id, id FROM endpoints WHERE app_id = :a AND user_id = ANY(:users) ORDER BY user_id, id"
        ),
        {"a": app_id, "users": list(user_ids)},
    )
    found: dict[str, list[str]] = {}
    for user_id, endpoint_id in rows:
        found.setdefault(str(user_id), []).append(str(endpoint_id))
    return found


async def endpoint_users(conn: AsyncConnection, app_id: str, endpoint_ids: Sequence[str]) -> dict[str, str]:
    """The user id of each of these endpoints that has one."""
    rows = await conn.execute(
        text(
            "SELECT id, user_id FROM endpoints WHERE app_id = :a AND id = ANY(:ids) AND user_id IS NOT NULL"
        ),
        {"a": app_id, "ids": list(endpoint_ids)},
    )
    return {str(r[0]): str(r[1]) for r in rows}


async def enter(
    conn: AsyncConnection,
    *,
    app_id: str,
    journey_id: str,
    version: int,
    cohort_no: int,
    start_activity: str,
    admitted: Sequence[tuple[str, int]],
    entered_at: datetime,
    users: Mapping[str, str] | None = None,
) -> None:
    """Put admitted (endpoint id, entry number) pairs into the journey as one cohort at ``start_activity``.

    Args:
        users: The user id of each admitted endpoint that enters as part of a user participant.
    """
    if not admitted:
        return
    user_of = users or {}
    await conn.execute(
        text(
            "INSERT INTO participants (journey_id, endpoint_id, entry_no, app_id, version, cohort_no, lane, position, "
            "entered_at, user_id) "
            "SELECT :j, e, n, :a, :v, :c, '0', :start, :at, u "
            "FROM unnest(CAST(:ids AS text[]), CAST(:entries AS int[]), CAST(:users AS text[])) AS t(e, n, u) "
            # An endpoint that once entered on its own and now enters with its user may already hold this
            # entry number; it sits this entry out rather than failing the whole cohort.
            "ON CONFLICT DO NOTHING"
        ),
        {
            "j": journey_id,
            "a": app_id,
            "v": version,
            "c": cohort_no,
            "start": start_activity,
            "at": entered_at,
            "ids": [e for e, _ in admitted],
            "entries": [n for _, n in admitted],
            "users": [user_of.get(e) for e, _ in admitted],
        },
    )


async def record_cohort(
    conn: AsyncConnection,
    journey_id: str,
    cohort_no: int,
    version: int,
    size: int,
    source: str,
    *,
    run_no: int = 0,
    not_before: datetime | None = None,
    deadline: datetime | None = None,
) -> None:
    """Remember a cohort, so a retried enrollment or intake returns the same cohorts.

    Args:
        run_no: The journey run it belongs to: the first cohort number of its segment enrollment (the first
            enrollment and every refresh are runs); 0 for event-triggered entrants (one run).
        not_before: A LocalTime cohort: when its members' clocks show the journey's start.
        deadline: A LocalTime cohort: when their clocks show its end.
    """
    await conn.execute(
        text(
            "INSERT INTO journey_cohorts (journey_id, cohort_no, version, size, source, run_no, not_before, deadline) "
            "VALUES (:j, :c, :v, :s, :src, :run, :nb, :dl) ON CONFLICT DO NOTHING"
        ),
        {
            "j": journey_id,
            "c": cohort_no,
            "v": version,
            "s": size,
            "src": source,
            "run": run_no,
            "nb": not_before,
            "dl": deadline,
        },
    )


async def timed_cohorts_from(
    conn: AsyncConnection, journey_id: str, first_cohort_no: int, source: str
) -> list[tuple[int, int, datetime | None, datetime | None]]:
    """(cohort_no, size, not_before, deadline) of cohorts from ``first_cohort_no`` on made by ``source``."""
    rows = await conn.execute(
        text(
            "SELECT cohort_no, size, not_before, deadline FROM journey_cohorts "
            "WHERE journey_id = :j AND cohort_no >= :c AND source = :src ORDER BY cohort_no"
        ),
        {"j": journey_id, "c": first_cohort_no, "src": source},
    )
    return [(int(r[0]), int(r[1]), r[2], r[3]) for r in rows]


async def cohorts_from(
    conn: AsyncConnection, journey_id: str, first_cohort_no: int, source: str
) -> list[tuple[int, int]]:
    """(cohort_no, size) of cohorts from ``first_cohort_no`` on made by ``source``."""
    rows = await conn.execute(
        text(
            "SELECT cohort_no, size FROM journey_cohorts WHERE journey_id = :j AND cohort_no >= :c AND source = :src "
            "ORDER BY cohort_no"
        ),
        {"j": journey_id, "c": first_cohort_no, "src": source},
    )
    return [(int(r[0]), int(r[1])) for r in rows]
