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

``POST /callbacks/sms/inbound`` (signed the same way with ``SOJOURN_SMS_PROVIDER_SECRET``) takes the messages
contacts send to the app's number::

    {"Messages": [{"From": "+12065550100", "To": "+12065550199", "Body": "STOP",
                   "MessageId": "<the provider's id>", "Timestamp": "2026-11-23T12:00:00Z"}]}

Each is recorded as ``_SMS.RECEIVED`` on every SMS endpoint with the sender's number. A message that is only
a keyword acts: STOP (STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT, OPT OUT) opts the number out
(``_SMS.OPTOUT``, OptOut ALL, withdrawn consent); START (UNSTOP) undoes a STOP; YES (Y) confirms a pending
SMS double opt-in; HELP (INFO) changes nothing (the provider sends the help text). A STOP from a number no app
has an endpoint for puts it on the every-app opt-out list (``direct_ledger.opt_out_everywhere``). Answer: ``200 {"Accepted": n,
"Results": [{"MessageId", "Keyword", "Action": OPTED_OUT|OPTED_IN|CONFIRMED|NOTHING_TO_CONFIRM|HELP|NONE|
UNKNOWN_NUMBER, "Endpoints": n}]}``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.service import RPCError

from sojourn.api.handlers.events import ring_doorbells
from sojourn.api.state import AppState
from sojourn.channels.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from sojourn.domain.journeys import parse_instant
from sojourn.domain.optin import optin_workflow_id
from sojourn.engine.optin_workflow import DoubleOptInWorkflow
from sojourn.engine.privacy_inputs import Confirmation
from sojourn.store import consent_repo, direct_ledger
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


def _objects(body: bytes, key: str) -> list[dict[str, Any]]:
    """The objects of a callback body: ``{key: [...]}``, or one object standing for a list of one.

    Raises:
        ReportError: Not JSON, not an object, not a list of objects, or more than ``MAX_REPORTS``.
    """
    try:
        parsed = json.loads(body)
    except ValueError as err:
        raise ReportError(f"the body is not JSON: {err}") from err
    if not isinstance(parsed, dict):
        raise ReportError(f'the body must be an object: {{"{key}": [...]}}')
    items = parsed.get(key, [parsed])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ReportError(f"{key} must be a list of objects")
    if len(items) > MAX_REPORTS:
        raise ReportError(f"{len(items)} {key.lower()}; at most {MAX_REPORTS} per request")
    return items


def parse_reports(body: bytes) -> list[dict[str, Any]]:
    """The reports of a callback body (``{"Reports": [...]}`` or one report object).

    Raises:
        ReportError: Not JSON, not an object, too many reports, or a report without a status or id.
    """
    reports = _objects(body, "Reports")
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


#: Keywords (the whole message, any case) of an inbound SMS, as carriers and CTIA define them.
STOP_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
)
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
CONFIRM_KEYWORDS = frozenset({"YES", "Y"})
START_KEYWORDS = frozenset({"START", "UNSTOP"})
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@dataclass(frozen=True)
class InboundSms:
    """One message a contact sent to the app's number, as the provider reports it."""

    from_number: str
    to_number: str
    body: str
    provider_message_id: str
    occurred_at: datetime


def inbound_keyword(body: str) -> str | None:
    """STOP, HELP, YES or START when the whole message is one of their keywords (any case, punctuation around it
    ignored), else None: "Stop sending me deals?" is a message, not a keyword."""
    words = " ".join(re.sub(r"[^A-Za-z ]", " ", body).upper().split())
    if words in STOP_KEYWORDS:
        return "STOP"
    if words in HELP_KEYWORDS:
        return "HELP"
    if words in CONFIRM_KEYWORDS:
        return "YES"
    if words in START_KEYWORDS:
        return "START"
    return None


