"""Activities of the JourneyWorkflow: load the plan, enroll the entry segment, admit event entrants, finish.

Each is idempotent: cohort numbers come from the workflow, and a retried enrollment or intake returns the
cohorts its first attempt made (see :mod:`sojourn.store.journey_ledger`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Text,
    and_,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from sojourn.domain.durations import parse_duration
from sojourn.domain.entry import entry_verdict
from sojourn.domain.journeys import JourneyDefinition, JourneyState, journey_window, zone_window
from sojourn.domain.participants import participant_key, shared_zones
from sojourn.domain.sending_window import zone_named
from sojourn.domain.timezones import participant_zone
from sojourn.engine.inputs import (
    AdmitInput,
    CohortsCancel,
    CohortSpec,
    EnrollInput,
    JourneyFinish,
    JourneyPlan,
    JourneyRef,
)
from sojourn.settings import Settings
from sojourn.store import journey_ledger as ledger
from sojourn.store.segments_repo import load_segment_clause
from sojourn.store.tables import endpoints, participants

ANALYZE_AFTER = 5000


@dataclass(frozen=True)
class Entrant:
    """A participant that event-triggered entrants would enter: an endpoint, or a user with its endpoints."""

    endpoint_id: str
    user_id: str | None
    endpoint_ids: list[str]
    in_segment: bool


class JourneyActivities:
    """Lifecycle and entry activities, bound to the database."""

    def __init__(self, db: AsyncEngine, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def all(self) -> list[Any]:
        """Every activity callable, for the worker."""
        return [
            self.load_journey_plan,
            self.enroll_segment,
            self.admit_intake,
            self.cancel_cohorts,
            self.finished_cohorts,
            self.close_entry,
            self.finish_journey,
        ]

    @activity.defn(name="cancel_cohorts")
    async def cancel_cohorts(self, inp: CohortsCancel) -> int:
        """Members of cohorts that never started leave the journey as cancelled."""
        async with self.db.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE participants SET status = 'cancelled', position = NULL, updated_at = now() "
                    "WHERE journey_id = :j AND cohort_no = ANY(:c) AND status = 'active'"
                ),
                {"j": inp.journey_id, "c": inp.cohort_nos},
            )
            n = int(result.rowcount or 0)
            await ledger.add_counts(conn, inp.journey_id, {("", "CANCELLED"): n}, shard=ledger.JOURNEY_SHARD)
        return n

    @activity.defn(name="finished_cohorts")
    async def finished_cohorts(self, inp: CohortsCancel) -> list[int]:
        """Which of the cohorts have no participant left in the journey (their work is done)."""
        async with self.db.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT c FROM unnest(CAST(:c AS int[])) AS c WHERE NOT EXISTS ("
                    "  SELECT 1 FROM participants p WHERE p.journey_id = :j AND p.cohort_no = c "
                    "  AND p.status = 'active')"
                ),
                {"j": inp.journey_id, "c": inp.cohort_nos},
            )
            return [int(r[0]) for r in rows]

    @activity.defn(name="load_journey_plan")
    async def load_journey_plan(self, ref: JourneyRef) -> JourneyPlan:
        """Load the journey's current version and compute when entries start and end."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT version, state, definition, started_at, updated_at FROM journeys "
                        "WHERE app_id = :a AND id = :j"
                    ),
                    {"a": ref.app_id, "j": ref.journey_id},
                )
            ).one()
        definition = JourneyDefinition.model_validate(row.definition)
        published = row.started_at or row.updated_at
        start_at, end_at = journey_window(definition, published)
        entry = (
            "segment"
            if definition.entry_segment_id
            else ("event" if definition.entry_event_filter else "none")
        )
        return JourneyPlan(
            app_id=ref.app_id,
            journey_id=ref.journey_id,
            version=row.version,
            state=row.state,
            definition=definition.model_dump(mode="json", exclude_none=True),
            start_at=start_at,
            end_at=end_at,
            entry=entry,
            segment_id=definition.entry_segment_id or _event_entry_segment(definition),
            cohort_size=self.settings.cohort_size,
            max_cohorts_in_flight=self.settings.max_cohorts_in_flight,
            history_limit=self.settings.journey_history_limit,
            refresh_every=parse_duration(definition.RefreshFrequency)
            if definition.RefreshFrequency
            else None,
            refresh_on_update=bool(definition.RefreshOnSegmentUpdate),
        )

    @activity.defn(name="enroll_segment")
    async def enroll_segment(self, inp: EnrollInput) -> list[CohortSpec]:
        """Enter the entry segment's current members into the journey, in cohorts of ``cohort_size``."""
        if inp.local_time:
            return await self._enroll_in_local_time(inp)
        source = "refresh" if inp.refresh else "segment"
        async with self.db.begin() as conn:
            done = await ledger.cohorts_from(conn, inp.journey_id, inp.first_cohort_no, source)
            if done:
                return [CohortSpec(cohort_no=c, size=s, claimed=s) for c, s in done]
            clause = await load_segment_clause(conn, inp.app_id, inp.segment_id, now=datetime.now(UTC))
            result = await conn.execute(
                reentry_insert(inp, clause) if inp.refresh else enrollment_insert(inp, clause)
            )
            sizes = Counter(int(r[0]) for r in result)
            if sum(sizes.values()) >= ANALYZE_AFTER:
                # Fresh statistics: the first cohorts' split queries are planned right after this insert.
                await conn.execute(text("ANALYZE participants"))
            for cohort_no, size in sorted(sizes.items()):
                await ledger.record_cohort(
                    conn, inp.journey_id, cohort_no, inp.version, size, source, run_no=inp.first_cohort_no
                )
            await ledger.add_counts(
                conn,
                inp.journey_id,
                {("", "ENDPOINT_ENTERED"): sum(sizes.values())},
                shard=ledger.JOURNEY_SHARD,
            )
        return [CohortSpec(cohort_no=c, size=s, claimed=s) for c, s in sorted(sizes.items())]

    async def _enroll_in_local_time(self, inp: EnrollInput) -> list[CohortSpec]:
        """LocalTime: the segment's members in cohorts by time zone, each entering when its clock shows the start.

        Members whose zone is unknown (no valid ``Demographic.Timezone`` and no estimate) are left out and
        counted as ``ENDPOINT_MISSING_TIMEZONE``, as Pinpoint excludes them.
        """
        async with self.db.begin() as conn:
            done = await ledger.timed_cohorts_from(conn, inp.journey_id, inp.first_cohort_no, "local")
            if done:
                return [
                    CohortSpec(cohort_no=c, size=s, claimed=s, not_before=nb, deadline=dl)
                    for c, s, nb, dl in done
                ]
            journey = (
                await conn.execute(
                    text(
                        "SELECT j.started_at, j.updated_at, v.definition FROM journeys j JOIN journey_versions v "
                        "ON v.journey_id = j.id AND v.version = :v WHERE j.app_id = :a AND j.id = :j"
                    ),
                    {"a": inp.app_id, "j": inp.journey_id, "v": inp.version},
                )
            ).one()
            definition = JourneyDefinition.model_validate(journey.definition)
            published = journey.started_at or journey.updated_at
            clause = await load_segment_clause(conn, inp.app_id, inp.segment_id, now=datetime.now(UTC))
            e, entrants = endpoints, segment_entrants(inp.app_id, clause)
            members = await conn.execute(
                select(
                    e.c.id,
                    entrants.c.user_id,
                    e.c.demographic["Timezone"].astext,
                    e.c.channel_type,
                    e.c.address,
                    e.c.location["Country"].astext,
                    e.c.location["PostalCode"].astext,
                )
                .select_from(entrants.join(e, and_(e.c.app_id == inp.app_id, e.c.id == entrants.c.id)))
                .order_by(entrants.c.key, e.c.id)
            )
            own: list[tuple[str, str | None, str | None]] = []
            users: dict[str, str] = {}
            methods = definition.TimezoneEstimationMethods or []
            for endpoint_id, user_id, tz, channel, address, country, postal in members:
                zone = participant_zone(
                    timezone=tz,
                    channel_type=channel,
                    address=address,
                    country=country,
                    postal_code=postal,
                    methods=methods,
                )
                own.append((endpoint_id, user_id, str(zone) if zone is not None else None))
                if user_id is not None:
                    users[endpoint_id] = user_id
            # A participant (a user with its endpoints, or an endpoint) enters on one clock.
            zone_of = shared_zones(own)
            groups: dict[str, list[str]] = {}
            for endpoint_id, user_id, _ in own:
                groups.setdefault(participant_key(endpoint_id, user_id), []).append(endpoint_id)
            by_zone: dict[str, list[str]] = {}
            missing = 0
            for key, ids in groups.items():
                name = zone_of[ids[0]]
                if name is None:
                    missing += len(ids)
                else:
                    by_zone.setdefault(name, []).append(key)
            windows = {name: zone_window(definition, published, zone_named(name) or UTC) for name in by_zone}
            specs: list[CohortSpec] = []
            cohort_no = inp.first_cohort_no
            for name in sorted(by_zone, key=lambda n: (windows[n][0], n)):
                keys = by_zone[name]
                starts, ends = windows[name]
                for at in range(0, len(keys), inp.cohort_size):
                    chunk = [
                        endpoint_id for key in keys[at : at + inp.cohort_size] for endpoint_id in groups[key]
                    ]
                    await ledger.enter(
                        conn,
                        app_id=inp.app_id,
                        journey_id=inp.journey_id,
                        version=inp.version,
                        cohort_no=cohort_no,
                        start_activity=inp.start_activity,
                        admitted=[(endpoint_id, 1) for endpoint_id in chunk],
                        entered_at=starts,
                        users=users,
                    )
                    await ledger.record_cohort(
                        conn,
                        inp.journey_id,
                        cohort_no,
                        inp.version,
                        len(chunk),
                        "local",
                        run_no=inp.first_cohort_no,
                        not_before=starts,
                        deadline=ends,
                    )
                    specs.append(
                        CohortSpec(
                            cohort_no=cohort_no,
                            size=len(chunk),
                            claimed=len(chunk),
                            not_before=starts,
                            deadline=ends,
                        )
                    )
                    cohort_no += 1
            await ledger.add_counts(
                conn,
                inp.journey_id,
                {
                    ("", "ENDPOINT_ENTERED"): sum(s.size for s in specs),
                    ("", "ENDPOINT_MISSING_TIMEZONE"): missing,
                },
                shard=ledger.JOURNEY_SHARD,
            )
        return specs

    @activity.defn(name="admit_intake")
    async def admit_intake(self, inp: AdmitInput) -> CohortSpec | None:
        """Turn waiting event-triggered entrants into cohort ``inp.cohort_no`` (None when nobody waits).

        Who enters follows :func:`sojourn.domain.entry.entry_verdict`; the others are counted by reason.
        """
        async with self.db.begin() as conn:
            done = await ledger.cohorts_from(conn, inp.journey_id, inp.cohort_no, "intake")
            if done and done[0][0] == inp.cohort_no:
                claimed = await ledger.intake_of_cohort(conn, inp.journey_id, inp.cohort_no)
                return CohortSpec(cohort_no=inp.cohort_no, size=done[0][1], claimed=len(claimed))
            claimed = await ledger.claim_intake(conn, inp.journey_id, inp.cohort_no, inp.cohort_size)
            if not claimed:
                return None
            entrants = await self._entrants(conn, inp, list(dict.fromkeys(claimed)))
            histories = await ledger.entry_histories(
                conn,
                inp.journey_id,
                [e.endpoint_id for e in entrants.values() if e.user_id is None],
                [e.user_id for e in entrants.values() if e.user_id is not None],
            )
            now = inp.now or datetime.now(UTC)
            interval = inp.limits.get("EndpointReentryInterval")
            verdicts = {
                key: entry_verdict(
                    histories.get(key),
                    in_segment=entrant.in_segment,
                    cap=int(inp.limits.get("EndpointReentryCap") or 0),
                    interval=parse_duration(interval) if interval else None,
                    now=now,
                )
                for key, entrant in entrants.items()
            }
            admitted: list[tuple[str, int]] = []
            users: dict[str, str] = {}
            for key, entrant in entrants.items():
                if verdicts[key] is not None:
                    continue
                entry_no = histories[key].entries + 1 if key in histories else 1
                admitted += [(endpoint_id, entry_no) for endpoint_id in entrant.endpoint_ids]
                if entrant.user_id is not None:
                    users.update(dict.fromkeys(entrant.endpoint_ids, entrant.user_id))
            await ledger.enter(
                conn,
                app_id=inp.app_id,
                journey_id=inp.journey_id,
                version=inp.version,
                cohort_no=inp.cohort_no,
                start_activity=inp.start_activity,
                admitted=admitted,
                entered_at=now,
                users=users,
            )
            counts = Counter(("", v) for v in verdicts.values() if v is not None)
            counts[("", "ENDPOINT_ENTERED")] = len(admitted)
            await ledger.record_cohort(
                conn, inp.journey_id, inp.cohort_no, inp.version, len(admitted), "intake"
            )
            await ledger.add_counts(conn, inp.journey_id, counts, shard=ledger.JOURNEY_SHARD)
        return CohortSpec(cohort_no=inp.cohort_no, size=len(admitted), claimed=len(claimed))

    async def _entrants(self, conn: Any, inp: AdmitInput, candidates: list[str]) -> dict[str, Entrant]:
        """The participants that events of ``candidates`` (endpoint ids) would enter, by participant key.

        An endpoint with a user id brings its user: every endpoint of the user in the app, once however many
        of them had the event. With ``inp.segment_id`` a user is in the segment when any of its endpoints is
        (the OR across a user's endpoints of Pinpoint §1.2).
        """
        user_of = await ledger.endpoint_users(conn, inp.app_id, candidates)
        of_user = await ledger.user_endpoints(conn, inp.app_id, sorted(set(user_of.values())))
        every = sorted({*candidates, *(e for ids in of_user.values() for e in ids)})
        members = await self._segment_members(conn, inp, every)
        entrants: dict[str, Entrant] = {}
        for endpoint_id in candidates:
            user_id = user_of.get(endpoint_id)
            key = participant_key(endpoint_id, user_id)
            if key in entrants:
                continue
            ids = of_user.get(user_id, [endpoint_id]) if user_id is not None else [endpoint_id]
            entrants[key] = Entrant(
                endpoint_id=endpoint_id,
                user_id=user_id,
                endpoint_ids=ids,
                in_segment=members is None or any(e in members for e in ids),
            )
        return entrants

    async def _segment_members(self, conn: Any, inp: AdmitInput, candidates: list[str]) -> set[str] | None:
        """Which candidates are in the segment that restricts entry (None: no such segment)."""
        if not inp.segment_id:
            return None
        clause = await load_segment_clause(conn, inp.app_id, inp.segment_id, now=datetime.now(UTC))
        rows = await conn.execute(
            select(endpoints.c.id).where(
                endpoints.c.app_id == inp.app_id, endpoints.c.id.in_(candidates), clause
            )
        )
        return {r[0] for r in rows}

    @activity.defn(name="close_entry")
    async def close_entry(self, inp: JourneyFinish) -> None:
        """The journey takes no more entrants (start passed without refresh, or end time): ACTIVE becomes CLOSED."""
        async with self.db.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE journeys SET state = 'CLOSED', updated_at = now() "
                    "WHERE app_id = :a AND id = :j AND state = 'ACTIVE'"
                ),
                {"a": inp.app_id, "j": inp.journey_id},
            )

    @activity.defn(name="finish_journey")
    async def finish_journey(self, inp: JourneyFinish) -> None:
        """Record the journey's final state (a cancelled journey stays CANCELLED)."""
        async with self.db.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE journeys SET state = :s, updated_at = now() WHERE app_id = :a AND id = :j "
                    "AND state NOT IN ('CANCELLED', 'DRAFT')"
                ),
                {
                    "s": inp.state if inp.state in JourneyState.__members__ else JourneyState.COMPLETED,
                    "a": inp.app_id,
                    "j": inp.journey_id,
                },
            )


