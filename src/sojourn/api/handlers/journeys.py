"""Journey operations: CreateJourney, GetJourney, ListJourneys, UpdateJourney, UpdateJourneyState, metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from sojourn.api.errors import BadRequestError, ConflictError, InternalServerError, NotFoundError, invalid
from sojourn.api.handlers.apps import page_size
from sojourn.api.server import Handler, RequestContext
from sojourn.api.state import AppState
from sojourn.domain.custom_activity import CUSTOM_TEMPLATE_TYPES
from sojourn.domain.journeys import (
    JourneyDefinition,
    JourneyState,
    custom_templates,
    graph_problems,
    message_templates,
    parse_instant,
    settings_problems,
    template_names,
    unsupported_settings,
)
from sojourn.engine import names
from sojourn.engine.inputs import JourneyInput
from sojourn.engine.journey_workflow import JourneyWorkflow
from sojourn.store import journey_kpis
from sojourn.store import journeys_repo as repo
from sojourn.store.apps_repo import require_app
from sojourn.store.segments_repo import SegmentNotFound, load_segment_clause
from sojourn.store.templates_repo import load_email_template, load_template_of_any_type


def parse_definition(body: dict[str, Any]) -> JourneyDefinition:
    """Validate a WriteJourneyRequest into the model, as a BadRequestError listing what to fix."""
    try:
        return JourneyDefinition.model_validate(body)
    except ValidationError as err:
        raise invalid("journey", err) from None


async def check_definition(
    conn: AsyncConnection, app_id: str, definition: JourneyDefinition, state: str
) -> None:
    """Everything that must hold before a journey is stored: graph, templates, entry condition.

    Raises:
        BadRequestError: with every problem found, so the caller can fix them at once.
    """
    problems = graph_problems(definition) + settings_problems(definition) + unsupported_settings(definition)
    if not 1 <= len(definition.Name) <= 150 or any(c.isspace() for c in definition.Name):
        problems.append("Name must be 1-150 characters without spaces")
    for name, version in sorted(template_names(definition), key=lambda t: (t[0], t[1] or "")):
        if await load_email_template(conn, name, version) is None:
            suffix = f" version {version}" if version else ""
            problems.append(
                f"email template '{name}'{suffix} does not exist (create it with CreateEmailTemplate)"
            )
    for template_type, name, version in sorted(
        message_templates(definition), key=lambda t: (t[0], t[1], t[2] or "")
    ):
        if await load_email_template(conn, name, version, template_type=template_type) is None:
            suffix = f" version {version}" if version else ""
            problems.append(
                f"{template_type} template '{name}'{suffix} does not exist "
                f"(create it with Create{template_type.title()}Template)"
            )
    for name, version in sorted(custom_templates(definition), key=lambda t: (t[0], t[1] or "")):
        if await load_template_of_any_type(conn, name, version, CUSTOM_TEMPLATE_TYPES) is None:
            suffix = f" version {version}" if version else ""
            problems.append(
                f"CUSTOM TemplateName: no template '{name}'{suffix} exists "
                f"(of type {', '.join(CUSTOM_TEMPLATE_TYPES)})"
            )
    cond = definition.StartCondition
    if cond is not None and cond.SegmentStartCondition is not None:
        try:
            await load_segment_clause(
                conn, app_id, cond.SegmentStartCondition.SegmentId, now=datetime.now(UTC)
            )
        except SegmentNotFound as err:
            problems.append(f"StartCondition.SegmentStartCondition: {err}")
    if cond is not None and cond.EventStartCondition is not None:
        if cond.EventStartCondition.EventFilter is None:
            problems.append("StartCondition.EventStartCondition needs an EventFilter")
        if cond.EventStartCondition.SegmentId:
            try:
                await load_segment_clause(
                    conn, app_id, cond.EventStartCondition.SegmentId, now=datetime.now(UTC)
                )
            except SegmentNotFound as err:
                problems.append(f"StartCondition.EventStartCondition.SegmentId: {err}")
    if state == JourneyState.ACTIVE:
        if cond is None or (cond.SegmentStartCondition is None and cond.EventStartCondition is None):
            problems.append(
                "an ACTIVE journey needs a StartCondition (SegmentStartCondition or EventStartCondition)"
            )
        if not definition.Activities:
            problems.append("an ACTIVE journey needs at least one activity")
    if problems:
        raise BadRequestError("Invalid journey: " + "; ".join(problems))


def journey_response(row: Any) -> dict[str, Any]:
    """A journeys row as Pinpoint's JourneyResponse."""
    body = JourneyDefinition.model_validate(row.definition).model_dump(
        exclude_none=True, exclude={"CreationDate", "LastModifiedDate"}
    )
    body.update(
        Id=row.id,
        ApplicationId=row.app_id,
        State=row.state,
        CreationDate=row.created_at.isoformat(),
        LastModifiedDate=row.updated_at.isoformat(),
        tags=row.tags or {},
    )
    return body


