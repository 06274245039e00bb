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
from sojourn.domain.optin import ConfirmToken, address_key, make_confirm_token
from sojourn.engine.privacy_inputs import ConfirmationEmail, OptInOutcome, SunsetInput, SunsetResult
from sojourn.settings import Settings
from sojourn.store import consent_repo, hygiene_repo, message_ledger
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


class PrivacyActivities:
    """Opt-in and unengaged-removal activities, bound to the database and the email transport."""

    def __init__(self, db: AsyncEngine, settings: Settings, transport: EmailTransport) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport

    def all(self) -> list[Any]:
        """Every activity callable, for the worker."""
        return [self.send_optin_confirmation, self.finish_optin, self.sunset_pass]

    @activity.defn(name="send_optin_confirmation")
    async def send_optin_confirmation(self, inp: ConfirmationEmail) -> str:
        """Send the confirmation email exactly once (message ledger + the transport's two-phase commit).

        Returns:
            The ledger status of the message: sent, failed or skipped.
        """
        async with self.db.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO messages (message_id, app_id, activity_id, endpoint_id, channel, address, status) "
                    "VALUES (:m, :a, :act, :e, 'EMAIL', :x, 'pending') ON CONFLICT (message_id) DO NOTHING"
                ),
                {
                    "m": inp.message_id,
                    "a": inp.app_id,
                    "act": CONFIRMATION_ACTIVITY,
                    "e": inp.endpoint_id,
                    "x": inp.address,
                },
            )
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

    @activity.defn(name="finish_optin")
    async def finish_optin(self, inp: OptInOutcome) -> bool:
        """Record the opt-in's outcome in the consent ledger. False when a retry finds it already recorded."""
        async with self.db.begin() as conn:
            current = await consent_repo.permission(conn, inp.app_id, inp.endpoint_id, "EMAIL")
            if current != "pending":
                return False
            confirmation = inp.confirmation
            await consent_repo.record(
                conn,
                consent_repo.ConsentEvent(
                    app_id=inp.app_id,
                    endpoint_id=inp.endpoint_id,
                    address=inp.address,
                    channel="EMAIL",
                    status=inp.status,
                    source="confirmation" if inp.status == "granted" else "form",
                    method="double_opt_in",
                    ip=confirmation.ip if confirmation else None,
                    user_agent=confirmation.user_agent if confirmation else None,
                    consent_text=inp.consent_text,
                    reason=None
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
