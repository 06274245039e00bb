"""Render and send a batch of claimed email messages: the send path journeys and campaigns share.

Rows are ledger rows already claimed as ``pending`` (``message_id`` plus the endpoint's columns). The
transport's two-phase send marks each message sent in the ledger as it commits, so a retried batch never
sends a message twice (see :mod:`sojourn.channels.email`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.channels.email import EmailTransport, OutgoingEmail, SendResult
from sojourn.channels.tracking import instrument_html
from sojourn.domain.templates import build_context, render_email
from sojourn.settings import Settings
from sojourn.store import message_ledger
from sojourn.store.endpoint_rows import endpoint_response


class EmailBatchSender:
    """Renders templates per endpoint and sends them through the transport, recording outcomes in the ledger."""

    def __init__(self, db: AsyncEngine, settings: Settings, transport: EmailTransport) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport
        self.secret = settings.tracking_key

    async def send(self, rows: list[dict[str, Any]], template: dict[str, Any], from_address: str) -> int:
        """Render and send ``rows`` with ``template``; failures are marked in the ledger.

        Args:
            rows: Claimed pending messages: ``message_id`` plus the endpoint row's columns.
            template: Email template content (Subject, HtmlPart, TextPart, DefaultSubstitutions, Headers).
            from_address: The sender.

        Returns:
            How many were sent.
        """
        outgoing: list[OutgoingEmail] = []
        failures: list[tuple[str, str, str]] = []
        for row in rows:
            try:
                outgoing.append(self.render(row, template, from_address))
            except (ValueError, KeyError) as err:
                failures.append((row["message_id"], "RENDERING_FAILURE", str(err)))

        async def commit(ids: Sequence[str]) -> None:
            async with self.db.begin() as conn:
                await message_ledger.mark_sent(conn, ids)

        results: dict[str, SendResult] = await self.transport.send_batch(outgoing, commit) if outgoing else {}
        failures += [
            (mid, "PERMANENT_FAILURE" if r.permanent else "TEMPORARY_FAILURE", f"{r.code} {r.message}")
            for mid, r in results.items()
            if not r.ok
        ]
        if failures:
            async with self.db.begin() as conn:
                await message_ledger.mark_failed(conn, failures)
        return sum(1 for r in results.values() if r.ok)

    def render(self, row: dict[str, Any], template: dict[str, Any], from_address: str) -> OutgoingEmail:
        """One endpoint's email, with tracking links in its HTML."""
        context = build_context(
            endpoint_response(row), default_substitutions=template.get("DefaultSubstitutions")
        )
        rendered = render_email(template, context)
        html = rendered.html
        if html is not None:
            html = instrument_html(
                html,
                public_url=self.settings.effective_public_url,
                message_id=row["message_id"],
                secret=self.secret,
            )
        return OutgoingEmail(
            message_id=row["message_id"],
            from_address=from_address,
            to_address=row["address"],
            subject=rendered.subject,
            html=html,
            text=rendered.text,
        )


def email_problem(
    template: dict[str, Any] | None,
    channel: dict[str, Any] | None,
    from_address: str | None,
    name: str | None,
) -> tuple[str, str] | None:
    """Why no email of an activity can be sent at all, as (metric, message); None when they can."""
    if template is None:
        return ("RENDERING_FAILURE", f"email template {name!r} does not exist")
    if channel is not None and not channel.get("Enabled", True):
        return ("UNSUPPORTED_CHANNEL", "the app's email channel is disabled")
    if not from_address:
        return ("UNSUPPORTED_CHANNEL", "no FromAddress: set the app's email channel (UpdateEmailChannel)")
    return None