def parse_inbound(body: bytes, *, now: datetime) -> list[InboundSms]:
    """The messages of an inbound SMS callback: ``{"Messages": [...]}`` or one message object, each
    ``{"From": E.164, "To": E.164 or short code, "Body": text, "MessageId": the provider's id, "Timestamp"?}``.

    Raises:
        ReportError: Not JSON, too many messages, or a message without From, Body or MessageId.
    """
    messages = _objects(body, "Messages")
    out: list[InboundSms] = []
    for i, m in enumerate(messages):
        sender = str(m.get("From") or "").strip()
        if not _E164.fullmatch(sender):
            raise ReportError(
                f"Messages[{i}].From {sender!r} is not an E.164 phone number (e.g. +12065550100)"
            )
        if not isinstance(m.get("Body"), str):
            raise ReportError(f"Messages[{i}].Body is required: the text the contact sent")
        if not m.get("MessageId"):
            raise ReportError(
                f"Messages[{i}].MessageId is required: the provider's id of the inbound message"
            )
        occurred = now
        if isinstance(m.get("Timestamp"), str):
            try:
                occurred = parse_instant(m["Timestamp"])
            except ValueError:
                raise ReportError(f"Messages[{i}].Timestamp {m['Timestamp']!r} is not ISO 8601") from None
        out.append(InboundSms(sender, str(m.get("To") or ""), m["Body"], str(m["MessageId"]), occurred))
    return out


@dataclass
class InboundOutcome:
    """What the inbound messages did: per message, its keyword and action; the opt-ins to confirm."""

    results: list[dict[str, Any]] = field(default_factory=list)
    confirm: list[tuple[str, str]] = field(default_factory=list)  # (app id, phone number)
    journeys: dict[str, set[str]] = field(default_factory=dict)


async def apply_inbound(conn: AsyncConnection, messages: list[InboundSms]) -> InboundOutcome:
    """Apply inbound SMS in the caller's transaction, for every app with an SMS endpoint of the sender.

    Every message is recorded as ``_SMS.RECEIVED`` on those endpoints (once per provider message id).
    STOP opts the number out (OptOut ALL, ``address_opt_outs``, a withdrawn consent row; ``_SMS.OPTOUT``);
    START undoes a STOP (OptOut NONE, a granted consent row, source ``keyword``);
    YES confirms a pending SMS double opt-in (the caller signals its workflow after commit); HELP changes
    nothing (the provider answers it).
    """
    outcome = InboundOutcome()
    for message in messages:
        keyword = inbound_keyword(message.body)
        rows = (
            await conn.execute(
                text(
                    "SELECT e.app_id, e.id, p.status AS permission FROM endpoints e "
                    "LEFT JOIN channel_permissions p ON p.app_id = e.app_id AND p.endpoint_id = e.id "
                    "AND p.channel = 'SMS' WHERE e.channel_type = 'SMS' AND e.address = :x ORDER BY e.app_id, e.id"
                ),
                {"x": message.from_number},
            )
        ).all()
        action = "NONE" if rows else "UNKNOWN_NUMBER"
        events: list[EventRow] = []
        confirmed = 0
        for app_id, endpoint_id, permission in rows:
            event_id = f"_SMS.RECEIVED:{message.provider_message_id}"
            if await _inbound_recorded(conn, app_id, endpoint_id, event_id):
                continue
            attributes = {
                "origination_number": message.from_number,
                "destination_number": message.to_number,
                "message_body": message.body[:200],
                "provider_message_id": message.provider_message_id,
                **({"keyword": keyword} if keyword else {}),
            }
            events.append(_inbound_event(app_id, endpoint_id, "_SMS.RECEIVED", event_id, message, attributes))
            if keyword == "STOP":
                events.append(
                    _inbound_event(
                        app_id,
                        endpoint_id,
                        "_SMS.OPTOUT",
                        f"_SMS.OPTOUT:{message.provider_message_id}",
                        message,
                        attributes,
                    )
                )
            if keyword == "YES" and permission == "pending":
                outcome.confirm.append((app_id, message.from_number))
                confirmed += 1
        if keyword == "STOP" and rows:
            await consent_repo.name_consent_source(conn, "unsubscribe")
            for app_id in sorted({r.app_id for r in rows}):
                await direct_ledger.opt_out(conn, app_id, "SMS", message.from_number, "")
            action = "OPTED_OUT"
        elif keyword == "STOP":
            # No app knows the number: it goes on the every-app list, so no app texts it until START.
            await direct_ledger.opt_out_everywhere(conn, "SMS", message.from_number)
            action = "OPTED_OUT"
        elif keyword == "START" and not rows:
            opted_in = await direct_ledger.opt_in_everywhere(conn, "SMS", message.from_number)
            action = "OPTED_IN" if opted_in else action
        elif keyword == "START" and rows:
            await consent_repo.name_consent_source(conn, "keyword")
            changed = 0
            for app_id in sorted({r.app_id for r in rows}):
                changed += await direct_ledger.opt_in_again(conn, app_id, "SMS", message.from_number)
            action = "OPTED_IN" if changed else "NONE"
        elif keyword == "YES" and rows:
            action = "CONFIRMED" if confirmed else "NOTHING_TO_CONFIRM"
        elif keyword == "HELP" and rows:
            action = "HELP"
        for app_id in sorted({e.app_id for e in events}):
            started = await record_events(conn, [e for e in events if e.app_id == app_id])
            outcome.journeys.setdefault(app_id, set()).update(started)
        outcome.results.append(
            {
                "MessageId": message.provider_message_id,
                "Keyword": keyword,
                "Action": action,
                "Endpoints": len(rows),
            }
        )
    return outcome


