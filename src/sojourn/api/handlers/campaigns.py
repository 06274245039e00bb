"""Campaign operations: CreateCampaign, GetCampaign(s), UpdateCampaign, DeleteCampaign, versions, runs, KPIs.

What the API acknowledges is in Postgres before the 2xx; the campaign's workflow is started (or signalled)
inside the same transaction, so a Temporal failure leaves nothing stored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from sojourn.api.errors import BadRequestError, InternalServerError, NotFoundError
from sojourn.api.server import Handler, RequestContext
from sojourn.api.state import AppState
from sojourn.domain.campaign_schedule import treatment_for_cohort
from sojourn.domain.campaigns import (
    IMMEDIATE,
    CampaignDefinition,
    CampaignStatus,
    campaign_problems,
    in_app_fields,
    in_app_message,
    in_app_template,
    schedule_rule,
    treatment_channels,
)
from sojourn.engine import names
from sojourn.engine.campaign_activities import endpoint_cohort
from sojourn.engine.campaign_inputs import CampaignInput
from sojourn.engine.campaign_workflow import CampaignWorkflow
from sojourn.store import campaigns_repo as repo
from sojourn.store.apps_repo import require_app
from sojourn.store.endpoint_rows import get_endpoint, iso_timestamp
from sojourn.store.segments_repo import SegmentNotFound, load_segment_clause
from sojourn.store.templates_repo import load_email_template, type_word

MAX_EVENT_CAMPAIGNS = 25
_CREATE_TEMPLATE = {
    "EMAIL": "CreateEmailTemplate",
    "SMS": "CreateSmsTemplate",
    "PUSH": "CreatePushTemplate",
    "VOICE": "CreateVoiceTemplate",
    "INAPP": "CreateInAppTemplate",
}
DEFAULT_KPI_DAYS = 7


def parse_definition(body: dict[str, Any]) -> CampaignDefinition:
    """Validate a WriteCampaignRequest into the model, as a BadRequestError listing what to fix."""
    try:
        return CampaignDefinition.model_validate(body)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise BadRequestError("Invalid campaign: " + "; ".join(problems)) from None


async def check_definition(
    conn: AsyncConnection, app_id: str, definition: CampaignDefinition, *, campaign_id: str | None
) -> None:
    """Everything that must hold before a campaign is stored: fields, segment, templates, event limits.

    Raises:
        BadRequestError: with every problem found, so the caller can fix them at once.
    """
    problems = campaign_problems(definition, creating=True)
    segment = None
    if definition.SegmentId:
        try:
            await load_segment_clause(conn, app_id, definition.SegmentId, now=datetime.now(UTC))
            segment = (
                await conn.execute(
                    text("SELECT segment_type, version FROM segments WHERE app_id = :a AND id = :s"),
                    {"a": app_id, "s": definition.SegmentId},
                )
            ).first()
        except SegmentNotFound as err:
            problems.append(f"SegmentId: {err} (create it with CreateSegment)")
    if segment is not None and definition.SegmentVersion is not None:
        if not 1 <= definition.SegmentVersion <= int(segment.version):
            problems.append(
                f"SegmentVersion {definition.SegmentVersion} does not exist: the segment's latest version is "
                f"{segment.version}"
            )
    if definition.is_event:
        if segment is not None and segment.segment_type != "DIMENSIONAL":
            problems.append("an EVENT campaign needs a dynamic (DIMENSIONAL) segment, not an imported one")
        others = await conn.scalar(
            text(
                "SELECT count(*) FROM campaigns WHERE app_id = :a AND id IS DISTINCT FROM :c "
                "AND definition -> 'Schedule' ->> 'Frequency' = 'EVENT' AND state <> 'COMPLETED'"
            ),
            {"a": app_id, "c": campaign_id},
        )
        if int(others or 0) >= MAX_EVENT_CAMPAIGNS:
            problems.append(f"an application has at most {MAX_EVENT_CAMPAIGNS} EVENT campaigns")
    if definition.IsPaused and definition.Schedule is not None and definition.Schedule.StartTime == IMMEDIATE:
        problems.append("a campaign that starts IMMEDIATE cannot be paused")
    for treatment_id in range(len(definition.AdditionalTreatments) + 1):
        named = [
            (channel, source.template)
            for channel, source in treatment_channels(*definition.treatment_content(treatment_id)).items()
        ]
        named.append(("INAPP", in_app_template(definition, treatment_id)))
        for template_type, ref in named:
            if ref is None or await load_email_template(
                conn, ref.Name or "", ref.Version, template_type=template_type
            ):
                continue
            suffix = f" version {ref.Version}" if ref.Version else ""
            word = {"EMAIL": "email", "INAPP": "in-app"}.get(template_type) or type_word(template_type)
            problems.append(
                f"{word} template '{ref.Name}'{suffix} does not exist "
                f"(create it with {_CREATE_TEMPLATE[template_type]})"
            )
    if problems:
        raise BadRequestError("Invalid campaign: " + "; ".join(dict.fromkeys(problems)))


def campaign_arn(region: str, app_id: str, campaign_id: str) -> str:
    """The campaign's ARN, as Pinpoint forms it."""
    return f"arn:aws:mobiletargeting:{region}:000000000000:apps/{app_id}/campaigns/{campaign_id}"


