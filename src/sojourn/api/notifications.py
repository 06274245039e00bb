"""Bounce and complaint intake: SNS (SES notifications, signature-verified), a signed JSON webhook, and DSN
emails over SMTP; the same SMTP listener takes mail to the List-Unsubscribe mailto address.

Everything lands in :func:`sojourn.store.feedback_repo.apply_feedback` in one transaction before the
2xx (or the SMTP 250), so an acknowledged bounce is never lost.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sojourn.api.handlers.events import ring_doorbells
from sojourn.api.pages import unsubscribe_by_claim
from sojourn.api.state import AppState
from sojourn.channels.feedback import (
    SIGNATURE_HEADER,
    Feedback,
    FeedbackError,
    SubscriptionConfirmation,
    parse_dsn,
    parse_sns,
    parse_webhook,
    signature_matches,
    sns_envelope,
)
from sojourn.channels.list_unsubscribe import mailto_unsubscribe_token
from sojourn.channels.page_tokens import PageTokenError, verify_page_token
from sojourn.channels.sns_signature import SigningCertCache, SnsSignatureError, confirm_subscription
from sojourn.domain.subscription_events import MAILTO
from sojourn.store.feedback_repo import FeedbackOutcome, apply_feedback

log = logging.getLogger(__name__)

MAX_NOTIFICATION_BYTES = 1_000_000


async def record_feedback(state: AppState, items: Sequence[Feedback]) -> FeedbackOutcome:
    """Apply feedback items in one transaction, then ring the doorbells of journeys they entered."""
    async with state.db.begin() as conn:
        outcome = await apply_feedback(conn, items)
    for app_id, journeys in outcome.journeys.items():
        await ring_doorbells(state, app_id, journeys)
    return outcome


def _summary(outcome: FeedbackOutcome) -> dict[str, int]:
    return {
        "events": outcome.events,
        "suppressed": outcome.suppressed,
        "ledger_updates": outcome.ledger_updates,
        "unmatched": outcome.unmatched,
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


async def _body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_NOTIFICATION_BYTES:
        return None
    body = await request.body()
    return body if len(body) <= MAX_NOTIFICATION_BYTES else None


def notification_routes(state: AppState) -> list[Route]:
    """``POST /notifications/ses`` (SNS HTTP subscription) and ``POST /notifications/webhook`` (signed JSON).

    Every SNS message to ``/notifications/ses`` must carry a valid SNS signature (``channels/sns_signature.py``)
    unless ``SOJOURN_SNS_VERIFY_SIGNATURES=false``; a message that fails gets 403 and changes nothing.
    """
    settings = state.settings
    cert_cache = SigningCertCache(settings.sns_cert_url_pattern)

    async def ses(request: Request) -> Response:
        secret = settings.feedback_secret
        if secret and not hmac.compare_digest(request.query_params.get("token", ""), secret):
            return _error(
                401, "token is missing or wrong: subscribe .../notifications/ses?token=<feedback secret>"
            )
        body = await _body(request)
        if body is None:
            return _error(413, f"the notification is larger than {MAX_NOTIFICATION_BYTES} bytes")
        try:
            envelope = sns_envelope(body)
            if settings.sns_verify_signatures:
                if envelope is None and not secret:
                    return _error(
                        403,
                        "SNS raw message delivery carries no signature: turn raw delivery off, or set "
                        "SOJOURN_FEEDBACK_SECRET and subscribe .../notifications/ses?token=<secret>",
                    )
                if envelope is not None:
                    await cert_cache.verify(envelope)
            parsed = parse_sns(body)
        except SnsSignatureError as err:
            log.warning("refused an SNS message: %s", err)
            return _error(403, f"the SNS message is not genuine: {err}")
        except FeedbackError as err:
            return _error(400, str(err))
        if isinstance(parsed, SubscriptionConfirmation):
            if settings.sns_verify_signatures and envelope is not None:
                # Genuine (verified) and the URL is SNS's own: confirm it, as SNS expects of a subscriber.
                try:
                    await confirm_subscription(parsed.subscribe_url, settings.sns_cert_url_pattern)
                except SnsSignatureError as err:
                    log.warning("SNS subscription to %s not confirmed: %s", parsed.topic_arn, err)
                else:
                    log.info("SNS subscription to %s confirmed", parsed.topic_arn)
                    return JSONResponse({"subscription": "confirmed"})
            # Otherwise an operator confirms it.
            log.warning(
                "SNS subscription to %s waits for confirmation: open %s",
                parsed.topic_arn,
                parsed.subscribe_url,
            )
            return JSONResponse({"subscription": "pending", "subscribe_url": parsed.subscribe_url})
        return JSONResponse(_summary(await record_feedback(state, parsed)))

    async def webhook(request: Request) -> Response:
        secret = settings.feedback_secret
        if not secret:
            return _error(403, "the webhook is off: set SOJOURN_FEEDBACK_SECRET to enable it")
        body = await _body(request)
        if body is None:
            return _error(413, f"the notification is larger than {MAX_NOTIFICATION_BYTES} bytes")
        if not signature_matches(body, request.headers.get(SIGNATURE_HEADER), secret):
            return _error(
                401,
                f"{SIGNATURE_HEADER} must be sha256=<hex HMAC-SHA256 of the body with the feedback secret>",
            )
        try:
            items = parse_webhook(body)
        except FeedbackError as err:
            return _error(400, str(err))
        return JSONResponse(_summary(await record_feedback(state, items)))

    return [
        Route("/notifications/ses", ses, methods=["POST"]),
        Route("/notifications/webhook", webhook, methods=["POST"]),
    ]


class BounceMailboxHandler:
    """aiosmtpd handler of the bounce mailbox (DSN/ARF reports) and of the List-Unsubscribe mailto address."""

    def __init__(self, state: AppState, mailbox: str | None, unsubscribe_mailbox: str | None = None) -> None:
        self.state = state
        self.mailbox = mailbox.strip().lower() if mailbox else None
        self.unsubscribe_mailbox = unsubscribe_mailbox.strip().lower() if unsubscribe_mailbox else None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept only the bounce mailbox (when one is configured) and the unsubscribe address."""
        normal = address.strip().lower()
        if normal != self.unsubscribe_mailbox and self.mailbox is not None and normal != self.mailbox:
            return f"550 5.1.1 <{address}>: this server only accepts mail for the bounce mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the report (or the unsubscribe) before answering 250; anything else is accepted and dropped."""
        content = envelope.original_content or (
            envelope.content if isinstance(envelope.content, bytes) else str(envelope.content or "").encode()
        )
        if self.unsubscribe_mailbox is not None and any(
            r.strip().lower() == self.unsubscribe_mailbox for r in envelope.rcpt_tos
        ):
            return await self._unsubscribe(content, envelope.mail_from)
        try:
            items = parse_dsn(content)
        except FeedbackError as err:
            # Accepted anyway: refusing would make the sender bounce the bounce.
            log.info("bounce mailbox: ignored a message from %s: %s", envelope.mail_from, err)
            return "250 OK (not a delivery report; ignored)"
        try:
            outcome = await record_feedback(self.state, items)
        except Exception:
            log.exception("bounce mailbox: could not record a report from %s", envelope.mail_from)
            return "451 4.3.0 could not record the report; try again later"
        return f"250 OK ({outcome.events} events, {outcome.suppressed} suppressed)"

    async def _unsubscribe(self, content: bytes, sender: str | None) -> str:
        """A mail to the List-Unsubscribe mailto address: a valid token unsubscribes as one-click does."""
        token = mailto_unsubscribe_token(content)
        if token is None:
            log.info("unsubscribe mailbox: ignored a message from %s: it has no unsubscribe token", sender)
            return "250 OK (no unsubscribe token; ignored)"
        try:
            claim = verify_page_token(
                token, purpose="unsubscribe", now=datetime.now(UTC), secret=self.state.settings.page_key
            )
        except PageTokenError as err:
            log.info("unsubscribe mailbox: ignored a message from %s: %s", sender, err)
            return "250 OK (not a valid unsubscribe token; ignored)"
        try:
            row = await unsubscribe_by_claim(self.state, claim, MAILTO)
        except Exception:
            log.exception("unsubscribe mailbox: could not record an unsubscribe from %s", sender)
            return "451 4.3.0 could not record the unsubscribe; try again later"
        if row is None:
            log.info("unsubscribe mailbox: contact list %s no longer exists", claim.list_name)
            return "250 OK (the contact list no longer exists)"
        return "250 OK (unsubscribed)"


