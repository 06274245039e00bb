"""Dynamic segments: CreateSegment, GetSegment, GetSegments, UpdateSegment, DeleteSegment."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.api.errors import BadRequestError, ConflictError, NotFoundError, invalid
from sojourn.api.server import Handler, RequestContext
from sojourn.api.state import AppState
from sojourn.domain.segments import WriteSegmentRequest
from sojourn.engine import names
from sojourn.store.apps_repo import require_app
from sojourn.store.segments_repo import SegmentNotFound, load_segment_clause

log = logging.getLogger(__name__)


def parse_segment(body: dict[str, Any]) -> tuple[WriteSegmentRequest, dict[str, str]]:
    """Validate a WriteSegmentRequest (without its tags) into the model, or a BadRequestError that says why."""
    body = dict(body)
    tags = body.pop("tags", None) or {}
    try:
        return WriteSegmentRequest.model_validate(body), tags
    except ValidationError as err:
        raise invalid("segment", err) from None


def segment_response(row: Any, region: str) -> dict[str, Any]:
    """A segments row as Pinpoint's SegmentResponse."""
    definition = WriteSegmentRequest.model_validate(row.definition).model_dump(exclude_none=True)
    definition.pop("Name", None)
    return {
        **definition,
        "ApplicationId": row.app_id,
        "Id": row.id,
        "Arn": f"arn:aws:mobiletargeting:{region}:000000000000:apps/{row.app_id}/segments/{row.id}",
        "Name": row.name,
        "SegmentType": row.segment_type,
        "Version": row.version,
        "CreationDate": row.created_at.isoformat(),
        "LastModifiedDate": row.updated_at.isoformat(),
        "tags": row.tags or {},
    }


async def _check_references(conn: AsyncConnection, app_id: str, segment_id: str) -> None:
    try:
        await load_segment_clause(conn, app_id, segment_id, now=datetime.now(UTC))
    except SegmentNotFound as err:
        raise BadRequestError(f"Invalid segment: SegmentGroups refers to a {err}") from None
    except ValueError as err:
        raise BadRequestError(f"Invalid segment: {err}") from None


async def _get_row(conn: AsyncConnection, app_id: str, segment_id: str) -> Any:
    row = (
        await conn.execute(
            text("SELECT * FROM segments WHERE app_id = :a AND id = :s"), {"a": app_id, "s": segment_id}
        )
    ).first()
    if row is None:
        raise NotFoundError(f"Segment {segment_id} not found in application {app_id}")
    return row


async def create_segment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateSegment (dimensional)."""
    app_id = params["ApplicationId"]
    segment, tags = parse_segment(params["WriteSegmentRequest"])
    segment_id = uuid.uuid4().hex
    stored = json.dumps(segment.model_dump(mode="json", exclude_none=True))
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        await conn.execute(
            text(
                "INSERT INTO segments (app_id, id, name, definition, tags) VALUES (:a, :s, :n, CAST(:d AS jsonb), CAST(:t AS jsonb))"
            ),
            {"a": app_id, "s": segment_id, "n": segment.Name, "d": stored, "t": json.dumps(tags)},
        )
        await conn.execute(
            text(
                "INSERT INTO segment_versions (app_id, segment_id, version, definition) VALUES (:a, :s, 1, CAST(:d AS jsonb))"
            ),
            {"a": app_id, "s": segment_id, "d": stored},
        )
        await _check_references(conn, app_id, segment_id)
        row = await _get_row(conn, app_id, segment_id)
    return {"SegmentResponse": segment_response(row, ctx.state.settings.region)}


async def update_segment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateSegment: a new version; campaigns and journeys that pinned an older one keep it."""
    app_id, segment_id = params["ApplicationId"], params["SegmentId"]
    segment, tags = parse_segment(params["WriteSegmentRequest"])
    stored = json.dumps(segment.model_dump(mode="json", exclude_none=True))
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        await _get_row(conn, app_id, segment_id)
        version = await conn.scalar(
            text(
                "UPDATE segments SET definition = CAST(:d AS jsonb), name = COALESCE(:n, name), version = version + 1, "
                "updated_at = now(), tags = CASE WHEN CAST(:t AS jsonb) = '{}'::jsonb THEN tags ELSE CAST(:t AS jsonb) END "
                "WHERE app_id = :a AND id = :s RETURNING version"
            ),
            {"a": app_id, "s": segment_id, "n": segment.Name, "d": stored, "t": json.dumps(tags)},
        )
        await conn.execute(
            text(
                "INSERT INTO segment_versions (app_id, segment_id, version, definition) VALUES (:a, :s, :v, CAST(:d AS jsonb))"
            ),
            {"a": app_id, "s": segment_id, "v": version, "d": stored},
        )
        await _check_references(conn, app_id, segment_id)
        row = await _get_row(conn, app_id, segment_id)
        refreshing = await conn.execute(
            text(
                "SELECT id FROM journeys WHERE app_id = :a AND state IN ('ACTIVE', 'PAUSED') "
                "AND definition #>> '{StartCondition,SegmentStartCondition,SegmentId}' = :s "
                "AND definition ->> 'RefreshOnSegmentUpdate' = 'true' ORDER BY id"
            ),
            {"a": app_id, "s": segment_id},
        )
        journey_ids = list(refreshing.scalars())
    await _tell_journeys(ctx.state, app_id, journey_ids)
    return {"SegmentResponse": segment_response(row, ctx.state.settings.region)}