def campaign_response(
    row: Any, region: str, *, definition: dict[str, Any] | None = None, version: int | None = None
) -> dict[str, Any]:
    """A campaigns row (or one stored version of it) as Pinpoint's CampaignResponse."""
    body = dict(definition if definition is not None else row.definition)
    status = {"CampaignStatus": row.state}
    treatments = [
        {
            **treatment,
            "Id": str(i + 1),
            "State": status,
        }
        for i, treatment in enumerate(body.pop("AdditionalTreatments", []) or [])
    ]
    body.update(
        Id=row.id,
        ApplicationId=row.app_id,
        Arn=campaign_arn(region, row.app_id, row.id),
        CreationDate=iso_timestamp(row.created_at),
        LastModifiedDate=iso_timestamp(row.updated_at),
        Version=version if version is not None else int(row.version),
        State=status,
        DefaultState=status,
        SegmentVersion=int(body.get("SegmentVersion") or 1),
        AdditionalTreatments=treatments,
        HoldoutPercent=int(body.get("HoldoutPercent") or 0),
        IsPaused=bool(body.get("IsPaused")),
        tags=row.tags or {},
    )
    return body


async def _start_workflow(state: AppState, app_id: str, campaign_id: str) -> None:
    """Start the campaign's workflow (a start while one runs is a no-op)."""
    try:
        client = await state.temporal()
        await client.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(
                app_id=app_id, campaign_id=campaign_id, observe=state.settings.temporal_search_attributes
            ),
            id=names.campaign_workflow_id(app_id, campaign_id),
            task_queue=state.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(names.APP_ID, app_id),
                    SearchAttributePair(names.CAMPAIGN_ID, campaign_id),
                    SearchAttributePair(names.SOJOURN_KIND, "campaign"),
                ]
            )
            if state.settings.temporal_search_attributes
            else None,
            static_summary=f"campaign {campaign_id} of app {app_id}",
        )
    except RPCError as err:
        raise InternalServerError(f"could not start the campaign's workflow: {err.message}") from err


async def _notify_workflow(state: AppState, app_id: str, campaign_id: str) -> None:
    """Tell a running workflow the campaign changed; start one if it is no longer running."""
    client = await state.temporal()
    handle = client.get_workflow_handle(names.campaign_workflow_id(app_id, campaign_id))
    try:
        description = await handle.describe()
        running = description.status == WorkflowExecutionStatus.RUNNING
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise InternalServerError(f"could not reach the campaign's workflow: {err.message}") from err
        running = False
    if not running:
        await _start_workflow(state, app_id, campaign_id)
        return
    try:
        await handle.signal(CampaignWorkflow.updated)
    except RPCError as err:
        raise InternalServerError(f"the campaign's workflow did not take the update: {err.message}") from err


