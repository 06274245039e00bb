"""Applications (Pinpoint projects): CreateApp, GetApp, GetApps, DeleteApp, and their settings."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from sojourn.api.errors import BadRequestError, invalid
from sojourn.api.server import Handler, RequestContext
from sojourn.api.state import AppState
from sojourn.domain.app_settings import ApplicationSettings, problems_of_settings
from sojourn.engine import names
from sojourn.store import app_settings_repo, apps_repo

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_TAGS = 50


def check_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Resource tags within AWS's limits (≤50 tags, keys ≤128 and values ≤256 characters).

    Raises:
        BadRequestError: saying which tag is wrong.
    """
    if len(tags) > MAX_TAGS:
        raise BadRequestError(f"tags: {len(tags)} tags given; a resource has at most {MAX_TAGS}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128:
            raise BadRequestError(f"tags: key {key[:20]!r} must be 1-128 characters")
        if len(str(value)) > 256:
            raise BadRequestError(f"tags.{key}: a tag value has at most 256 characters")
    return {str(k): str(v) for k, v in tags.items()}


def page_size(raw: Any) -> int:
    """The PageSize query parameter as a number of items (default 100, at most 1000).

    Raises:
        BadRequestError: not a positive whole number.
    """
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    text = str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise BadRequestError(f"PageSize must be a positive whole number such as 50, not {raw!r}")
    return min(int(text), MAX_PAGE_SIZE)


async def create_app(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateApp: a new application with a random id."""
    body = params["CreateApplicationRequest"]
    name = str(body.get("Name") or "").strip()
    if not name:
        raise BadRequestError("CreateApplicationRequest.Name is required: give the application a name")
    tags = check_tags(body.get("tags") or {})
    async with ctx.state.db.begin() as conn:
        row = await apps_repo.insert_app(conn, uuid.uuid4().hex, name, tags)
    return {"ApplicationResponse": apps_repo.application_response(row, ctx.state.settings.region)}


async def get_app(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetApp."""
    async with ctx.state.db.connect() as conn:
        row = await apps_repo.require_app(conn, params["ApplicationId"])
    return {"ApplicationResponse": apps_repo.application_response(row, ctx.state.settings.region)}


async def get_apps(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetApps: oldest first, paged with PageSize and the NextToken of the previous page."""
    size = page_size(params.get("PageSize"))
    token = params.get("Token")
    after = apps_repo.decode_token(token) if token else None
    async with ctx.state.db.connect() as conn:
        rows = await apps_repo.list_apps(conn, after=after, limit=size + 1)
    region = ctx.state.settings.region
    page: dict[str, Any] = {"Item": [apps_repo.application_response(r, region) for r in rows[:size]]}
    if len(rows) > size:
        last = rows[size - 1]
        page["NextToken"] = apps_repo.encode_token(last.created_at, last.id)
    return {"ApplicationsResponse": page}


async def delete_app(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteApp: the app and everything in it (endpoints, segments, journeys, events, ledgers) go."""
    app_id = params["ApplicationId"]
    async with ctx.state.db.begin() as conn:
        running = await apps_repo.running_journeys(conn, app_id)
        row = await apps_repo.delete_app(conn, app_id)
    await _cancel_journeys(ctx.state, app_id, running)
    return {"ApplicationResponse": apps_repo.application_response(row, ctx.state.settings.region)}


async def _cancel_journeys(state: AppState, app_id: str, journey_ids: list[str]) -> None:
    # Best effort after commit: the rows are gone, so a workflow that misses this finds nothing to do anyway.
    if not journey_ids:
        return
    try:
        client = await state.temporal()
        for journey_id in journey_ids:
            await client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id)).signal(
                "set_state", "CANCELLED"
            )
    except Exception as err:  # the app is deleted either way
        log.warning("could not cancel the journeys %s of deleted app %s: %s", journey_ids, app_id, err)


async def get_application_settings(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetApplicationSettings: the project's defaults for campaigns and journeys."""
    app_id = params["ApplicationId"]
    async with ctx.state.db.connect() as conn:
        settings = await app_settings_repo.load_app_settings(conn, app_id)
    return {"ApplicationSettingsResource": settings.wire(app_id)}


async def update_application_settings(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateApplicationSettings: members given replace the stored ones; members left out stay as they are."""
    app_id = params["ApplicationId"]
    try:
        update = ApplicationSettings.model_validate(params["WriteApplicationSettingsRequest"])
    except ValidationError as err:
        raise invalid("application settings", err) from None
    problems = problems_of_settings(update)
    if problems:
        raise BadRequestError("Invalid application settings: " + "; ".join(problems))
    async with ctx.state.db.begin() as conn:
        settings = await app_settings_repo.save_app_settings(conn, app_id, update)
    return {"ApplicationSettingsResource": settings.wire(app_id)}


HANDLERS: dict[str, Handler] = {
    "GetApplicationSettings": get_application_settings,
    "UpdateApplicationSettings": update_application_settings,
    "CreateApp": create_app,
    "GetApp": get_app,
    "GetApps": get_apps,
    "DeleteApp": delete_app,
}