async def _tell_journeys(state: AppState, app_id: str, journey_ids: list[str]) -> None:
    """Journeys with RefreshOnSegmentUpdate re-read their segment now. Best effort: the update is stored, and a
    journey that misses the signal refreshes on its RefreshFrequency (if any)."""
    if not journey_ids:
        return
    try:
        client = await state.temporal()
        for journey_id in journey_ids:
            handle = client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id))
            await handle.signal("segment_updated_signal")
    except Exception as err:
        log.warning("journeys %s were not told that their segment changed: %s", journey_ids, err)


async def get_segment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetSegment."""
    async with ctx.state.db.connect() as conn:
        await require_app(conn, params["ApplicationId"])
        row = await _get_row(conn, params["ApplicationId"], params["SegmentId"])
    return {"SegmentResponse": segment_response(row, ctx.state.settings.region)}


async def get_segments(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetSegments, paged with PageSize and Token."""
    app_id = params["ApplicationId"]
    size = (
        max(1, min(int(params.get("PageSize") or 100), 1000))
        if str(params.get("PageSize") or "100").isdigit()
        else 100
    )
    token = str(params.get("Token") or "0")
    offset = int(token) if token.isdigit() else 0
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        rows = list(
            await conn.execute(
                text("SELECT * FROM segments WHERE app_id = :a ORDER BY created_at, id OFFSET :o LIMIT :l"),
                {"a": app_id, "o": offset, "l": size + 1},
            )
        )
    page: dict[str, Any] = {"Item": [segment_response(r, ctx.state.settings.region) for r in rows[:size]]}
    if len(rows) > size:
        page["NextToken"] = str(offset + size)
    return {"SegmentsResponse": page}


async def delete_segment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteSegment; refused while an active journey enters from it."""
    app_id, segment_id = params["ApplicationId"], params["SegmentId"]
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        row = await _get_row(conn, app_id, segment_id)
        used = await conn.scalar(
            text(
                "SELECT count(*) FROM journeys WHERE app_id = :a AND state IN ('ACTIVE', 'PAUSED') "
                "AND definition #>> '{StartCondition,SegmentStartCondition,SegmentId}' = :s"
            ),
            {"a": app_id, "s": segment_id},
        )
        if used:
            raise ConflictError(f"Segment {segment_id} is the entry segment of {used} running journey(s)")
        await conn.execute(
            text("DELETE FROM segment_versions WHERE app_id = :a AND segment_id = :s"),
            {"a": app_id, "s": segment_id},
        )
        await conn.execute(
            text("DELETE FROM segments WHERE app_id = :a AND id = :s"), {"a": app_id, "s": segment_id}
        )
    return {"SegmentResponse": segment_response(row, ctx.state.settings.region)}


HANDLERS: dict[str, Handler] = {
    "CreateSegment": create_segment,
    "UpdateSegment": update_segment,
    "GetSegment": get_segment,
    "GetSegments": get_segments,
    "DeleteSegment": delete_segment,
}
