"""Double opt-in over HTTP: the sign-up form API (``POST /optin/{app_id}``) and the confirmation page
(``GET``/``POST /confirm/{token}``).

EMAIL sign-ups are confirmed by the link in a confirmation email; SMS sign-ups (``"channel": "SMS"``, an E.164
address) by replying YES to a confirmation SMS, which reaches sojourn through the SMS provider's inbound
callback (``POST /callbacks/sms/inbound``, ``api/callbacks.py``).

The form API is called from public web pages, so it cannot carry SigV4 credentials: it is authenticated by
the app's public form key (``sojourn consent form-key --app A``; field ``form_key`` or header
``X-Sojourn-Form-Key``), which says "a form of this app", nothing more. Confirmation links carry an
HMAC-signed token that expires with the opt-in's wait.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from sojourn.api.errors import ApiError, BadRequestError, ForbiddenError
from sojourn.api.state import AppState
from sojourn.domain.optin import (
    ExpiredConfirmTokenError,
    InvalidConfirmTokenError,
    form_key_matches,
    optin_endpoint_id,
    optin_workflow_id,
    optin_workflow_id_for_key,
    parse_confirm_token,
)
from sojourn.engine import names
from sojourn.engine.optin_workflow import DoubleOptInWorkflow
from sojourn.engine.privacy_inputs import Confirmation, OptInInput
from sojourn.store import channels_repo, consent_repo
from sojourn.store.apps_repo import require_app
from sojourn.store.endpoint_rows import validate_endpoint_request
from sojourn.store.templates_repo import email_channel

log = logging.getLogger(__name__)

FORM_KEY_HEADER = "X-Sojourn-Form-Key"
_ADDRESS = re.compile(r"[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\"]+")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_MAX_FORM_BYTES = 64 * 1024


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width'></head>"
        f"<body style='font-family:sans-serif;max-width:32em;margin:3em auto'><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>",
        status_code=status,
    )


def _is_html_form(request: Request) -> bool:
    """A browser's form post (answered with a page) rather than a JSON API call (answered with JSON)."""
    return not request.headers.get("content-type", "").startswith("application/json")


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _form_fields(request: Request) -> dict[str, Any]:
    """The sign-up fields from a JSON or an HTML form (urlencoded) body."""
    if int(request.headers.get("content-length") or 0) > _MAX_FORM_BYTES:
        raise BadRequestError(f"the form is larger than {_MAX_FORM_BYTES} bytes")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise BadRequestError(f"the form is larger than {_MAX_FORM_BYTES} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            fields = json.loads(body)
        except ValueError as err:
            raise BadRequestError(f"the body is not JSON: {err}") from None
        if not isinstance(fields, dict):
            raise BadRequestError("the body must be a JSON object")
        return fields
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise BadRequestError(
            "send the sign-up as application/json or application/x-www-form-urlencoded (a plain HTML form)"
        )
    form: dict[str, Any] = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if "attributes" in form:
        try:
            form["attributes"] = json.loads(form["attributes"])
        except ValueError:
            raise BadRequestError('attributes must be a JSON object, e.g. {"plan": ["pro"]}') from None
    return form


def _endpoint_body(fields: dict[str, Any]) -> dict[str, Any]:
    """EndpointRequest fields from the form's optional user id and attributes (values: string or list)."""
    body: dict[str, Any] = {}
    attributes = fields.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise BadRequestError('attributes must be an object, e.g. {"plan": ["pro"]}')
        body["Attributes"] = {str(k): v if isinstance(v, list) else [str(v)] for k, v in attributes.items()}
    if fields.get("user_id"):
        body["User"] = {"UserId": str(fields["user_id"])}
    validate_endpoint_request("form", body)
    return body


async def _start_optin(
    state: AppState, app_id: str, endpoint_id: str, address: str, consent_text: str
) -> None:
    """Start the address's DoubleOptInWorkflow; a second sign-up while one waits joins it (no second email)."""
    client = await state.temporal()
    await client.start_workflow(
        DoubleOptInWorkflow.run,
        OptInInput(
            app_id=app_id,
            endpoint_id=endpoint_id,
            address=address,
            consent_text=consent_text,
            confirm_days=state.settings.optin_confirm_days,
        ),
        id=optin_workflow_id(app_id, address),
        task_queue=state.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(names.APP_ID, app_id), SearchAttributePair(names.SOJOURN_KIND, "optin")]
        )
        if state.settings.temporal_search_attributes
        else None,
        static_summary=f"double opt-in for app {app_id}",
    )


async def _require_confirmation_channel(conn: AsyncConnection, app_id: str, channel: str) -> None:
    """Refuse a sign-up whose confirmation the app cannot send (no email channel; no enabled SMS channel)."""
    if channel == "SMS":
        row = await channels_repo.channel_row(conn, app_id, "SMS")
        if row is None or not row.enabled:
            raise BadRequestError(
                f"application {app_id} has no enabled SMS channel to send the confirmation from; "
                "set it up with UpdateSmsChannel (Enabled: true)"
            )
    elif await email_channel(conn, app_id) is None:
        raise BadRequestError(
            f"application {app_id} has no email channel to send the confirmation from; "
            "create it with UpdateEmailChannel"
        )