Hook = Callable[[], Awaitable[None]]


def bounce_listener(state: AppState) -> tuple[Hook, Hook]:
    """Start/stop hooks of the bounce SMTP listener (both do nothing unless SOJOURN_BOUNCE_SMTP_PORT is set).

    It takes DSN/ARF reports for the bounce mailbox and, when SOJOURN_LIST_UNSUBSCRIBE_MAILTO is set, mail to
    that address (route its domain's MX here).

    The listener runs on the API's own event loop, so it shares the database engine.
    """
    server: list[asyncio.base_events.Server] = []
    settings = state.settings

    async def start() -> None:
        if settings.bounce_smtp_port is None:
            if settings.list_unsubscribe_mailto:
                log.warning(
                    "SOJOURN_LIST_UNSUBSCRIBE_MAILTO is set but SOJOURN_BOUNCE_SMTP_PORT is not: list mail offers "
                    "mailto:%s, and nothing here reads what arrives there",
                    settings.list_unsubscribe_mailto,
                )
            return
        handler = BounceMailboxHandler(state, settings.bounce_mailbox, settings.list_unsubscribe_mailto)
        factory: Any = partial(SMTP, handler, hostname="sojourn-bounces", data_size_limit=10 * 1024 * 1024)
        server.append(
            await asyncio.get_running_loop().create_server(
                factory, host=settings.bounce_smtp_host, port=settings.bounce_smtp_port
            )
        )
        log.info("bounce mailbox listening on %s:%s", settings.bounce_smtp_host, settings.bounce_smtp_port)

    async def stop() -> None:
        while server:
            s = server.pop()
            s.close()
            await s.wait_closed()

    return start, stop
