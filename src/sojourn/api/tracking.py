"""Open pixel and click redirect: unauthenticated routes that record ``_email.open`` / ``_email.click``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sojourn.api.handlers.events import ring_doorbells, wake_waiting_lanes
from sojourn.api.state import AppState
from sojourn.channels.tracking import PIXEL_GIF, InvalidTokenError, parse_click_token, parse_open_token
from sojourn.store.event_waits import lanes_awaiting
from sojourn.store.events_repo import EventRow, record_events

log = logging.getLogger(__name__)

_NO_CACHE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}


async def record_engagement(
    state: AppState, message_id: str, event_type: str, attributes: dict[str, str]
) -> bool:
    """Record an engagement event about a message through the normal event path. False if the message is unknown."""
    async with state.db.begin() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT app_id, endpoint_id, journey_id, activity_id FROM messages WHERE message_id = :m"
                ),
                {"m": message_id},
            )
        ).first()
        if row is None:
            return False
        attrs = {**attributes, "message_id": message_id}
        if row.journey_id:
            attrs.update(journey_id=row.journey_id, journey_activity_id=row.activity_id or "")
        events = [
            EventRow(
                app_id=row.app_id,
                endpoint_id=row.endpoint_id,
                event_id=f"{event_type}:{message_id}:{datetime.now(UTC).timestamp()}",
                event_type=event_type,
                occurred_at=datetime.now(UTC),
                attributes=attrs,
                message_id=message_id,
            )
        ]
        journeys = await record_events(conn, events)
        waiting = await lanes_awaiting(conn, row.app_id, events)
    await ring_doorbells(state, row.app_id, journeys)
    await wake_waiting_lanes(state, row.app_id, waiting)
    return True


def tracking_routes(state: AppState) -> list[Route]:
    """The ``/t/o/{token}.gif`` and ``/t/c/{token}`` routes."""
    secret = state.settings.tracking_key

    async def open_pixel(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            await record_engagement(state, parse_open_token(token, secret), "_email.open", {})
        except InvalidTokenError:
            log.info("ignored an open pixel with a bad token")
        # Always the pixel: a mail client shows nothing either way.
        return Response(PIXEL_GIF, media_type="image/gif", headers=_NO_CACHE)

    async def click(request: Request) -> Response:
        try:
            message_id, target = parse_click_token(request.path_params["token"], secret)
        except InvalidTokenError:
            return Response("This link is broken or was altered.", status_code=400, media_type="text/plain")
        await record_engagement(state, message_id, "_email.click", {"feedback": target})
        return RedirectResponse(target, status_code=302, headers=_NO_CACHE)

    return [
        Route("/t/o/{token}.gif", open_pixel, methods=["GET"]),
        Route("/t/c/{token}", click, methods=["GET"]),
    ]