async def start_journey_workflow(client: Client, state: AppState, app_id: str, journey_id: str) -> None:
    """Start the journey's workflow (a second start of a running one is a no-op)."""
    await client.start_workflow(
        JourneyWorkflow.run,
        JourneyInput(app_id=app_id, journey_id=journey_id, observe=state.settings.temporal_search_attributes),
        id=names.journey_workflow_id(app_id, journey_id),
        task_queue=state.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(names.APP_ID, app_id),
                SearchAttributePair(names.JOURNEY_ID, journey_id),
                SearchAttributePair(names.SOJOURN_KIND, "journey"),
            ]
        )
        if state.settings.temporal_search_attributes
        else None,
        static_summary=f"journey {journey_id} of app {app_id}",
    )


async def _signal(state: AppState, app_id: str, journey_id: str, signal: str, *args: Any) -> None:
    client = await state.temporal()
    handle = client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id))
    try:
        await handle.signal(signal, *args)
    except RPCError as err:
        raise InternalServerError(
            f"the journey's workflow did not take the {signal} signal: {err.message}"
        ) from err


async def create_journey(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateJourney: validate everything, store version 1, start the workflow when ACTIVE."""
    state: AppState = ctx.state
    app_id = params["ApplicationId"]
    body = dict(params["WriteJourneyRequest"])
    tags = body.pop("tags", None) or {}
    definition = parse_definition(body)
    journey_state = str(definition.State or JourneyState.DRAFT)
    if journey_state not in (JourneyState.DRAFT, JourneyState.ACTIVE):
        raise BadRequestError(f"State must be DRAFT or ACTIVE when creating a journey, not {journey_state}")
    journey_id = uuid.uuid4().hex
    async with state.db.begin() as conn:
        await require_app(conn, app_id)
        await check_definition(conn, app_id, definition, journey_state)
        await repo.insert_journey(
            conn, app_id, journey_id, definition.Name, journey_state, definition.wire(), tags
        )
        if journey_state == JourneyState.ACTIVE:
            # Started before commit: if Temporal refuses, nothing is stored; the workflow waits for the row.
            await _start(state, app_id, journey_id)
        row = await repo.get_journey(conn, app_id, journey_id)
    return {"JourneyResponse": journey_response(row)}


async def _start(state: AppState, app_id: str, journey_id: str) -> None:
    try:
        await start_journey_workflow(await state.temporal(), state, app_id, journey_id)
    except RPCError as err:
        raise InternalServerError(f"could not start the journey's workflow: {err.message}") from err


async def get_journey(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetJourney."""
    async with ctx.state.db.connect() as conn:
        row = await _require_journey(conn, params["ApplicationId"], params["JourneyId"])
    return {"JourneyResponse": journey_response(row)}


async def list_journeys(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """ListJourneys, paged with PageSize and Token."""
    app_id = params["ApplicationId"]
    size = int(params.get("PageSize") or 100)
    offset = int(params.get("Token") or 0) if str(params.get("Token") or "0").isdigit() else 0
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        rows = await repo.list_journeys(conn, app_id, offset, size + 1)
    page: dict[str, Any] = {"Item": [journey_response(r) for r in rows[:size]]}
    if len(rows) > size:
        page["NextToken"] = str(offset + size)
    return {"JourneysResponse": page}


async def update_journey(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateJourney: a DRAFT is replaced; an ACTIVE or PAUSED journey gets a new version for new entrants."""
    state: AppState = ctx.state
    app_id, journey_id = params["ApplicationId"], params["JourneyId"]
    body = dict(params["WriteJourneyRequest"])
    body.pop("tags", None)
    definition = parse_definition(body)
    async with state.db.begin() as conn:
        row = await _require_journey(conn, app_id, journey_id, for_update=True)
        current = row.state
        if current in (JourneyState.CANCELLED, JourneyState.COMPLETED, JourneyState.CLOSED):
            raise ConflictError(
                f"journey {journey_id} is {current}: it cannot be changed; create a new journey"
            )
        target = str(definition.State or current)
        if target not in (JourneyState.DRAFT, JourneyState.ACTIVE, current):
            raise BadRequestError(
                f"UpdateJourney can set State to DRAFT or ACTIVE, not {target}; use UpdateJourneyState"
            )
        if current != JourneyState.DRAFT and target == JourneyState.DRAFT:
            raise ConflictError(f"journey {journey_id} is {current}: it cannot go back to DRAFT")
        await check_definition(conn, app_id, definition, target)
        running = current in (JourneyState.ACTIVE, JourneyState.PAUSED)
        await repo.update_definition(
            conn, app_id, journey_id, definition=definition.wire(), state=target, new_version=running
        )
        if current == JourneyState.DRAFT and target == JourneyState.ACTIVE:
            await _start(state, app_id, journey_id)
        row = await repo.get_journey(conn, app_id, journey_id)
    if running:
        # After commit: the workflow reloads the journey when told, and must find the new version stored.
        await _signal(state, app_id, journey_id, "new_version")
    return {"JourneyResponse": journey_response(row)}


async def update_journey_state(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateJourneyState: ACTIVE (resume), PAUSED or CANCELLED."""
    state: AppState = ctx.state
    app_id, journey_id = params["ApplicationId"], params["JourneyId"]
    wanted = str((params.get("JourneyStateRequest") or {}).get("State") or "")
    if wanted not in (JourneyState.ACTIVE, JourneyState.PAUSED, JourneyState.CANCELLED):
        raise BadRequestError(f"State must be ACTIVE, PAUSED or CANCELLED, not {wanted or 'missing'}")
    async with state.db.begin() as conn:
        row = await _require_journey(conn, app_id, journey_id, for_update=True)
        current = row.state
        allowed = {
            JourneyState.ACTIVE: {JourneyState.PAUSED, JourneyState.ACTIVE},
            JourneyState.PAUSED: {JourneyState.ACTIVE, JourneyState.PAUSED},
            JourneyState.CANCELLED: {
                JourneyState.ACTIVE,
                JourneyState.PAUSED,
                JourneyState.DRAFT,
                JourneyState.CLOSED,
            },
        }[JourneyState(wanted)]
        if current == JourneyState.CLOSED and wanted == JourneyState.PAUSED:
            raise ConflictError(
                f"journey {journey_id} is CLOSED: it takes no new entrants and cannot be paused; "
                "cancel it to stop the participants still in it"
            )
        if current not in allowed:
            raise ConflictError(f"journey {journey_id} is {current}: it cannot become {wanted}")
        await repo.set_state(conn, app_id, journey_id, wanted)
        if current != JourneyState.DRAFT:
            await _signal(state, app_id, journey_id, "set_state", wanted)
        row = await repo.get_journey(conn, app_id, journey_id)
    return {"JourneyResponse": journey_response(row)}


async def get_journey_execution_metrics(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetJourneyExecutionMetrics, from the participant ledger."""
    app_id, journey_id = params["ApplicationId"], params["JourneyId"]
    async with ctx.state.db.connect() as conn:
        await _require_journey(conn, app_id, journey_id)
        metrics = await repo.journey_metrics(conn, journey_id)
    return {
        "JourneyExecutionMetricsResponse": {
            "ApplicationId": app_id,
            "JourneyId": journey_id,
            "LastEvaluatedTime": datetime.now(UTC).isoformat(),
            "Metrics": {k: str(v) for k, v in metrics.items()},
        }
    }


async def get_journey_execution_activity_metrics(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    """GetJourneyExecutionActivityMetrics, from the message ledger and the journey counters."""
    app_id, journey_id, activity_id = (
        params["ApplicationId"],
        params["JourneyId"],
        params["JourneyActivityId"],
    )
    async with ctx.state.db.connect() as conn:
        row = await _require_journey(conn, app_id, journey_id)
        definition = JourneyDefinition.model_validate(row.definition)
        activity = definition.Activities.get(activity_id)
        if activity is None:
            raise NotFoundError(f"journey {journey_id} has no activity '{activity_id}'")
        metrics = await repo.activity_metrics(conn, journey_id, activity_id, activity.metric_type)
    return {
        "JourneyExecutionActivityMetricsResponse": {
            "ActivityType": activity.metric_type,
            "ApplicationId": app_id,
            "JourneyActivityId": activity_id,
            "JourneyId": journey_id,
            "LastEvaluatedTime": datetime.now(UTC).isoformat(),
            "Metrics": {k: str(v) for k, v in metrics.items()},
        }
    }


async def _require_journey(
    conn: AsyncConnection, app_id: str, journey_id: str, *, for_update: bool = False
) -> Any:
    await require_app(conn, app_id)
    row = await repo.get_journey(conn, app_id, journey_id, for_update=for_update)
    if row is None:
        raise NotFoundError(f"Journey {journey_id} not found in application {app_id}")
    return row


def _run_no(journey_id: str, raw: str) -> int:
    number = repo.parse_run_id(raw)
    if number is None:
        raise NotFoundError(f"journey {journey_id} has no run {raw!r} (GetJourneyRuns lists them)")
    return number


async def get_journey_runs(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetJourneyRuns: the first enrollment and each segment refresh is a run; an event-triggered journey has one."""
    app_id, journey_id = params["ApplicationId"], params["JourneyId"]
    size = page_size(params.get("PageSize"))
    skip = int(params["Token"]) if str(params.get("Token") or "").isdigit() else 0
    async with ctx.state.db.connect() as conn:
        row = await _require_journey(conn, app_id, journey_id)
        runs = await repo.journey_runs(conn, journey_id)
    cancelled = row.state == JourneyState.CANCELLED
    items = [
        {
            "RunId": repo.run_id(run.run_no),
            "Status": "RUNNING" if run.active else ("CANCELLED" if cancelled else "COMPLETED"),
            "CreationTime": run.created.isoformat(),
            "LastUpdateTime": run.updated.isoformat(),
        }
        for run in runs
    ]
    if not items and row.state == JourneyState.ACTIVE:
        when = (row.started_at or row.updated_at).isoformat()
        items = [
            {"RunId": repo.run_id(0), "Status": "SCHEDULED", "CreationTime": when, "LastUpdateTime": when}
        ]
    page: dict[str, Any] = {"Item": items[skip : skip + size]}
    if skip + size < len(items):
        page["NextToken"] = str(skip + size)
    return {"JourneyRunsResponse": page}


async def get_journey_run_execution_metrics(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetJourneyRunExecutionMetrics: the journey metrics of one run's participants."""
    app_id, journey_id = params["ApplicationId"], params["JourneyId"]
    run_no = _run_no(journey_id, params["RunId"])
    async with ctx.state.db.connect() as conn:
        await _require_journey(conn, app_id, journey_id)
        metrics = await repo.journey_metrics(conn, journey_id, run_no=run_no)
    return {
        "JourneyRunExecutionMetricsResponse": {
            "ApplicationId": app_id,
            "JourneyId": journey_id,
            "RunId": params["RunId"],
            "LastEvaluatedTime": datetime.now(UTC).isoformat(),
            "Metrics": {k: str(v) for k, v in metrics.items()},
        }
    }


async def get_journey_run_execution_activity_metrics(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    """GetJourneyRunExecutionActivityMetrics: one activity's metrics for one run."""
    app_id, journey_id, activity_id = (
        params["ApplicationId"],
        params["JourneyId"],
        params["JourneyActivityId"],
    )
    run_no = _run_no(journey_id, params["RunId"])
    async with ctx.state.db.connect() as conn:
        row = await _require_journey(conn, app_id, journey_id)
        activity = JourneyDefinition.model_validate(row.definition).Activities.get(activity_id)
        if activity is None:
            raise NotFoundError(f"journey {journey_id} has no activity '{activity_id}'")
        metrics = await repo.activity_metrics(
            conn, journey_id, activity_id, activity.metric_type, run_no=run_no
        )
    return {
        "JourneyRunExecutionActivityMetricsResponse": {
            "ActivityType": activity.metric_type,
            "ApplicationId": app_id,
            "JourneyActivityId": activity_id,
            "JourneyId": journey_id,
            "RunId": params["RunId"],
            "LastEvaluatedTime": datetime.now(UTC).isoformat(),
            "Metrics": {k: str(v) for k, v in metrics.items()},
        }
    }


async def get_journey_date_range_kpi(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetJourneyDateRangeKpi: email engagement of the journey between StartTime and EndTime (default: 7 days)."""
    app_id, journey_id, name = params["ApplicationId"], params["JourneyId"], params["KpiName"]
    parsed = journey_kpis.parse_kpi_name(name)
    if parsed is None:
        raise NotFoundError(
            f"{name!r} is not a journey KPI; use one of {', '.join(journey_kpis.kpi_names())}"
        )
    measure, grouped = parsed
    end = _instant(params.get("EndTime"), "EndTime") or datetime.now(UTC)
    start = _instant(params.get("StartTime"), "StartTime") or end - timedelta(days=7)
    if start > end:
        raise BadRequestError("StartTime must not be after EndTime")
    if start < datetime.now(UTC) - timedelta(days=90):
        raise BadRequestError("StartTime must be less than 90 days ago")
    async with ctx.state.db.connect() as conn:
        await _require_journey(conn, app_id, journey_id)
        counts = await journey_kpis.measure_by_activity(conn, journey_id, measure, start, end)
    key = "".join(part.title() for part in f"emails-{measure}".split("-"))
    if grouped:
        rows = [
            {
                "GroupedBys": [{"Key": "JourneyActivityId", "Type": "String", "Value": activity_id}],
                "Values": [{"Key": key, "Type": "Double", "Value": str(float(n))}],
            }
            for activity_id, n in sorted(counts.items())
        ]
    else:
        rows = [
            {
                "GroupedBys": [],
                "Values": [{"Key": key, "Type": "Double", "Value": str(float(sum(counts.values())))}],
            }
        ]
    return {
        "JourneyDateRangeKpiResponse": {
            "ApplicationId": app_id,
            "JourneyId": journey_id,
            "KpiName": name,
            "StartTime": start.isoformat(),
            "EndTime": end.isoformat(),
            "KpiResult": {"Rows": rows},
        }
    }


def _instant(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return parse_instant(str(value))
    except ValueError as err:
        raise BadRequestError(f"{field}: {err}") from None


HANDLERS: dict[str, Handler] = {
    "CreateJourney": create_journey,
    "GetJourney": get_journey,
    "ListJourneys": list_journeys,
    "UpdateJourney": update_journey,
    "UpdateJourneyState": update_journey_state,
    "GetJourneyExecutionMetrics": get_journey_execution_metrics,
    "GetJourneyExecutionActivityMetrics": get_journey_execution_activity_metrics,
    "GetJourneyRuns": get_journey_runs,
    "GetJourneyRunExecutionMetrics": get_journey_run_execution_metrics,
    "GetJourneyRunExecutionActivityMetrics": get_journey_run_execution_activity_metrics,
    "GetJourneyDateRangeKpi": get_journey_date_range_kpi,
}
