"""PutEvents: events recorded, endpoint upserts applied, event-triggered journeys fed, all in one transaction."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sojourn.api.errors import BadRequestError
from sojourn.api.server import Handler, RequestContext
from sojourn.api.state import AppState
from sojourn.domain.journeys import parse_instant
from sojourn.engine import names
from sojourn.store.apps_repo import require_app
from sojourn.store.endpoint_rows import touch_active, upsert_endpoints, validate_endpoint_request
from sojourn.store.event_consumers import event_consumers
from sojourn.store.event_waits import WaitingLane, lanes_awaiting
from sojourn.store.events_repo import EventRow, record_events

log = logging.getLogger(__name__)

MAX_EVENTS = 100
MAX_ATTRIBUTE_VALUE = 200
MAX_KEYS = 40
# Cohort wake-up signals of one PutEvents call in flight at once.
SIGNALS_IN_FLIGHT = 16


def event_problem(event: dict[str, Any]) -> str | None:
    """Why Pinpoint would refuse this one event (its item gets a 400), or None."""
    return _checked(event)[0]


def _checked(event: dict[str, Any]) -> tuple[str | None, datetime | None]:
    """(why the event is refused, None), or (None, its Timestamp parsed): the handler parses it only once."""
    if not event.get("EventType"):
        return "EventType is required", None
    if not event.get("Timestamp"):
        return "Timestamp is required", None
    try:
        occurred_at = parse_instant(str(event["Timestamp"]))
    except ValueError as err:
        return str(err), None
    attributes = event.get("Attributes") or {}
    if len(attributes) + len(event.get("Metrics") or {}) > MAX_KEYS:
        return f"an event has at most {MAX_KEYS} attribute and metric keys", None
    for key, value in attributes.items():
        if len(str(value)) > MAX_ATTRIBUTE_VALUE:
            return f"attribute {key!r} is longer than {MAX_ATTRIBUTE_VALUE} characters", None
    return None, occurred_at


async def put_events(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """PutEvents: per-item results as Pinpoint returns them; acknowledged events are committed first."""
    state: AppState = ctx.state
    app_id = params["ApplicationId"]
    batch: dict[str, Any] = (params.get("EventsRequest") or {}).get("BatchItem") or {}
    if sum(len(item.get("Events") or {}) for item in batch.values()) > MAX_EVENTS:
        raise BadRequestError(f"PutEvents takes at most {MAX_EVENTS} events per request")
    results: dict[str, Any] = {}
    rows: list[EventRow] = []
    upserts: list[tuple[str, dict[str, Any]]] = []
    for endpoint_id, item in batch.items():
        if item.get("Endpoint"):
            try:
                validate_endpoint_request(f"BatchItem.{endpoint_id}.Endpoint", item["Endpoint"])
            except BadRequestError as err:
                # Pinpoint answers per item: this endpoint and its events are refused, the rest go on.
                results[endpoint_id] = _refused_item(item, err.message)
                continue
            upserts.append((endpoint_id, dict(item["Endpoint"])))
        event_results: dict[str, Any] = {}
        for event_id, event in (item.get("Events") or {}).items():
            problem, occurred_at = _checked(event)
            if occurred_at is None:
                event_results[event_id] = {"StatusCode": 400, "Message": problem}
                continue
            rows.append(_event_row(app_id, endpoint_id, event_id, event, occurred_at))
            event_results[event_id] = {"StatusCode": 202, "Message": "Accepted"}
        results[endpoint_id] = {
            "EndpointItemResponse": {"StatusCode": 202, "Message": "Accepted"},
            "EventsItemResponse": event_results,
        }
    async with state.db.begin() as conn:
        await require_app(conn, app_id)
        if upserts:
            await upsert_endpoints(conn, app_id, upserts, request_id=ctx.request_id)
        campaigns: set[str] = set()
        journeys: set[str] = set()
        waiting: set[WaitingLane] = set()
        if rows:
            # One lookup of what consumes this app's events serves the intake and the waiting lanes.
            consumers = await event_consumers(conn, app_id)
            journeys = await record_events(conn, rows, woken_campaigns=campaigns, consumers=consumers)
            waiting = await lanes_awaiting(conn, app_id, rows, consumers=consumers)
            await touch_active(conn, app_id, sorted({r.endpoint_id for r in rows}), datetime.now(UTC))
    await ring_doorbells(state, app_id, journeys)
    await ring_campaign_doorbells(state, app_id, campaigns)
    await wake_waiting_lanes(state, app_id, waiting)
    return {"EventsResponse": {"Results": results}}


def _refused_item(item: dict[str, Any], why: str) -> dict[str, Any]:
    message = f"endpoint rejected: {why}"
    return {
        "EndpointItemResponse": {"StatusCode": 400, "Message": why},
        "EventsItemResponse": {
            event_id: {"StatusCode": 400, "Message": message} for event_id in item.get("Events") or {}
        },
    }


def _event_row(
    app_id: str, endpoint_id: str, event_id: str, event: dict[str, Any], occurred_at: datetime
) -> EventRow:
    return EventRow(
        app_id=app_id,
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=str(event["EventType"]),
        occurred_at=occurred_at,
        attributes={k: str(v) for k, v in (event.get("Attributes") or {}).items()},
        metrics={k: float(v) for k, v in (event.get("Metrics") or {}).items()},
        session=event.get("Session"),
    )


async def ring_doorbells(state: AppState, app_id: str, journey_ids: set[str]) -> None:
    """Tell journey workflows that entrants wait. Best effort: a workflow polls its intake anyway."""
    if not journey_ids:
        return
    try:
        client = await state.temporal()
        for journey_id in sorted(journey_ids):
            await client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id)).signal("doorbell")
    except Exception as err:
        log.warning("doorbell for journeys %s not delivered: %s", sorted(journey_ids), err)


async def wake_waiting_lanes(state: AppState, app_id: str, lanes: set[WaitingLane]) -> None:
    """Tell cohorts that events their waiting participants wait for arrived (best effort: the split's
    evaluation at the end of its wait finds the events anyway)."""
    if not lanes:
        return
    try:
        client = await state.temporal()
    except Exception as err:
        log.warning("wake-up of %d waiting lanes not delivered: %s", len(lanes), err)
        return
    gate = asyncio.Semaphore(SIGNALS_IN_FLIGHT)

    async def wake(lane: WaitingLane) -> None:
        async with gate:
            handle = client.get_workflow_handle(
                names.cohort_workflow_id(app_id, lane.journey_id, lane.cohort_no)
            )
            await handle.signal("events_arrived", lane.lane)

    # One batch of events can concern lanes of many cohorts: signalled one after another, the last waited
    # for every round trip before it (measured: a large part of a release's latency under load).
    ordered = sorted(lanes, key=lambda w: (w.journey_id, w.cohort_no, w.lane))
    results = await asyncio.gather(*(wake(lane) for lane in ordered), return_exceptions=True)
    failed = [(lane, r) for lane, r in zip(ordered, results, strict=True) if isinstance(r, Exception)]
    if failed:
        log.warning(
            "wake-up of %d of %d waiting lanes not delivered: %s", len(failed), len(lanes), failed[0][1]
        )


async def ring_campaign_doorbells(state: AppState, app_id: str, campaign_ids: set[str]) -> None:
    """Tell EVENT campaign workflows that endpoints wait. Best effort: a workflow polls its intake anyway."""
    if not campaign_ids:
        return
    try:
        client = await state.temporal()
        for campaign_id in sorted(campaign_ids):
            await client.get_workflow_handle(names.campaign_workflow_id(app_id, campaign_id)).signal(
                "doorbell"
            )
    except Exception as err:
        log.warning("doorbell for campaigns %s not delivered: %s", sorted(campaign_ids), err)


HANDLERS: dict[str, Handler] = {"PutEvents": put_events}