def participant_key_sql(user_id: Any, endpoint_id: Any) -> ColumnElement[str]:
    """:func:`sojourn.domain.participants.participant_key` as SQL over two columns."""
    return func.coalesce(literal("u:", Text).op("||")(user_id), literal("e:", Text).op("||")(endpoint_id))


def segment_entrants(app_id: str, clause: ColumnElement[bool]) -> Any:
    """The endpoints a segment puts into a journey: its members without a user id, and every endpoint of the
    users its members belong to (a user participant enters with all of its endpoints, Pinpoint §1.2).

    Returns:
        A subquery with ``id``, ``user_id`` and ``key`` (the participant key).
    """
    e = endpoints
    members = select(e.c.id, e.c.user_id).where(e.c.app_id == app_id, clause).cte("segment_members")
    alone = select(members.c.id, members.c.user_id).where(members.c.user_id.is_(None))
    of_users = select(e.c.id, e.c.user_id).where(
        e.c.app_id == app_id,
        e.c.user_id.in_(select(members.c.user_id).where(members.c.user_id.is_not(None))),
    )
    both = union_all(alone, of_users).subquery("entrants")
    return select(
        both.c.id, both.c.user_id, participant_key_sql(both.c.user_id, both.c.id).label("key")
    ).subquery("entrant_keys")


