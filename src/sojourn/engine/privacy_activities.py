"""Activities of the DoubleOptInWorkflow and the SunsetWorkflow. Idempotent: retries find their own rows."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from sojourn.channels.email import EmailTransport, OutgoingEmail
from sojourn.channels.priority import Lane
from sojourn.channels.providers import OutgoingMessage, ProviderNotConfiguredError
from sojourn.channels.senders import SendLanes
from sojourn.domain.optin import ConfirmToken, address_key, make_confirm_token
from sojourn.engine.message_steps import sms_settings
from sojourn.engine.privacy_inputs import ConfirmationEmail, OptInOutcome, SunsetInput, SunsetResult
from sojourn.settings import Settings
from sojourn.store import channels_repo, consent_repo, hygiene_repo, message_ledger
from sojourn.store.templates_repo import email_channel

log = logging.getLogger(__name__)

CONFIRMATION_ACTIVITY = "optin-confirmation"


def confirmation_email(
    *, message_id: str, from_address: str, to_address: str, consent_text: str, confirm_url: str, days: int
) -> OutgoingEmail:
    """The confirmation email: what the contact agrees to, and the link that confirms it."""
    text_body = (
        "Please confirm your subscription.\n\n"
        f"You (or someone using this address) asked to receive: {consent_text}\n\n"
        f"Confirm here: {confirm_url}\n\n"
        f"The link is valid for {days} days. If this was not you, ignore this email: nothing will be sent."
    )
    html_body = (
        "<html><body><p>Please confirm your subscription.</p>"
        f"<p>You (or someone using this address) asked to receive: {html.escape(consent_text)}</p>"
        f'<p><a href="{html.escape(confirm_url)}">Confirm my subscription</a></p>'
        f"<p>The link is valid for {days} days. If this was not you, ignore this email.</p></body></html>"
    )
    return OutgoingEmail(
        message_id=message_id,
        from_address=from_address,
        to_address=to_address,
        subject="Please confirm your subscription",
        html=html_body,
        text=text_body,
    )


def confirmation_sms(consent_text: str, days: int) -> str:
    """The confirmation SMS of an SMS double opt-in: what the contact agrees to and how to confirm."""
    return (
        f"Reply YES to confirm you want: {consent_text[:300]} "
        f"Valid for {days} days. Not you? Ignore this message. Reply STOP to opt out, HELP for help."
    )


class PrivacyActivities:
    """Opt-in and unengaged-removal activities, bound to the database and the email transport (and, for SMS
    opt-ins, the process's send lanes)."""

    def __init__(
        self, db: AsyncEngine, settings: Settings, transport: EmailTransport, lanes: SendLanes | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport
        self.lanes = lanes or SendLanes(settings)

    def all(self) -> list[Any]:
        """Every activity callable, for the worker."""
        return [self.send_optin_confirmation, self.finish_optin, self.sunset_pass]

    @activity.defn(name="send_optin_confirmation")
    async def send_optin_confirmation(self, inp: ConfirmationEmail) -> str:
        """Send the confirmation email exactly once (message ledger + the transport's two-phase commit).

        An SMS endpoint's opt-in gets a confirmation SMS instead (:meth:`_send_confirmation_sms`).

        Returns:
            The ledger status of the message: sent, failed or skipped.
        """
        async with self.db.begin() as conn:
            channel_type = await consent_repo.endpoint_channel(conn, inp.app_id, inp.endpoint_id)
            await conn.execute(
                text(
                    "INSERT INTO messages (message_id, app_id, activity_id, endpoint_id, channel, address, status) "
                    "VALUES (:m, :a, :act, :e, :c, :x, 'pending') ON CONFLICT (message_id) DO NOTHING"
                ),
                {
                    "m": inp.message_id,
                    "a": inp.app_id,
                    "act": CONFIRMATION_ACTIVITY,
                    "e": inp.endpoint_id,
                    "c": "SMS" if channel_type == "SMS" else "EMAIL",
                    "x": inp.address,
                },
            )
            if channel_type == "SMS":
                status = await conn.scalar(
                    text("SELECT status FROM messages WHERE message_id = :m"), {"m": inp.message_id}
                )
                sms_channel = await channels_repo.channel_row(conn, inp.app_id, "SMS")
        if channel_type == "SMS":
            if status != "pending":
                return str(status)
            return await self._send_confirmation_sms(
                inp, dict(sms_channel.settings or {}) if sms_channel else {}
            )
        async with self.db.begin() as conn:
            status = await conn.scalar(
                text("SELECT status FROM messages WHERE message_id = :m"), {"m": inp.message_id}
            )
            channel = await email_channel(conn, inp.app_id)
            suppressed = await message_ledger.suppressed_addresses(conn, [inp.address])
        if status != "pending":
            return str(status)  # a retry after the commit point: already sent (or given up on)
        if suppressed:
            async with self.db.begin() as conn:
                await conn.execute(
                    text(
                        "UPDATE messages SET status = 'skipped', status_message = 'SUPPRESSED' WHERE message_id = :m"
                    ),
                    {"m": inp.message_id},
                )
            return "skipped"
        from_address = (channel or {}).get("FromAddress")
        if not from_address:
            async with self.db.begin() as conn:
                await message_ledger.mark_failed(
                    conn,
                    [(inp.message_id, "UNSUPPORTED_CHANNEL", "the app has no email channel FromAddress")],
                )
            return "failed"
        token = make_confirm_token(
            ConfirmToken(inp.app_id, inp.endpoint_id, address_key(inp.address), inp.expires_at),
            self.settings.consent_key,
        )
        email = confirmation_email(
            message_id=inp.message_id,
            from_address=from_address,
            to_address=inp.address,
            consent_text=inp.consent_text,
            confirm_url=f"{self.settings.effective_public_url}/confirm/{token}",
            days=inp.confirm_days,
        )

        async def commit(ids: Sequence[str]) -> None:
            async with self.db.begin() as conn:
                await message_ledger.mark_sent(conn, ids)

        result = (await self.transport.send_batch([email], commit))[inp.message_id]
        if result.ok:
            return "sent"
        if not result.permanent:
            # Still pending in the ledger: the retry sends it.
            raise ApplicationError(
                f"the SMTP relay deferred the confirmation: {result.code} {result.message}"
            )
        async with self.db.begin() as conn:
            await message_ledger.mark_failed(
                conn, [(inp.message_id, "PERMANENT_FAILURE", f"{result.code} {result.message}")]
            )
        return "failed"

    async def _send_confirmation_sms(self, inp: ConfirmationEmail, channel: dict[str, Any]) -> str:
        """Send the SMS opt-in's confirmation through the SMS provider, exactly once (the ledger id is the
        provider's Idempotency-Key); the contact confirms by replying YES (``POST /callbacks/sms/inbound``)."""
        message = OutgoingMessage(
            message_id=inp.message_id,
            app_id=inp.app_id,
            channel="SMS",
            channel_type="SMS",
            address=inp.address,
            endpoint_id=inp.endpoint_id,
            content={
                "Body": confirmation_sms(inp.consent_text, inp.confirm_days),
                **sms_settings({"MessageType": "TRANSACTIONAL"}, channel),
            },
        )

        async def commit(ids: Sequence[str]) -> None:
            async with self.db.begin() as conn:
                await message_ledger.mark_sent(conn, ids)

        try:
            provider = self.lanes.provider("SMS", Lane.TRANSACTIONAL)
        except ProviderNotConfiguredError as err:
            async with self.db.begin() as conn:
                await message_ledger.mark_failed(conn, [(inp.message_id, "UNSUPPORTED_CHANNEL", str(err))])
            return "failed"
        result = (await provider.send_batch([message], commit))[inp.message_id]
        if result.ok:
            return "sent"
        if result.retryable:
            raise ApplicationError(f"the SMS provider deferred the confirmation: {result.status_message}")
        async with self.db.begin() as conn:
            await message_ledger.mark_failed(
                conn, [(inp.message_id, result.delivery_status, result.status_message[:500])]
            )
        return "failed"

    @activity.defn(name="finish_optin")
    async def finish_optin(self, inp: OptInOutcome) -> bool:
        """Record the opt-in's outcome in the consent ledger. False when a retry finds it already recorded."""
        async with self.db.begin() as conn:
            channel = await consent_repo.endpoint_channel(conn, inp.app_id, inp.endpoint_id) or "EMAIL"
            current = await consent_repo.permission(conn, inp.app_id, inp.endpoint_id, channel)
            if current != "pending":
                return False
            confirmation = inp.confirmation
            await consent_repo.record(
                conn,
                consent_repo.ConsentEvent(
                    app_id=inp.app_id,
                    endpoint_id=inp.endpoint_id,
                    address=inp.address,
                    channel=channel,
                    status=inp.status,
                    source="confirmation" if inp.status == "granted" else "form",
                    method="double_opt_in",
                    ip=confirmation.ip if confirmation else None,
                    user_agent=confirmation.user_agent if confirmation else None,
                    consent_text=inp.consent_text,
                    reason=("confirmed by an SMS reply YES" if channel == "SMS" else None)
                    if inp.status == "granted"
                    else f"not confirmed within {inp.confirm_days} days",
                ),
            )
        return True

    @activity.defn(name="sunset_pass")
    async def sunset_pass(self, inp: SunsetInput) -> SunsetResult:
        """One pass of unengaged removal with the app's stored policy (idempotent: applied endpoints drop out)."""
        async with self.db.begin() as conn:
            policy = await hygiene_repo.load_policy(conn, inp.app_id)
            if policy is None or not policy.enabled:
                return SunsetResult(enabled=False)
            now = datetime.now(UTC)
            found = await hygiene_repo.unengaged_endpoints(conn, inp.app_id, days=policy.days, now=now)
            applied = await hygiene_repo.apply_policy(
                conn, inp.app_id, found, policy=policy.policy, days=policy.days
            )
        log.info(
            "sunset %s: %d unengaged for %d days, policy %s applied to %d",
            inp.app_id,
            len(found),
            policy.days,
            policy.policy,
            applied,
        )
        return SunsetResult(
            enabled=True, policy=policy.policy, days=policy.days, found=len(found), applied=applied
        )