async def _inbound_recorded(conn: AsyncConnection, app_id: str, endpoint_id: str, event_id: str) -> bool:
    row = await conn.execute(
        text(
            "SELECT 1 FROM events WHERE app_id = :a AND endpoint_id = :e AND event_type = '_SMS.RECEIVED' "
            "AND event_id = :i LIMIT 1"
        ),
        {"a": app_id, "e": endpoint_id, "i": event_id},
    )
    return row.first() is not None


def _inbound_event(
    app_id: str,
    endpoint_id: str,
    event_type: str,
    event_id: str,
    message: InboundSms,
    attributes: dict[str, str],
) -> EventRow:
    return EventRow(
        app_id=app_id,
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        occurred_at=message.occurred_at,
        attributes=attributes,
    )


async def _signed_body(state: AppState, request: Request, channel: str) -> bytes | Response:
    """The request's body if it is signed with the channel's provider secret, else the error response to send."""
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
    return body


def callback_routes(state: AppState) -> list[Route]:
    """The ``POST /callbacks/{channel}`` and ``POST /callbacks/sms/inbound`` routes."""

    async def callback(request: Request) -> Response:
        channel = _CHANNELS.get(request.path_params["channel"].lower())
        if channel is None:
            return JSONResponse(
                {
                    "Message": f"unknown channel {request.path_params['channel']!r}; use sms, push, voice or custom"
                },
                status_code=404,
            )
        body = await _signed_body(state, request, channel)
        if isinstance(body, Response):
            return body
        try:
            reports = parse_reports(body)
            for report in reports:
                report_event_type(channel, report["Status"])
            accepted, unknown = await apply_reports(state, channel, reports)
        except ReportError as err:
            return JSONResponse({"Message": str(err)}, status_code=400)
        return JSONResponse({"Accepted": accepted, "Unknown": unknown})

    async def inbound(request: Request) -> Response:
        body = await _signed_body(state, request, "SMS")
        if isinstance(body, Response):
            return body
        try:
            messages = parse_inbound(body, now=datetime.now(UTC))
        except ReportError as err:
            return JSONResponse({"Message": str(err)}, status_code=400)
        async with state.db.begin() as conn:
            outcome = await apply_inbound(conn, messages)
        try:
            await _confirm_optins(state, outcome.confirm)
        except Exception:
            # Committed already (events, opt-outs are idempotent): the provider's retry confirms then.
            log.exception("could not deliver SMS opt-in confirmations %s", outcome.confirm)
            return JSONResponse(
                {"Message": "the reply could not be passed on right now; retry the callback"}, status_code=503
            )
        for app_id, journeys in outcome.journeys.items():
            await ring_doorbells(state, app_id, journeys)
        return JSONResponse({"Accepted": len(messages), "Results": outcome.results})

    return [
        Route("/callbacks/sms/inbound", inbound, methods=["POST"]),
        Route("/callbacks/{channel}", callback, methods=["POST"]),
    ]


async def _confirm_optins(state: AppState, confirmations: list[tuple[str, str]]) -> None:
    """Signal the DoubleOptInWorkflow of each (app, number) whose contact replied YES."""
    if not confirmations:
        return
    client = await state.temporal()
    for app_id, number in confirmations:
        handle = client.get_workflow_handle(optin_workflow_id(app_id, number))
        try:
            await handle.signal(DoubleOptInWorkflow.confirm, Confirmation())
        except RPCError as err:
            # The opt-in is no longer waiting (expired and finished): nothing to confirm.
            log.info("SMS confirmation for %s not delivered: %s", handle.id, err)
