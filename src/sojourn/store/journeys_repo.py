"""Journeys and their versions in Postgres, plus the execution metrics read from the ledgers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_journey(
    conn: AsyncConnection,
    app_id: str,
    journey_id: str,
    name: str,
    state: str,
    definition: dict[str, Any],
    tags: dict[str, str],
) -> None:
    """Store a new journey as version 1."""
    await conn.execute(
        text(
            "INSERT INTO journeys (app_id, id, name, state, version, definition, tags, started_at) "
            "VALUES (:a, :j, :n, :s, 1, CAST(:d AS jsonb), CAST(:t AS jsonb), CASE WHEN :s = 'ACTIVE' THEN now() END)"
        ),
        {"a": app_id, "j": journey_id, "n": name, "s": state, "d": _json(definition), "t": _json(tags)},
    )
    await conn.execute(
        text(
            "INSERT INTO journey_versions (journey_id, version, definition) VALUES (:j, 1, CAST(:d AS jsonb))"
        ),
        {"j": journey_id, "d": _json(definition)},
    )


async def get_journey(
    conn: AsyncConnection, app_id: str, journey_id: str, *, for_update: bool = False
) -> Any | None:
    """The journey row, or None."""
    lock = " FOR UPDATE" if for_update else ""
    result = await conn.execute(
        text(f"SELECT * FROM journeys WHERE app_id = :a AND id = :j{lock}"), {"a": app_id, "j": journey_id}
    )
    return result.first()


async def list_journeys(conn: AsyncConnection, app_id: str, offset: int, limit: int) -> list[Any]:
    """A page of the app's journeys, oldest first."""
    result = await conn.execute(
        text("SELECT * FROM journeys WHERE app_id = :a ORDER BY created_at, id OFFSET :o LIMIT :l"),
        {"a": app_id, "o": offset, "l": limit},
    )
    return list(result)


async def update_definition(
    conn: AsyncConnection,
    app_id: str,
    journey_id: str,
    *,
    definition: dict[str, Any],
    state: str,
    new_version: bool,
) -> int:
    """Replace the definition; ``new_version`` keeps the old one for participants already in the journey."""
    row = (
        await conn.execute(
            text(
                "UPDATE journeys SET definition = CAST(:d AS jsonb), name = :n, state = :s, updated_at = now(), "
                "version = version + CASE WHEN :nv THEN 1 ELSE 0 END, "
                "started_at = COALESCE(started_at, CASE WHEN :s = 'ACTIVE' THEN now() END) "
                "WHERE app_id = :a AND id = :j RETURNING version"
            ),
            {
                "d": _json(definition),
                "n": definition["Name"],
                "s": state,
                "nv": new_version,
                "a": app_id,
                "j": journey_id,
            },
        )
    ).one()
    await conn.execute(
        text(
            "INSERT INTO journey_versions (journey_id, version, definition) VALUES (:j, :v, CAST(:d AS jsonb)) "
            "ON CONFLICT (journey_id, version) DO UPDATE SET definition = EXCLUDED.definition"
        ),
        {"j": journey_id, "v": row.version, "d": _json(definition)},
    )
    return int(row.version)


async def set_state(conn: AsyncConnection, app_id: str, journey_id: str, state: str) -> None:
    """Record a lifecycle change (the workflow is told separately)."""
    await conn.execute(
        text(
            "UPDATE journeys SET state = :s, updated_at = now(), "
            "started_at = COALESCE(started_at, CASE WHEN :s = 'ACTIVE' THEN now() END) WHERE app_id = :a AND id = :j"
        ),
        {"s": state, "a": app_id, "j": journey_id},
    )


_RUN_COHORTS = "SELECT cohort_no FROM journey_cohorts WHERE journey_id = :j AND run_no = :run"