def optin_routes(state: AppState) -> list[Route]:
    """The opt-in form API and the confirmation page."""
    settings = state.settings

    async def optin(request: Request) -> Response:
        app_id = request.path_params["app_id"]
        try:
            fields = await _form_fields(request)
            key = str(fields.get("form_key") or request.headers.get(FORM_KEY_HEADER) or "")
            if not form_key_matches(app_id, key, settings.consent_key):
                raise ForbiddenError(
                    f"form_key is missing or wrong for app {app_id}; get it with `sojourn consent form-key --app {app_id}`"
                )
            address = str(fields.get("address") or "").strip()
            channel = str(fields.get("channel") or "EMAIL").upper()
            if channel not in ("EMAIL", "SMS"):
                raise BadRequestError(
                    f"channel {channel!r} is not supported; double opt-in is for EMAIL and SMS"
                )
            if channel == "EMAIL" and not _ADDRESS.fullmatch(address):
                raise BadRequestError(f"address {address!r} is not an email address")
            if channel == "SMS" and not _E164.fullmatch(address):
                raise BadRequestError(
                    f"address {address!r} is not an E.164 phone number (+ and country code, e.g. +12065550100)"
                )
            if channel == "SMS" and not (settings.sms_provider_url and settings.sms_provider_secret):
                raise BadRequestError(
                    "SMS double opt-in needs an SMS provider that sends the confirmation and reports the reply: "
                    "set SOJOURN_SMS_PROVIDER_URL and SOJOURN_SMS_PROVIDER_SECRET"
                )
            consent_text = str(fields.get("consent_text") or "").strip()
            if not consent_text:
                raise BadRequestError("consent_text is required: the words the contact agreed to on the form")
            body = _endpoint_body(fields)
            async with state.db.begin() as conn:
                await require_app(conn, app_id)
                await _require_confirmation_channel(conn, app_id, channel)
                pending = await consent_repo.start_pending_optin(
                    conn,
                    app_id,
                    address,
                    endpoint_id=optin_endpoint_id(address),
                    endpoint_body=body,
                    consent_text=consent_text[:2000],
                    ip=_client_ip(request),
                    user_agent=(request.headers.get("user-agent") or "")[:500] or None,
                    channel=channel,
                )
        except ApiError as err:
            if _is_html_form(request):
                return _page("Sign-up not accepted", f"<p>{html.escape(err.message)}</p>", err.status)
            return JSONResponse({"message": err.message, "code": err.code}, status_code=err.status)
        if pending.already_granted:
            if _is_html_form(request):
                return _page("Already subscribed", "<p>This address is already subscribed. Thank you!</p>")
            return JSONResponse({"status": "confirmed", "endpoint_id": pending.endpoint_id})
        try:
            await _start_optin(state, app_id, pending.endpoint_id, address, consent_text[:2000])
        except Exception:
            # The pending consent is stored; a retry of the form starts the workflow (and sends) then.
            log.exception("could not start the double opt-in workflow for app %s", app_id)
            message = "The sign-up could not be completed right now; please try again in a minute."
            if _is_html_form(request):
                return _page("Please try again", f"<p>{message}</p>", 503)
            return JSONResponse({"message": message, "code": "ServiceUnavailable"}, status_code=503)
        if _is_html_form(request):
            if channel == "SMS":
                return _page(
                    "Check your phone",
                    "<p>We sent you a text message. Reply YES to it to confirm your subscription.</p>",
                    202,
                )
            return _page(
                "Check your inbox",
                "<p>We sent you an email with a link. Open it to confirm your subscription.</p>",
                202,
            )
        return JSONResponse(
            {"status": "pending_confirmation", "endpoint_id": pending.endpoint_id}, status_code=202
        )

    async def confirm(request: Request) -> Response:
        token_text = request.path_params["token"]
        try:
            token = parse_confirm_token(token_text, settings.consent_key, now=time.time())
        except InvalidConfirmTokenError as err:
            return _page("Link not valid", f"<p>{html.escape(str(err))}</p>", 400)
        except ExpiredConfirmTokenError as err:
            return _page("Link expired", f"<p>{html.escape(str(err))}</p>", 410)
        if request.method == "GET":
            # A GET only shows the button: mail scanners follow links, and must not confirm for anyone.
            return _page(
                "Confirm your subscription",
                # No action: the form posts back to this very URL, wherever the API is mounted.
                "<form method='post'><button type='submit'>Yes, subscribe me</button></form>",
            )
        async with state.db.connect() as conn:
            current = await consent_repo.permission(conn, token.app_id, token.endpoint_id, "EMAIL")
        if current == "granted":
            return _page("Already confirmed", "<p>Your subscription is confirmed. Thank you!</p>")
        if current != "pending":
            return _page(
                "Link expired", "<p>This sign-up is no longer waiting; please sign up again.</p>", 410
            )
        client = await state.temporal()
        handle = client.get_workflow_handle(optin_workflow_id_for_key(token.app_id, token.address_key))
        try:
            await handle.signal(
                DoubleOptInWorkflow.confirm,
                Confirmation(
                    ip=_client_ip(request), user_agent=(request.headers.get("user-agent") or "")[:500] or None
                ),
            )
        except RPCError as err:
            log.info("confirmation for %s not delivered: %s", handle.id, err)
            return _page(
                "Link expired", "<p>This sign-up is no longer waiting; please sign up again.</p>", 410
            )
        except Exception:
            log.exception("confirmation for %s not delivered", handle.id)
            return _page("Please try again", "<p>We could not record your confirmation right now.</p>", 503)
        return _page("Subscription confirmed", "<p>Thank you! Your subscription is confirmed.</p>")

    return [
        Route("/optin/{app_id}", optin, methods=["POST"]),
        Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
    ]
