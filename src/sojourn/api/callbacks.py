"""Delivery callbacks: ``POST /callbacks/{channel}`` from SMS, push, voice and custom providers.

A provider reports what became of messages it accepted. The request is signed like sojourn's webhook requests
(``X-Sojourn-Timestamp`` + ``X-Sojourn-Signature: sha256=...`` over ``"<timestamp>.<body>"`` with the channel's
``SOJOURN_<CHANNEL>_PROVIDER_SECRET``). Body::

    {"Reports": [{"MessageId": "<sojourn id>", "ProviderMessageId": "<the provider's id>",
                  "Status": "DELIVERED" | "FAILED" | "OPTOUT" | "BUFFERED",
                  "Reason": "CARRIER_UNREACHABLE", "Timestamp": "2026-11-23T12:00:00Z"}]}

(one of the ids is enough). Each report updates the message ledger (FAILED and OPTOUT mark the message
``failed``), records the standard event through the event path (so event-triggered journeys see it), and an
OPTOUT sets the endpoint's OptOut to ALL. Reports are idempotent: the same event for the same message is
recorded once. Answer: ``200 {"Accepted": n, "Unknown": [ids not found]}``; 401 on a bad signature.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sojourn.api.handlers.events import ring_doorbells
from sojourn.api.state import AppState
from sojourn.channels.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from sojourn.domain.journeys import parse_instant
from sojourn.store import direct_ledger
from sojourn.store.events_repo import EventRow, record_events

log = logging.getLogger(__name__)

_CHANNELS = {"sms": "SMS", "push": "PUSH", "voice": "VOICE", "custom": "CUSTOM"}
# Event type prefixes: Pinpoint's for SMS; sojourn's own for the others (Pinpoint defined no delivery events).
_PREFIX = {"SMS": "_SMS", "PUSH": "_push", "VOICE": "_voice", "CUSTOM": "_custom"}
_STATUS_ALIASES = {
    "DELIVERED": "SUCCESS",
    "SUCCESS": "SUCCESS",
    "SUCCESSFUL": "SUCCESS",
    "FAILED": "FAILURE",
    "FAILURE": "FAILURE",
    "UNDELIVERED": "FAILURE",
    "OPTOUT": "OPTOUT",
    "OPT_OUT": "OPTOUT",
    "STOP": "OPTOUT",
    "BUFFERED": "BUFFERED",
}
MAX_REPORTS = 1000


class ReportError(ValueError):
    """A delivery report is malformed."""


def report_event_type(channel: str, status: str) -> str:
    """The standard event type of a delivery report, e.g. (SMS, DELIVERED) → ``_SMS.SUCCESS``.

    Raises:
        ReportError: The status is not one of DELIVERED, FAILED, OPTOUT, BUFFERED (or their aliases).
    """
    normal = _STATUS_ALIASES.get(status.strip().upper())
    if normal is None:
        raise ReportError(
            f"Status {status!r} is not a delivery status; use DELIVERED, FAILED, OPTOUT or BUFFERED"
        )
    return f"{_PREFIX[channel]}.{normal}"


def parse_reports(body: bytes) -> list[dict[str, Any]]:
    """The reports of a callback body (``{"Reports": [...]}`` or one report object).

    Raises:
        ReportError: Not JSON, not an object, too many reports, or a report without a status or id.
    """
    try:
        parsed = json.loads(body)
    except ValueError as err:
        raise ReportError(f"the body is not JSON: {err}") from err
    if not isinstance(parsed, dict):
        raise ReportError('the body must be an object: {"Reports": [...]}')
    reports = parsed.get("Reports", [parsed])
    if not isinstance(reports, list) or not all(isinstance(r, dict) for r in reports):
        raise ReportError("Reports must be a list of objects")
    if len(reports) > MAX_REPORTS:
        raise ReportError(f"{len(reports)} reports; at most {MAX_REPORTS} per request")
    for i, report in enumerate(reports):
        if not report.get("MessageId") and not report.get("ProviderMessageId"):
            raise ReportError(f"Reports[{i}] needs MessageId (sojourn's) or ProviderMessageId")
        if not isinstance(report.get("Status"), str):
            raise ReportError(f"Reports[{i}].Status is required (DELIVERED, FAILED, OPTOUT or BUFFERED)")
    return reports


async def _already_recorded(conn: AsyncConnection, message_id: str, event_type: str) -> bool:
    row = await conn.execute(
        text("SELECT 1 FROM events WHERE message_id = :m AND event_type = :t LIMIT 1"),
        {"m": message_id, "t": event_type},
    )
    return row.first() is not None


async def apply_reports(
    state: AppState, channel: str, reports: list[dict[str, Any]]
) -> tuple[int, list[str]]:
    """Apply delivery reports (ledger, events, opt-outs) in one transaction.

    Returns:
        (reports applied, ids of the reports whose message is unknown).
    """
    accepted = 0
    unknown: list[str] = []
    journeys_by_app: dict[str, set[str]] = {}
    async with state.db.begin() as conn:
        for report in reports:
            event_type = report_event_type(channel, report["Status"])
            row = await direct_ledger.find_message(
                conn,
                channel,
                message_id=report.get("MessageId"),
                provider_message_id=report.get("ProviderMessageId"),
            )
            if row is None or row["channel"] != channel:
                unknown.append(str(report.get("MessageId") or report.get("ProviderMessageId")))
                continue
            accepted += 1
            if await _already_recorded(conn, row["message_id"], event_type):
                continue
            outcome = event_type.rsplit(".", 1)[1]
            reason = str(report.get("Reason") or report.get("StatusMessage") or "")
            await direct_ledger.apply_report(
                conn,
                row["message_id"],
                delivered=None if outcome == "BUFFERED" else outcome == "SUCCESS",
                status=str(report["Status"]).upper(),
                reason=reason,
            )
            if outcome == "OPTOUT":
                await direct_ledger.opt_out(
                    conn, row["app_id"], channel, row["address"] or "", row["endpoint_id"] or ""
                )
            journeys = await record_events(conn, [_event(row, event_type, report, reason)])
            journeys_by_app.setdefault(row["app_id"], set()).update(journeys)
    for app_id, journeys in journeys_by_app.items():
        await ring_doorbells(state, app_id, journeys)
    return accepted, unknown


def _event(row: Mapping[str, Any], event_type: str, report: Mapping[str, Any], reason: str) -> EventRow:
    attributes = {
        **{str(k): str(v) for k, v in (row.get("context") or {}).items()},
        "message_id": row["message_id"],
        "destination_phone_number" if row["channel"] == "SMS" else "address": row["address"] or "",
    }
    if reason:
        attributes["record_status"] = reason
    if row.get("provider_message_id") or report.get("ProviderMessageId"):
        attributes["provider_message_id"] = str(report.get("ProviderMessageId") or row["provider_message_id"])
    if row.get("journey_id"):
        attributes.update(journey_id=row["journey_id"], journey_activity_id=row.get("activity_id") or "")
    if row.get("campaign_id"):
        attributes["campaign_id"] = row["campaign_id"]
    occurred = datetime.now(UTC)
    if isinstance(report.get("Timestamp"), str):
        try:
            occurred = parse_instant(report["Timestamp"])
        except ValueError:
            pass
    return EventRow(
        app_id=row["app_id"],
        endpoint_id=row["endpoint_id"] or "",
        event_id=f"{event_type}:{row['message_id']}",
        event_type=event_type,
        occurred_at=occurred,
        attributes=attributes,
        message_id=row["message_id"],
    )


def callback_routes(state: AppState) -> list[Route]:
    """The ``POST /callbacks/{channel}`` route."""

    async def callback(request: Request) -> Response:
        channel = _CHANNELS.get(request.path_params["channel"].lower())
        if channel is None:
            return JSONResponse(
                {
                    "Message": f"unknown channel {request.path_params['channel']!r}; use sms, push, voice or custom"
                },
                status_code=404,
            )
        _url, secret = state.settings.provider_setting(channel)
        if not secret:
            return JSONResponse(
                {"Message": f"{channel} callbacks are not configured: set SOJOURN_{channel}_PROVIDER_SECRET"},
                status_code=404,
            )
        body = await request.body()
        try:
            verify(
                secret,
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                body=body,
                now=time.time(),
            )
        except SignatureError as err:
            return JSONResponse({"Message": str(err)}, status_code=401)
        try:
            reports = parse_reports(body)
            for report in reports:
                report_event_type(channel, report["Status"])
            accepted, unknown = await apply_reports(state, channel, reports)
        except ReportError as err:
            return JSONResponse({"Message": str(err)}, status_code=400)
        return JSONResponse({"Accepted": accepted, "Unknown": unknown})

    return [Route("/callbacks/{channel}", callback, methods=["POST"])]