async def journey_metrics(
    conn: AsyncConnection, journey_id: str, run_no: int | None = None
) -> dict[str, int]:
    """Pinpoint's journey execution metrics, from the participant ledger and counters.

    Args:
        run_no: Only this run's participants (GetJourneyRunExecutionMetrics); the entry counters that are
            kept per journey (caps, rejections) are then left out.
    """
    params: dict[str, Any] = {"j": journey_id, "run": run_no}
    in_run = f" AND cohort_no IN ({_RUN_COHORTS})" if run_no is not None else ""
    by_status = {
        r.status: int(r.n)
        for r in await conn.execute(
            text(
                f"SELECT status, count(*) AS n FROM participants WHERE journey_id = :j{in_run} GROUP BY status"
            ),
            params,
        )
    }
    metrics = {
        "ENDPOINT_ENTERED": sum(by_status.values()),
        "ENDPOINT_ACTIVE": by_status.get("active", 0),
        "ENDPOINT_LEFT": sum(n for s, n in by_status.items() if s != "active"),
        "CANCELLED": by_status.get("cancelled", 0),
    }
    if run_no is None:
        counters = {
            r.metric: int(r.value)
            for r in await conn.execute(
                text(
                    "SELECT metric, sum(value) AS value FROM journey_counters WHERE journey_id = :j AND activity_id = '' "
                    "GROUP BY metric"
                ),
                params,
            )
        }
        metrics["ENDPOINT_ENTERED"] = counters.get("ENDPOINT_ENTERED", 0)
        metrics["REENTRY_CAP_EXCEEDED"] = counters.get("REENTRY_CAP_EXCEEDED", 0)
        metrics["ACTIVE_ENDPOINT_REJECTED"] = counters.get("ACTIVE_ENDPOINT_REJECTED", 0)
        # Entry filters sojourn also counts, shown once they happened.
        for extra in ("ENDPOINT_MISSING_TIMEZONE", "FILTERED_OUT_BY_SEGMENT", "REENTRY_INTERVAL_NOT_ELAPSED"):
            if counters.get(extra):
                metrics[extra] = counters[extra]
    return metrics


async def activity_metrics(
    conn: AsyncConnection, journey_id: str, activity_id: str, activity_type: str, run_no: int | None = None
) -> dict[str, int]:
    """Per-activity metrics: message outcomes from the message ledger, path counts from the counters.

    Args:
        run_no: Only this run's cohorts (GetJourneyRunExecutionActivityMetrics).
    """
    params: dict[str, Any] = {"j": journey_id, "a": activity_id, "run": run_no}
    run = run_no is not None
    metrics = {
        r.metric: int(r.value)
        for r in await conn.execute(
            text(
                "SELECT metric, sum(value) AS value FROM journey_counters WHERE journey_id = :j AND activity_id = :a "
                + (f"AND shard IN ({_RUN_COHORTS}) " if run else "")
                + "GROUP BY metric"
            ),
            params,
        )
    }
    if activity_type == "MESSAGE":
        rows = await conn.execute(
            text(
                "SELECT CASE WHEN m.status = 'sent' THEN 'SUCCESS' WHEN m.status = 'pending' THEN 'PENDING' "
                "ELSE split_part(COALESCE(m.status_message, 'FAILURE'), ':', 1) END AS metric, count(*) AS n "
                "FROM messages m "
                + (
                    "JOIN participants p ON p.journey_id = m.journey_id AND p.endpoint_id = m.endpoint_id "
                    f"AND p.entry_no = m.entry_no AND p.cohort_no IN ({_RUN_COHORTS}) "
                    if run
                    else ""
                )
                + "WHERE m.journey_id = :j AND m.activity_id = :a GROUP BY 1"
            ),
            params,
        )
        metrics.update({r.metric: int(r.n) for r in rows})
    if activity_type == "WAIT":
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM participants WHERE journey_id = :j AND status = 'active' AND position = :a"
                + (f" AND cohort_no IN ({_RUN_COHORTS})" if run else "")
            ),
            params,
        )
        metrics["WAITING"] = int(waiting or 0)
    return metrics


@dataclass(frozen=True)
class JourneyRun:
    """One run of a journey: its first enrollment, each segment refresh, or (event-triggered) the one run."""

    run_no: int
    created: datetime
    updated: datetime
    active: int


def run_id(run_no: int) -> str:
    """The RunId the API shows for a run."""
    return f"run-{run_no}"


def parse_run_id(value: str) -> int | None:
    """The run number of a RunId, or None when it is not one."""
    number = value.removeprefix("run-")
    return int(number) if value.startswith("run-") and number.isdigit() else None


async def journey_runs(conn: AsyncConnection, journey_id: str) -> list[JourneyRun]:
    """The journey's runs, newest first."""
    rows = await conn.execute(
        text(
            "SELECT c.run_no, min(c.created_at) AS created, "
            "  COALESCE((SELECT max(p.updated_at) FROM participants p WHERE p.journey_id = :j "
            "            AND p.cohort_no = ANY(array_agg(c.cohort_no))), min(c.created_at)) AS updated, "
            "  (SELECT count(*) FROM participants p WHERE p.journey_id = :j AND p.status = 'active' "
            "   AND p.cohort_no = ANY(array_agg(c.cohort_no))) AS active "
            "FROM journey_cohorts c WHERE c.journey_id = :j GROUP BY c.run_no ORDER BY c.run_no DESC"
        ),
        {"j": journey_id},
    )
    return [JourneyRun(int(r.run_no), r.created, r.updated, int(r.active)) for r in rows]


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), default=str)