def enrollment_insert(inp: EnrollInput, clause: ColumnElement[bool]) -> Any:
    """INSERT ... SELECT of the segment's participants into the participant ledger, numbered into cohorts.

    Cohorts are numbered by participant (``dense_rank`` of the participant key), so a user's endpoints share
    one cohort; for endpoint participants this is the endpoint order it always was.
    """
    p = participants
    entrants = segment_entrants(inp.app_id, clause)
    members = select(
        entrants.c.id,
        entrants.c.user_id,
        (func.dense_rank().over(order_by=entrants.c.key) - 1).label("rn"),
    ).subquery()
    rows = select(
        literal(inp.journey_id),
        members.c.id,
        literal(1),
        literal(inp.app_id),
        literal(inp.version),
        (literal(inp.first_cohort_no) + members.c.rn // inp.cohort_size).cast(Integer),
        literal("0"),
        literal(inp.start_activity),
        literal(inp.now or datetime.now(UTC), DateTime(timezone=True)),
        members.c.user_id,
    )
    return pg_insert(p).from_select(_ENTRY_COLUMNS, rows).on_conflict_do_nothing().returning(p.c.cohort_no)


_ENTRY_COLUMNS = [
    "journey_id",
    "endpoint_id",
    "entry_no",
    "app_id",
    "version",
    "cohort_no",
    "lane",
    "position",
    "entered_at",
    "user_id",
]


def reentry_insert(inp: EnrollInput, clause: ColumnElement[bool]) -> Any:
    """INSERT ... SELECT of a segment refresh: participants who never entered, and those who may enter again.

    Entering again takes an explicit ``Limits.EndpointReentryCap`` (0: unlimited), no current participation,
    and ``EndpointReentryInterval`` elapsed since the last entry; without the cap, a refresh only adds members
    new to the journey (otherwise every refresh would send everyone through again). A user participant's
    entries, activity and last entry are those of any of its endpoints' rows.
    """
    p = participants
    key = participant_key_sql(p.c.user_id, p.c.endpoint_id)
    history = (
        select(
            key.label("key"),
            func.max(p.c.entry_no).label("entries"),
            func.bool_or(p.c.status == "active").label("active"),
            func.max(p.c.entered_at).label("last_entered_at"),
        )
        .where(p.c.journey_id == inp.journey_id)
        .group_by(key)
        .subquery()
    )
    now = inp.now or datetime.now(UTC)
    cap = inp.limits.get("EndpointReentryCap")
    interval = inp.limits.get("EndpointReentryInterval")
    again: list[ColumnElement[bool]] = [history.c.active.is_(False)]
    if cap is None:
        again.append(literal(False))
    elif int(cap) > 0:
        again.append(history.c.entries < int(cap))
    if interval:
        again.append(history.c.last_entered_at <= now - parse_duration(interval))
    entrants = segment_entrants(inp.app_id, clause)
    members = (
        select(
            entrants.c.id,
            entrants.c.user_id,
            (func.coalesce(history.c.entries, 0) + 1).label("entry_no"),
            (func.dense_rank().over(order_by=entrants.c.key) - 1).label("rn"),
        )
        .select_from(entrants.outerjoin(history, history.c.key == entrants.c.key))
        .where(or_(history.c.key.is_(None), and_(*again)))
        .subquery()
    )
    rows = select(
        literal(inp.journey_id),
        members.c.id,
        members.c.entry_no,
        literal(inp.app_id),
        literal(inp.version),
        (literal(inp.first_cohort_no) + members.c.rn // inp.cohort_size).cast(Integer),
        literal("0"),
        literal(inp.start_activity),
        literal(now, DateTime(timezone=True)),
        members.c.user_id,
    )
    return pg_insert(p).from_select(_ENTRY_COLUMNS, rows).on_conflict_do_nothing().returning(p.c.cohort_no)


def _event_entry_segment(definition: JourneyDefinition) -> str | None:
    """The segment an event-triggered journey's entrants must be in (EventStartCondition.SegmentId)."""
    cond = definition.StartCondition
    return cond.EventStartCondition.SegmentId if cond and cond.EventStartCondition else None
