"""Endpoints and users: UpdateEndpoint, UpdateEndpointsBatch, GetEndpoint, DeleteEndpoint, GetUserEndpoints,
DeleteUserEndpoints. The rules of an endpoint write live in :mod:`sojourn.store.endpoint_rows`."""

from __future__ import annotations

from typing import Any

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.server import Handler, RequestContext
from sojourn.store import endpoint_rows
from sojourn.store.apps_repo import require_app


def accepted(ctx: RequestContext) -> dict[str, Any]:
    """The MessageBody Pinpoint answers an accepted write with."""
    return {"MessageBody": {"Message": "Accepted", "RequestID": ctx.request_id}}


def batch_items(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (Id, body) pairs of an EndpointBatchRequest.

    Raises:
        BadRequestError: more than 100 items, or an item without an Id.
    """
    items = request.get("Item") or []
    if not items:
        raise BadRequestError("EndpointBatchRequest.Item is empty: give at least one endpoint")
    if len(items) > endpoint_rows.MAX_BATCH:
        raise BadRequestError(
            f"EndpointBatchRequest.Item has {len(items)} endpoints; UpdateEndpointsBatch takes at most "
            f"{endpoint_rows.MAX_BATCH}: split the batch"
        )
    pairs: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        body = dict(item)
        endpoint_id = body.pop("Id", None)
        if not endpoint_id:
            raise BadRequestError(
                f"EndpointBatchRequest.Item[{index}].Id is required: every endpoint needs an Id"
            )
        pairs.append((str(endpoint_id), body))
    return pairs


async def update_endpoint(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateEndpoint: create the endpoint or change the fields the request names."""
    app_id = params["ApplicationId"]
    items = [(str(params["EndpointId"]), dict(params["EndpointRequest"]))]
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        await endpoint_rows.upsert_endpoints(conn, app_id, items, request_id=ctx.request_id)
    return accepted(ctx)


async def update_endpoints_batch(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateEndpointsBatch: up to 100 endpoint upserts, all or nothing."""
    app_id = params["ApplicationId"]
    items = batch_items(params["EndpointBatchRequest"])
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        await endpoint_rows.upsert_endpoints(conn, app_id, items, request_id=ctx.request_id)
    return accepted(ctx)


def _endpoint_not_found(app_id: str, endpoint_id: str) -> NotFoundError:
    return NotFoundError(f"Endpoint {endpoint_id} not found in application {app_id}")


def _user_not_found(app_id: str, user_id: str) -> NotFoundError:
    return NotFoundError(f"User {user_id} not found in application {app_id}: no endpoint has this UserId")


async def get_endpoint(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetEndpoint."""
    app_id, endpoint_id = params["ApplicationId"], params["EndpointId"]
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        row = await endpoint_rows.get_endpoint(conn, app_id, endpoint_id)
    if row is None:
        raise _endpoint_not_found(app_id, endpoint_id)
    return {"EndpointResponse": endpoint_rows.endpoint_response(row)}


async def delete_endpoint(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteEndpoint: returns the endpoint as it was."""
    app_id, endpoint_id = params["ApplicationId"], params["EndpointId"]
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        row = await endpoint_rows.delete_endpoint(conn, app_id, endpoint_id)
    if row is None:
        raise _endpoint_not_found(app_id, endpoint_id)
    return {"EndpointResponse": endpoint_rows.endpoint_response(row)}


async def get_user_endpoints(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetUserEndpoints: every endpoint with the UserId."""
    app_id, user_id = params["ApplicationId"], params["UserId"]
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        rows = await endpoint_rows.user_endpoints(conn, app_id, user_id)
    if not rows:
        raise _user_not_found(app_id, user_id)
    return {"EndpointsResponse": {"Item": [endpoint_rows.endpoint_response(r) for r in rows]}}


async def delete_user_endpoints(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteUserEndpoints: deletes every endpoint with the UserId and returns them."""
    app_id, user_id = params["ApplicationId"], params["UserId"]
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        rows = await endpoint_rows.delete_user_endpoints(conn, app_id, user_id)
    if not rows:
        raise _user_not_found(app_id, user_id)
    return {"EndpointsResponse": {"Item": [endpoint_rows.endpoint_response(r) for r in rows]}}


HANDLERS: dict[str, Handler] = {
    "UpdateEndpoint": update_endpoint,
    "UpdateEndpointsBatch": update_endpoints_batch,
    "GetEndpoint": get_endpoint,
    "DeleteEndpoint": delete_endpoint,
    "GetUserEndpoints": get_user_endpoints,
    "DeleteUserEndpoints": delete_user_endpoints,
}
