"""Activities of the JourneyWorkflow: load the plan, enroll the entry segment, admit event entrants, finish.

Each is idempotent: cohort numbers come from the workflow, and a retried enrollment or intake returns the
cohorts its first attempt made (see :mod:`sojourn.store.journey_ledger`).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Integer, and_, func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from sojourn.domain.durations import parse_duration
from sojourn.domain.entry import entry_verdict
from sojourn.domain.journeys import JourneyDefinition, JourneyState, journey_window, zone_window
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
            e = endpoints
            members = await conn.execute(
                select(
                    e.c.id,
                    e.c.demographic["Timezone"].astext,
                    e.c.channel_type,
                    e.c.address,
                    e.c.location["Country"].astext,
                    e.c.location["PostalCode"].astext,
                )
                .where(e.c.app_id == inp.app_id, clause)
                .order_by(e.c.id)
            )
            by_zone: dict[str, list[str]] = {}
            missing = 0
            methods = definition.TimezoneEstimationMethods or []
            for endpoint_id, tz, channel, address, country, postal in members:
                zone = participant_zone(
                    timezone=tz,
                    channel_type=channel,
                    address=address,
                    country=country,
                    postal_code=postal,
                    methods=methods,
                )
                if zone is None:
                    missing += 1
                else:
                    by_zone.setdefault(str(zone), []).append(endpoint_id)
            windows = {name: zone_window(definition, published, zone_named(name) or UTC) for name in by_zone}
            specs: list[CohortSpec] = []
            cohort_no = inp.first_cohort_no
            for name in sorted(by_zone, key=lambda n: (windows[n][0], n)):
                ids = by_zone[name]
                starts, ends = windows[name]
                for at in range(0, len(ids), inp.cohort_size):
                    chunk = ids[at : at + inp.cohort_size]
                    await ledger.enter(
                        conn,
                        app_id=inp.app_id,
                        journey_id=inp.journey_id,
                        version=inp.version,
                        cohort_no=cohort_no,
                        start_activity=inp.start_activity,
                        admitted=[(endpoint_id, 1) for endpoint_id in chunk],
                        entered_at=starts,
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
            candidates = list(dict.fromkeys(claimed))
            histories = await ledger.entry_histories(conn, inp.journey_id, candidates)
            members = await self._segment_members(conn, inp, candidates)
            now = inp.now or datetime.now(UTC)
            interval = inp.limits.get("EndpointReentryInterval")
            verdicts = {
                endpoint: entry_verdict(
                    histories.get(endpoint),
                    in_segment=members is None or endpoint in members,
                    cap=int(inp.limits.get("EndpointReentryCap") or 0),
                    interval=parse_duration(interval) if interval else None,
                    now=now,
                )
                for endpoint in candidates
            }
            admitted = [
                (e, histories[e].entries + 1 if e in histories else 1)
                for e, v in verdicts.items()
                if v is None
            ]
            await ledger.enter(
                conn,
                app_id=inp.app_id,
                journey_id=inp.journey_id,
                version=inp.version,
                cohort_no=inp.cohort_no,
                start_activity=inp.start_activity,
                admitted=admitted,
                entered_at=now,
            )
            counts = Counter(("", v) for v in verdicts.values() if v is not None)
            counts[("", "ENDPOINT_ENTERED")] = len(admitted)
            await ledger.record_cohort(
                conn, inp.journey_id, inp.cohort_no, inp.version, len(admitted), "intake"
            )
            await ledger.add_counts(conn, inp.journey_id, counts, shard=ledger.JOURNEY_SHARD)
        return CohortSpec(cohort_no=inp.cohort_no, size=len(admitted), claimed=len(claimed))

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


def enrollment_insert(inp: EnrollInput, clause: ColumnElement[bool]) -> Any:
    """INSERT ... SELECT of the segment's members into the participant ledger, numbered into cohorts."""
    e, p = endpoints, participants
    members = (
        select(e.c.id, (func.row_number().over(order_by=e.c.id) - 1).label("rn"))
        .where(e.c.app_id == inp.app_id, clause)
        .subquery()
    )
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
]


def reentry_insert(inp: EnrollInput, clause: ColumnElement[bool]) -> Any:
    """INSERT ... SELECT of a segment refresh: members who never entered, and those who may enter again.

    Entering again takes an explicit ``Limits.EndpointReentryCap`` (0: unlimited), no current participation,
    and ``EndpointReentryInterval`` elapsed since the last entry; without the cap, a refresh only adds members
    new to the journey (otherwise every refresh would send everyone through again).
    """
    e, p = endpoints, participants
    history = (
        select(
            p.c.endpoint_id,
            func.max(p.c.entry_no).label("entries"),
            func.bool_or(p.c.status == "active").label("active"),
            func.max(p.c.entered_at).label("last_entered_at"),
        )
        .where(p.c.journey_id == inp.journey_id)
        .group_by(p.c.endpoint_id)
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
    members = (
        select(
            e.c.id,
            (func.coalesce(history.c.entries, 0) + 1).label("entry_no"),
            (func.row_number().over(order_by=e.c.id) - 1).label("rn"),
        )
        .select_from(e.outerjoin(history, history.c.endpoint_id == e.c.id))
        .where(e.c.app_id == inp.app_id, clause, or_(history.c.endpoint_id.is_(None), and_(*again)))
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
    )
    return pg_insert(p).from_select(_ENTRY_COLUMNS, rows).on_conflict_do_nothing().returning(p.c.cohort_no)


def _event_entry_segment(definition: JourneyDefinition) -> str | None:
    """The segment an event-triggered journey's entrants must be in (EventStartCondition.SegmentId)."""
    cond = definition.StartCondition
    return cond.EventStartCondition.SegmentId if cond and cond.EventStartCondition else None
