"""Activities of the JourneyWorkflow: load the plan, enroll the entry segment, admit event entrants, finish.

Each is idempotent: cohort numbers come from the workflow, and a retried enrollment or intake returns the
cohorts its first attempt made (see :mod:`sojourn.store.journey_ledger`).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from sojourn.domain.journeys import JourneyDefinition, JourneyState, journey_window
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
            segment_id=definition.entry_segment_id,
            cohort_size=self.settings.cohort_size,
            max_cohorts_in_flight=self.settings.max_cohorts_in_flight,
            history_limit=self.settings.journey_history_limit,
        )

    @activity.defn(name="enroll_segment")
    async def enroll_segment(self, inp: EnrollInput) -> list[CohortSpec]:
        """Enter the entry segment's current members into the journey, in cohorts of ``cohort_size``."""
        async with self.db.begin() as conn:
            done = await ledger.cohorts_from(conn, inp.journey_id, inp.first_cohort_no, "segment")
            if done:
                return [CohortSpec(cohort_no=c, size=s, claimed=s) for c, s in done]
            clause = await load_segment_clause(conn, inp.app_id, inp.segment_id, now=datetime.now(UTC))
            result = await conn.execute(enrollment_insert(inp, clause))
            sizes = Counter(int(r[0]) for r in result)
            if sum(sizes.values()) >= ANALYZE_AFTER:
                # Fresh statistics: the first cohorts' split queries are planned right after this insert.
                await conn.execute(text("ANALYZE participants"))
            for cohort_no, size in sorted(sizes.items()):
                await ledger.record_cohort(conn, inp.journey_id, cohort_no, inp.version, size, "segment")
            await ledger.add_counts(
                conn,
                inp.journey_id,
                {("", "ENDPOINT_ENTERED"): sum(sizes.values())},
                shard=ledger.JOURNEY_SHARD,
            )
        return [CohortSpec(cohort_no=c, size=s, claimed=s) for c, s in sorted(sizes.items())]

    @activity.defn(name="admit_intake")
    async def admit_intake(self, inp: AdmitInput) -> CohortSpec | None:
        """Turn waiting event-triggered entrants into cohort ``inp.cohort_no`` (None when nobody waits)."""
        async with self.db.begin() as conn:
            done = await ledger.cohorts_from(conn, inp.journey_id, inp.cohort_no, "intake")
            if done and done[0][0] == inp.cohort_no:
                claimed = await conn.scalar(
                    text("SELECT count(*) FROM journey_intake WHERE journey_id = :j AND cohort_no = :c"),
                    {"j": inp.journey_id, "c": inp.cohort_no},
                )
                return CohortSpec(cohort_no=inp.cohort_no, size=done[0][1], claimed=int(claimed or 0))
            claimed_ids = (
                await conn.execute(
                    text(
                        """
                        WITH batch AS (
                          SELECT id FROM journey_intake WHERE journey_id = :j AND cohort_no IS NULL
                          ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)
                        UPDATE journey_intake i SET cohort_no = :c FROM batch WHERE i.id = batch.id
                        RETURNING i.endpoint_id
                        """
                    ),
                    {"j": inp.journey_id, "n": inp.cohort_size, "c": inp.cohort_no},
                )
            ).fetchall()
            if not claimed_ids:
                return None
            reentry_cap = int(inp.limits.get("EndpointReentryCap") or 0)
            entered = await conn.execute(
                text(
                    """
                    INSERT INTO participants (journey_id, endpoint_id, entry_no, app_id, version, cohort_no, lane, position)
                    SELECT :j, d.endpoint_id, COALESCE(prev.entries, 0) + 1, :a, :v, :c, '0', :start
                    FROM (SELECT DISTINCT endpoint_id FROM journey_intake WHERE journey_id = :j AND cohort_no = :c) d
                    LEFT JOIN LATERAL (
                      SELECT max(entry_no) AS entries, bool_or(status = 'active') AS busy
                      FROM participants p WHERE p.journey_id = :j AND p.endpoint_id = d.endpoint_id) prev ON true
                    WHERE NOT COALESCE(prev.busy, false)
                      AND (CAST(:cap AS int) = 0 OR COALESCE(prev.entries, 0) < CAST(:cap AS int))
                    RETURNING endpoint_id
                    """
                ),
                {
                    "j": inp.journey_id,
                    "a": inp.app_id,
                    "v": inp.version,
                    "c": inp.cohort_no,
                    "start": inp.start_activity,
                    "cap": reentry_cap,
                },
            )
            size = len(entered.fetchall())
            distinct = len({r[0] for r in claimed_ids})
            busy = await self._count_rejections(conn, inp, distinct - size, reentry_cap)
            await ledger.record_cohort(conn, inp.journey_id, inp.cohort_no, inp.version, size, "intake")
            await ledger.add_counts(
                conn, inp.journey_id, {("", "ENDPOINT_ENTERED"): size, **busy}, shard=ledger.JOURNEY_SHARD
            )
        return CohortSpec(cohort_no=inp.cohort_no, size=size, claimed=len(claimed_ids))

    async def _count_rejections(
        self, conn: Any, inp: AdmitInput, rejected: int, cap: int
    ) -> dict[tuple[str, str], int]:
        if rejected <= 0:
            return {}
        over_cap = 0
        if cap:
            over_cap = int(
                await conn.scalar(
                    text(
                        """
                        SELECT count(*) FROM (SELECT DISTINCT endpoint_id FROM journey_intake WHERE journey_id = :j AND cohort_no = :c) d
                        WHERE (SELECT count(*) FROM participants p WHERE p.journey_id = :j AND p.endpoint_id = d.endpoint_id
                               AND p.cohort_no <> :c) >= :cap
                          AND NOT EXISTS (SELECT 1 FROM participants p WHERE p.journey_id = :j AND p.endpoint_id = d.endpoint_id
                               AND p.status = 'active' AND p.cohort_no <> :c)
                        """
                    ),
                    {"j": inp.journey_id, "c": inp.cohort_no, "cap": cap},
                )
                or 0
            )
        return {("", "REENTRY_CAP_EXCEEDED"): over_cap, ("", "ACTIVE_ENDPOINT_REJECTED"): rejected - over_cap}

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
    )
    columns = ["journey_id", "endpoint_id", "entry_no", "app_id", "version", "cohort_no", "lane", "position"]
    return pg_insert(p).from_select(columns, rows).on_conflict_do_nothing().returning(p.c.cohort_no)