async def create_campaign(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateCampaign: validate everything, store version 1, start the campaign's workflow."""
    state: AppState = ctx.state
    app_id = params["ApplicationId"]
    body = dict(params["WriteCampaignRequest"])
    tags = body.pop("tags", None) or {}
    definition = parse_definition(body)
    campaign_id = uuid.uuid4().hex
    status = CampaignStatus.PAUSED if definition.IsPaused else CampaignStatus.SCHEDULED
    async with state.db.begin() as conn:
        await require_app(conn, app_id)
        await check_definition(conn, app_id, definition, campaign_id=None)
        await repo.insert_campaign(
            conn, app_id, campaign_id, definition.Name or "", status, definition.wire(), tags
        )
        # Started before commit: if Temporal refuses, nothing is stored; the workflow reads the committed row.
        await _start_workflow(state, app_id, campaign_id)
        row = await repo.get_campaign(conn, app_id, campaign_id)
    return {"CampaignResponse": campaign_response(row, state.settings.region)}


async def get_campaign(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetCampaign."""
    async with ctx.state.db.connect() as conn:
        row = await _require_campaign(conn, params["ApplicationId"], params["CampaignId"])
    return {"CampaignResponse": campaign_response(row, ctx.state.settings.region)}


def _page(params: dict[str, Any]) -> tuple[int, int]:
    size = int(params.get("PageSize") or 100)
    if not 1 <= size <= 1000:
        raise BadRequestError(f"PageSize must be 1-1000, not {size}")
    token = str(params.get("Token") or "0")
    if not token.isdigit():
        raise BadRequestError(f"Token {token!r} is not a token this API returned (use NextToken)")
    return int(token), size


async def get_campaigns(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetCampaigns, paged with PageSize and Token."""
    app_id = params["ApplicationId"]
    offset, size = _page(params)
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        rows = await repo.list_campaigns(conn, app_id, offset, size + 1)
    page: dict[str, Any] = {"Item": [campaign_response(r, ctx.state.settings.region) for r in rows[:size]]}
    if len(rows) > size:
        page["NextToken"] = str(offset + size)
    return {"CampaignsResponse": page}


async def update_campaign(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateCampaign: the members given replace the stored ones; a new version applies from the next run."""
    state: AppState = ctx.state
    app_id, campaign_id = params["ApplicationId"], params["CampaignId"]
    body = dict(params["WriteCampaignRequest"])
    body.pop("tags", None)
    update = parse_definition(body)
    async with state.db.begin() as conn:
        row = await _require_campaign(conn, app_id, campaign_id, for_update=True)
        if row.state == CampaignStatus.DELETED:
            raise BadRequestError(
                f"campaign {campaign_id} failed (its segment was deleted); create a new one"
            )
        merged = parse_definition({**row.definition, **update.wire()})
        await check_definition(conn, app_id, merged, campaign_id=campaign_id)
        if merged.IsPaused:
            status = CampaignStatus.PAUSED
        elif row.state in (CampaignStatus.PAUSED, CampaignStatus.COMPLETED, CampaignStatus.INVALID):
            # An INVALID campaign that passes the checks again is runnable; its workflow reloads it.
            status = CampaignStatus.SCHEDULED
        else:
            status = row.state
        await repo.update_definition(
            conn, app_id, campaign_id, name=merged.Name or row.name, definition=merged.wire(), state=status
        )
        row = await repo.get_campaign(conn, app_id, campaign_id)
    # After commit, so the workflow reads the new version. Were the signal lost, the workflow still reloads
    # the campaign before its next run (and a paused one every hour).
    await _notify_workflow(state, app_id, campaign_id)
    return {"CampaignResponse": campaign_response(row, state.settings.region)}


async def delete_campaign(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteCampaign: cancel the workflow, remove the campaign (its sent messages stay in the ledger)."""
    state: AppState = ctx.state
    app_id, campaign_id = params["ApplicationId"], params["CampaignId"]
    async with state.db.begin() as conn:
        row = await _require_campaign(conn, app_id, campaign_id, for_update=True)
        response = campaign_response(row, state.settings.region)
        await repo.delete_campaign(conn, app_id, campaign_id)
        client = await state.temporal()
        try:
            await client.get_workflow_handle(names.campaign_workflow_id(app_id, campaign_id)).cancel()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise InternalServerError(f"could not cancel the campaign's workflow: {err.message}") from err
    return {"CampaignResponse": response}


async def get_campaign_version(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetCampaignVersion."""
    app_id, campaign_id, version = params["ApplicationId"], params["CampaignId"], str(params["Version"])
    if not version.isdigit():
        raise BadRequestError(f"Version must be a version number such as 1, not {version!r}")
    async with ctx.state.db.connect() as conn:
        row = await _require_campaign(conn, app_id, campaign_id)
        stored = await repo.get_version(conn, campaign_id, int(version))
    if stored is None:
        raise NotFoundError(f"campaign {campaign_id} has no version {version} (its latest is {row.version})")
    return {
        "CampaignResponse": campaign_response(
            row, ctx.state.settings.region, definition=stored.definition, version=int(stored.version)
        )
    }


async def get_campaign_versions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetCampaignVersions: every version, newest first, paged."""
    app_id, campaign_id = params["ApplicationId"], params["CampaignId"]
    offset, size = _page(params)
    async with ctx.state.db.connect() as conn:
        row = await _require_campaign(conn, app_id, campaign_id)
        versions = await repo.list_versions(conn, campaign_id, offset, size + 1)
    region = ctx.state.settings.region
    page: dict[str, Any] = {
        "Item": [
            campaign_response(row, region, definition=v.definition, version=int(v.version))
            for v in versions[:size]
        ]
    }
    if len(versions) > size:
        page["NextToken"] = str(offset + size)
    return {"CampaignsResponse": page}


def activity_response(run: Any) -> dict[str, Any]:
    """A campaign_runs row as Pinpoint's ActivityResponse."""
    body: dict[str, Any] = {
        "ApplicationId": run.app_id,
        "CampaignId": run.campaign_id,
        "Id": repo.activity_id_of(run.run_key, int(run.treatment_id)),
        "TreatmentId": str(run.treatment_id),
        "State": run.state,
        "ScheduledStart": iso_timestamp(run.scheduled_start),
        "TotalEndpointCount": int(run.targeted),
        "SuccessfulEndpointCount": int(run.sent),
        "TimezonesTotalCount": int(run.timezones_total),
        "TimezonesCompletedCount": int(run.timezones_completed),
        "ExecutionMetrics": {k: str(v) for k, v in sorted((run.metrics or {}).items())},
    }
    if run.result:
        body["Result"] = run.result
    if run.started_at:
        body["Start"] = iso_timestamp(run.started_at)
    if run.ended_at:
        body["End"] = iso_timestamp(run.ended_at)
    return body


async def get_campaign_activities(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetCampaignActivities: one item per run and treatment, newest first."""
    app_id, campaign_id = params["ApplicationId"], params["CampaignId"]
    offset, size = _page(params)
    async with ctx.state.db.connect() as conn:
        await _require_campaign(conn, app_id, campaign_id)
        runs = await repo.list_runs(conn, campaign_id, offset, size + 1)
    page: dict[str, Any] = {"Item": [activity_response(r) for r in runs[:size]]}
    if len(runs) > size:
        page["NextToken"] = str(offset + size)
    return {"ActivitiesResponse": page}


# KPI name -> (value key, grouping: "" | "date" | "activity")
_KPIS: dict[str, tuple[str, str]] = {
    "successful-delivery-rate": ("SuccessfulDeliveryRate", ""),
    "successful-delivery-rate-grouped-by-date": ("SuccessfulDeliveryRate", "date"),
    "successful-delivery-rate-grouped-by-campaign-activity": ("SuccessfulDeliveryRate", "activity"),
    "unique-deliveries": ("UniqueDeliveries", ""),
    "unique-deliveries-grouped-by-date": ("UniqueDeliveries", "date"),
    "unique-deliveries-grouped-by-campaign-activity": ("UniqueDeliveries", "activity"),
    "email-open-rate": ("EmailOpenRate", ""),
    "email-open-rate-grouped-by-campaign-activity": ("EmailOpenRate", "activity"),
    "direct-email-opens-grouped-by-campaign-activity": ("DirectEmailOpens", "activity"),
    "clicks-grouped-by-campaign-activity": ("Clicks", "activity"),
    "successful-deliveries-grouped-by-campaign-activity": ("SuccessfulDeliveries", "activity"),
    "attempted-deliveries-grouped-by-campaign-activity": ("AttemptedDeliveries", "activity"),
    "hard-bounce-rate": ("HardBounceRate", ""),
    "hard-bounce-rate-grouped-by-campaign-activity": ("HardBounceRate", "activity"),
}
_OTHER_CHANNEL_KPIS = (
    "push-open-rate",
    "push-open-rate-grouped-by-campaign-activity",
    "direct-push-opens-grouped-by-campaign-activity",
    "sms-spend",
)
_RATES = ("SuccessfulDeliveryRate", "EmailOpenRate", "HardBounceRate")


def _kpi_window(params: dict[str, Any]) -> tuple[datetime, datetime]:
    end = params.get("EndTime") or datetime.now(UTC)
    start = params.get("StartTime") or (end - timedelta(days=DEFAULT_KPI_DAYS))
    end, start = (v if v.tzinfo else v.replace(tzinfo=UTC) for v in (end, start))
    if end < start:
        raise BadRequestError("EndTime must not be before StartTime")
    return start, end


async def get_campaign_date_range_kpi(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetCampaignDateRangeKpi, computed from the message ledger and the engagement events.

    Attempted = messages sent or failed; delivered = sent minus those that hard-bounced; open rate = messages
    opened ÷ delivered; unique deliveries count endpoints; clicks count every click.
    """
    app_id, campaign_id, kpi = params["ApplicationId"], params["CampaignId"], params["KpiName"]
    if kpi in _OTHER_CHANNEL_KPIS:
        raise BadRequestError(f"KPI {kpi!r} is about push or SMS campaigns, which sojourn does not run yet")
    if kpi not in _KPIS:
        raise BadRequestError(f"{kpi!r} is not a campaign KPI; use one of: {', '.join(sorted(_KPIS))}")
    key, grouping = _KPIS[kpi]
    start, end = _kpi_window(params)
    group_sql = {
        "": "''",
        "date": "to_char(date_trunc('day', m.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
        "activity": "m.activity_id",
    }[grouping]
    async with ctx.state.db.connect() as conn:
        await _require_campaign(conn, app_id, campaign_id)
        rows = await conn.execute(
            text(
                f"""
                SELECT {group_sql} AS grp,
                       count(*) FILTER (WHERE m.status IN ('sent', 'failed')) AS attempted,
                       count(*) FILTER (WHERE m.status = 'sent' AND NOT b.bounced) AS delivered,
                       count(*) FILTER (WHERE m.status = 'sent' AND b.bounced) AS bounced,
                       count(DISTINCT m.endpoint_id) FILTER (WHERE m.status = 'sent' AND NOT b.bounced) AS uniq,
                       count(*) FILTER (WHERE m.status = 'sent' AND NOT b.bounced AND o.opened) AS opened,
                       COALESCE(sum(o.clicks), 0) AS clicks
                FROM messages m
                CROSS JOIN LATERAL (
                    SELECT EXISTS (SELECT 1 FROM events v WHERE v.message_id = m.message_id
                                   AND v.event_type = '_email.hardbounce') AS bounced
                ) b
                CROSS JOIN LATERAL (
                    SELECT EXISTS (SELECT 1 FROM events v WHERE v.message_id = m.message_id
                                   AND v.event_type = '_email.open') AS opened,
                           (SELECT count(*) FROM events v WHERE v.message_id = m.message_id
                            AND v.event_type = '_email.click') AS clicks
                ) o
                WHERE m.campaign_id = :c AND m.app_id = :a AND m.created_at BETWEEN :s AND :e
                GROUP BY 1 ORDER BY 1
                """
            ),
            {"c": campaign_id, "a": app_id, "s": start, "e": end},
        )
        results = list(rows)
    result_rows = []
    for r in results:
        values = {
            "SuccessfulDeliveryRate": (r.delivered / r.attempted) if r.attempted else 0.0,
            "UniqueDeliveries": r.uniq,
            "EmailOpenRate": (r.opened / r.delivered) if r.delivered else 0.0,
            "DirectEmailOpens": r.opened,
            "Clicks": r.clicks,
            "SuccessfulDeliveries": r.delivered,
            "AttemptedDeliveries": r.attempted,
            "HardBounceRate": (r.bounced / r.attempted) if r.attempted else 0.0,
        }
        value = values[key]
        grouped = (
            []
            if not grouping
            else [
                {
                    "Key": "Date" if grouping == "date" else "CampaignActivityId",
                    "Type": "String",
                    "Value": str(r.grp),
                }
            ]
        )
        result_rows.append(
            {
                "GroupedBys": grouped,
                "Values": [
                    {"Key": key, "Type": "Double" if key in _RATES else "Long", "Value": _number(value)}
                ],
            }
        )
    if not grouping and not result_rows:
        result_rows.append(
            {
                "GroupedBys": [],
                "Values": [{"Key": key, "Type": "Double" if key in _RATES else "Long", "Value": "0"}],
            }
        )
    return {
        "CampaignDateRangeKpiResponse": {
            "ApplicationId": app_id,
            "CampaignId": campaign_id,
            "KpiName": kpi,
            "StartTime": start,
            "EndTime": end,
            "KpiResult": {"Rows": result_rows},
        }
    }


def _number(value: float | int) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


async def _require_campaign(
    conn: AsyncConnection, app_id: str, campaign_id: str, *, for_update: bool = False
) -> Any:
    await require_app(conn, app_id)
    row = await repo.get_campaign(conn, app_id, campaign_id, for_update=for_update)
    if row is None:
        raise NotFoundError(f"Campaign {campaign_id} not found in application {app_id}")
    return row


async def treatment_in_app_message(
    conn: AsyncConnection, definition: CampaignDefinition, treatment_id: int
) -> dict[str, Any] | None:
    """A treatment's in-app message: its InAppTemplate's version (the active one unless it names one) or its
    inline InAppMessage; None when it has neither or its template is gone."""
    template = in_app_template(definition, treatment_id)
    if template is None:
        return in_app_message(definition, treatment_id)
    content = await load_email_template(conn, template.Name or "", template.Version, template_type="INAPP")
    return in_app_fields(content) if content is not None else None


def in_app_entry(
    campaign_id: str, definition: CampaignDefinition, treatment_id: int, message: dict[str, Any]
) -> dict[str, Any]:
    """One InAppMessageCampaign of GetInAppMessages: the treatment's message, schedule and caps.

    The caps (``Limits.Daily``, ``Total``, ``Session``) are returned for the app's SDK to apply, as with
    Pinpoint, whose in-app caps the client enforces: sojourn never sees an in-app message being shown.
    """
    schedule = definition.Schedule
    entry: dict[str, Any] = {
        "CampaignId": campaign_id,
        "TreatmentId": str(treatment_id),
        "InAppMessage": message,
        "Priority": definition.Priority if definition.Priority is not None else 0,
    }
    if schedule is not None:
        entry["Schedule"] = {
            k: v
            for k, v in {
                "EndDate": schedule.EndTime,
                "EventFilter": schedule.EventFilter.model_dump(exclude_none=True)
                if schedule.EventFilter
                else None,
                "QuietTime": schedule.QuietTime.model_dump(exclude_none=True) if schedule.QuietTime else None,
            }.items()
            if v
        }
    limits = definition.Limits
    for field, cap in (("DailyCap", "Daily"), ("TotalCap", "Total"), ("SessionCap", "Session")):
        value = getattr(limits, cap) if limits is not None else None
        if value:
            entry[field] = int(value)
    return entry


async def get_in_app_messages(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetInAppMessages: the in-app messages of the app's running IN_APP_EVENT campaigns for an endpoint.

    A campaign counts when it is not paused, now is within its schedule, the endpoint is in its segment (the
    pinned version, evaluated now) and the endpoint is not in its holdout; the message is that of the endpoint's
    treatment (the same stable assignment as the campaign's sends). Ordered by Priority.
    """
    app_id, endpoint_id = params["ApplicationId"], params["EndpointId"]
    now = datetime.now(UTC)
    entries: list[dict[str, Any]] = []
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        if await get_endpoint(conn, app_id, endpoint_id) is None:
            raise NotFoundError(f"Endpoint {endpoint_id} not found in application {app_id}")
        rows = await conn.execute(
            text(
                "SELECT id, definition, created_at FROM campaigns WHERE app_id = :a "
                "AND state IN ('SCHEDULED', 'EXECUTING', 'PENDING_NEXT_RUN') "
                "AND definition -> 'Schedule' ->> 'Frequency' = 'IN_APP_EVENT' ORDER BY created_at, id"
            ),
            {"a": app_id},
        )
        for row in list(rows):
            definition = CampaignDefinition.model_validate(row.definition)
            if definition.IsPaused or definition.Schedule is None or not definition.SegmentId:
                continue
            rule = schedule_rule(definition.Schedule, row.created_at)
            if now < rule.start or (rule.end is not None and now > rule.end):
                continue
            try:
                clause = await load_segment_clause(
                    conn, app_id, definition.SegmentId, now=now, version=definition.SegmentVersion
                )
            except SegmentNotFound:
                continue
            if not await repo.members_among(conn, app_id, clause, [endpoint_id]):
                continue
            treatment_id = treatment_for_cohort(
                endpoint_cohort(row.id, endpoint_id),
                definition.HoldoutPercent or 0,
                definition.treatment_sizes(),
            )
            if treatment_id is None:
                continue
            message = await treatment_in_app_message(conn, definition, treatment_id)
            if message is not None:
                entries.append(in_app_entry(row.id, definition, treatment_id, message))
    entries.sort(key=lambda e: int(e["Priority"]))
    return {"InAppMessagesResponse": {"InAppMessageCampaigns": entries}}


HANDLERS: dict[str, Handler] = {
    "CreateCampaign": create_campaign,
    "GetCampaign": get_campaign,
    "GetCampaigns": get_campaigns,
    "UpdateCampaign": update_campaign,
    "DeleteCampaign": delete_campaign,
    "GetCampaignVersion": get_campaign_version,
    "GetCampaignVersions": get_campaign_versions,
    "GetCampaignActivities": get_campaign_activities,
    "GetCampaignDateRangeKpi": get_campaign_date_range_kpi,
    "GetInAppMessages": get_in_app_messages,
}
