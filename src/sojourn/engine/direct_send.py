"""Direct (transactional) sends: SendMessages and SendUsersMessages, synchronous like Pinpoint's.

A request goes: recipients resolved and checked (reachability as the ledger's rule; raw addresses through
:func:`~sojourn.store.direct_ledger.address_skip_reasons`; the app's channel must be enabled; duplicates of an
address in the same request answer DUPLICATE) → one ledger row per recipient committed (``pending``, or
``skipped`` with the reason) → messages rendered and sent on the *transactional* lane (email through SMTP,
the rest through the channel providers), which marks them ``sent`` at the transport's commit point → the
providers' answers recorded → the per-recipient results answered. Pinpoint does not retry a failed direct
send, and neither do we beyond the transport's own retries of throttled or 5xx attempts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.channels.email import OutgoingEmail
from sojourn.channels.priority import Lane
from sojourn.channels.providers import (
    PERMANENT_FAILURE,
    SUCCESSFUL,
    TEMPORARY_FAILURE,
    OutgoingMessage,
    ProviderNotConfiguredError,
    provider_channel,
)
from sojourn.channels.senders import SendLanes
from sojourn.channels.tracking import instrument_html
from sojourn.domain.direct_messages import (
    CHANNEL_TEMPLATES,
    ContentError,
    EmailContent,
    Recipient,
    check_request,
    email_content,
    message_id,
    provider_content,
    render_context,
    result_entry,
    skip_result,
)
from sojourn.domain.templates import TemplateSyntaxError, build_context, render_email
from sojourn.settings import Settings
from sojourn.store import direct_ledger, message_ledger
from sojourn.store.apps_repo import require_app
from sojourn.store.direct_ledger import NO_ENDPOINT, Claim, DeliveryMeta, Outcome
from sojourn.store.endpoint_rows import endpoint_response
from sojourn.store.templates_repo import email_channel, load_email_template, type_word

log = logging.getLogger(__name__)

#: The operation that sets up each channel type (named in "channel not set up" messages).
CHANNEL_OPERATIONS = {
    "EMAIL": "UpdateEmailChannel",
    "SMS": "UpdateSmsChannel",
    "VOICE": "UpdateVoiceChannel",
    "GCM": "UpdateGcmChannel",
    "APNS": "UpdateApnsChannel",
    "APNS_SANDBOX": "UpdateApnsSandboxChannel",
    "APNS_VOIP": "UpdateApnsVoipChannel",
    "APNS_VOIP_SANDBOX": "UpdateApnsVoipSandboxChannel",
    "BAIDU": "UpdateBaiduChannel",
    "ADM": "UpdateAdmChannel",
}


@dataclass
class _Planned:
    """One recipient on its way through a request."""

    group: str  # "address" | "endpoint" | a user id
    recipient: Recipient
    channel: str | None = None
    message_id: str | None = None
    failure: tuple[str, int, str] | None = None
    skip_reason: str | None = None
    outgoing: OutgoingMessage | OutgoingEmail | None = None
    result: tuple[str, int, str] | None = None
    provider_message_id: str | None = None
    updated_token: str | None = None


class DirectSender:
    """Runs direct sends against the database and the process's send lanes."""

    def __init__(self, db: AsyncEngine, settings: Settings, lanes: SendLanes) -> None:
        self.db = db
        self.settings = settings
        self.lanes = lanes

    async def send_messages(self, app_id: str, request: Mapping[str, Any], request_id: str) -> dict[str, Any]:
        """SendMessages: returns the MessageResponse (``Result`` per address, ``EndpointResult`` per endpoint).

        Raises:
            BadRequestError: The request is invalid (see :func:`~sojourn.domain.direct_messages.check_request`).
            NotFoundError: The app or the email template does not exist.
        """
        addresses: Mapping[str, Any] = request.get("Addresses") or {}
        endpoint_map: Mapping[str, Any] = request.get("Endpoints") or {}
        config = request.get("MessageConfiguration") or {}
        check_request(
            config,
            request.get("TemplateConfiguration"),
            addresses=addresses,
            recipients=len(addresses) + len(endpoint_map),
            what="Addresses or Endpoints",
        )
        async with self.db.connect() as conn:
            await require_app(conn, app_id)
            rows = await direct_ledger.endpoints_with_reasons(conn, app_id, list(endpoint_map))
        planned = [
            _Planned("address", Recipient(address, item["ChannelType"], address, None, item))
            for address, item in addresses.items()
        ]
        for endpoint_id, overrides in endpoint_map.items():
            planned.append(
                _Planned("endpoint", _endpoint_recipient(endpoint_id, rows[endpoint_id], overrides))
            )
        await self._run(app_id, request, request_id, planned)
        response: dict[str, Any] = {"ApplicationId": app_id, "RequestId": request_id}
        results = {p.recipient.key: self._entry(p) for p in planned if p.group == "address"}
        endpoint_results = {
            p.recipient.key: self._entry(p, with_address=True) for p in planned if p.group == "endpoint"
        }
        if results:
            response["Result"] = results
        if endpoint_results:
            response["EndpointResult"] = endpoint_results
        return response

    async def send_users_messages(
        self, app_id: str, request: Mapping[str, Any], request_id: str
    ) -> dict[str, Any]:
        """SendUsersMessages: every endpoint of each user; ``Result`` is user id -> endpoint id -> result.

        A user with no endpoints gets an empty map.
        """
        users: Mapping[str, Any] = request.get("Users") or {}
        check_request(
            request.get("MessageConfiguration") or {},
            request.get("TemplateConfiguration"),
            addresses={},
            recipients=len(users),
            what="Users",
        )
        if any(not user_id.strip() for user_id in users):
            raise BadRequestError("Users has an empty user id key")
        async with self.db.connect() as conn:
            await require_app(conn, app_id)
            by_user = await direct_ledger.users_endpoints_with_reasons(conn, app_id, list(users))
        planned = [
            _Planned(user_id, _endpoint_recipient(row["id"], row, overrides or {}))
            for user_id, overrides in users.items()
            for row in by_user[user_id]
        ]
        await self._run(app_id, request, request_id, planned)
        result: dict[str, dict[str, Any]] = {user_id: {} for user_id in users}
        for p in planned:
            result[p.group][p.recipient.key] = self._entry(p, with_address=True)
        return {"ApplicationId": app_id, "RequestId": request_id, "Result": result}

    def _entry(self, p: _Planned, *, with_address: bool = False) -> dict[str, Any]:
        status, code, message = p.result or p.failure or (PERMANENT_FAILURE, 500, "not sent")
        return result_entry(
            status,
            code,
            message,
            message_id=p.message_id,
            address=(p.recipient.address or "") if with_address else None,
            updated_token=p.updated_token,
        )

    # ---- the pipeline ----

    async def _run(
        self, app_id: str, request: Mapping[str, Any], request_id: str, planned: list[_Planned]
    ) -> None:
        config = request.get("MessageConfiguration") or {}
        templates = request.get("TemplateConfiguration") or {}
        meta = DeliveryMeta(app_id, request_id, request.get("TraceId"), request.get("Context") or {})
        async with self.db.connect() as conn:
            channels = await _enabled_channels(conn, app_id)
            email_channel_row = await email_channel(conn, app_id)
            email = await self._email_content(conn, config, templates)
            channel_templates = await self._channel_templates(conn, templates)
            raw = [
                (provider_channel(p.recipient.channel_type or "") or "", p.recipient.address or "")
                for p in planned
                if p.group == "address"
            ]
            address_reasons = await direct_ledger.address_skip_reasons(conn, app_id, raw)
        from_address = ((config.get("EmailMessage") or {}).get("FromAddress")) or (
            email_channel_row or {}
        ).get("FromAddress")
        seen: set[tuple[str, str]] = set()
        for p in planned:
            self._plan(
                p, meta, config, email, from_address, channels, address_reasons, seen, channel_templates
            )
        claims = [
            Claim(
                p.message_id,
                p.channel,
                (p.recipient.endpoint or {}).get("id") or NO_ENDPOINT,
                p.recipient.address,
                p.skip_reason,
            )
            for p in planned
            if p.message_id is not None and p.channel is not None
        ]
        async with self.db.begin() as conn:
            await direct_ledger.claim_direct(conn, meta, claims, datetime.now(UTC))
        async with self.lanes.transactional():
            await self._deliver([p for p in planned if p.outgoing is not None])
        # Skipped recipients keep their ledger status (skipped) but their delivery row says why, as the API did.
        outcomes = [
            Outcome(p.message_id, *answer, provider_message_id=p.provider_message_id)
            for p in planned
            if p.message_id is not None and (answer := p.result or p.failure) is not None
        ]
        async with self.db.begin() as conn:
            await direct_ledger.record_outcomes(conn, outcomes)

    def _plan(
        self,
        p: _Planned,
        meta: DeliveryMeta,
        config: Mapping[str, Any],
        email: EmailContent | None,
        from_address: str | None,
        channels: Mapping[str, bool],
        address_reasons: Mapping[tuple[str, str], str],
        seen: set[tuple[str, str]],
        channel_templates: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Decide one recipient: its channel, message id, and either its outgoing message or why not."""
        r = p.recipient
        if r.skip_reason == "ENDPOINT_MISSING":
            p.failure = skip_result("ENDPOINT_MISSING")
            return
        channel = provider_channel(r.channel_type or "")
        if channel is None:
            p.failure = skip_result("UNSUPPORTED_CHANNEL" if r.channel_type else "ENDPOINT_MISSING_CHANNEL")
            return
        p.channel = channel
        kind = p.group if p.group in ("address", "endpoint") else f"user/{p.group}"
        p.message_id = message_id(meta.app_id, meta.request_id, kind, r.key)
        reason = r.skip_reason
        if reason is None and p.group == "address":
            reason = address_reasons.get((channel, r.address or ""))
        if reason is None and r.address:
            if (channel, r.address) in seen:
                reason = "DUPLICATE"
            seen.add((channel, r.address))
        if reason is not None:
            p.skip_reason, p.failure = reason, skip_result(reason)
            return
        problem = _channel_problem(r.channel_type or "", channels)
        if problem is not None:
            p.skip_reason, p.failure = "CHANNEL_DISABLED", (PERMANENT_FAILURE, 400, problem)
            return
        try:
            if channel == "EMAIL":
                p.outgoing = self._email_message(p, email, from_address, config)
            else:
                self.lanes.provider(channel, Lane.TRANSACTIONAL)
                view = endpoint_response(r.endpoint) if r.endpoint is not None else None
                p.outgoing = OutgoingMessage(
                    message_id=p.message_id,
                    app_id=meta.app_id,
                    channel=channel,
                    channel_type=r.channel_type or channel,
                    address=r.address or "",
                    content=provider_content(r, config, view, (channel_templates or {}).get(channel)),
                    endpoint_id=(r.endpoint or {}).get("id"),
                    context={**meta.context, **(r.overrides.get("Context") or {})},
                    trace_id=meta.trace_id,
                )
        except (ContentError, ProviderNotConfiguredError) as err:
            p.skip_reason, p.failure = "NOT_SENDABLE", (PERMANENT_FAILURE, 400, str(err))

    def _email_message(
        self, p: _Planned, email: EmailContent | None, from_address: str | None, config: Mapping[str, Any]
    ) -> OutgoingEmail:
        r = p.recipient
        assert p.message_id is not None
        if email is None:
            raise ContentError(
                "no email content: set MessageConfiguration.EmailMessage.SimpleEmail or "
                "TemplateConfiguration.EmailTemplate"
            )
        if not from_address:
            raise ContentError("no FromAddress: set EmailMessage.FromAddress or the app's email channel")
        template = dict(email.template)
        if r.overrides.get("TitleOverride"):
            template["Subject"] = r.overrides["TitleOverride"]
        if r.overrides.get("BodyOverride"):
            template["TextPart"], template["HtmlPart"] = r.overrides["BodyOverride"], None
        message_subs = (config.get("EmailMessage") or {}).get("Substitutions") or (
            config.get("DefaultMessage") or {}
        ).get("Substitutions")
        view = Recipient(
            r.key,
            r.channel_type,
            r.address,
            endpoint_response(r.endpoint) if r.endpoint is not None else None,
            r.overrides,
        )
        base = render_context(view, message_subs)
        try:
            context = build_context(base, default_substitutions=email.default_substitutions)
            rendered = render_email(template, context)
        except (TemplateSyntaxError, ValueError) as err:
            raise ContentError(f"the email does not render: {err}") from err
        html = rendered.html
        if html is not None:
            html = instrument_html(
                html,
                public_url=self.settings.effective_public_url,
                message_id=p.message_id,
                secret=self.settings.tracking_key,
            )
        return OutgoingEmail(
            message_id=p.message_id,
            from_address=from_address,
            to_address=r.address or "",
            subject=rendered.subject,
            html=html,
            text=rendered.text,
            headers=dict(rendered.headers),
        )

    async def _email_content(
        self, conn: AsyncConnection, config: Mapping[str, Any], templates: Mapping[str, Any]
    ) -> EmailContent | None:
        named = templates.get("EmailTemplate") or {}
        template = None
        if named.get("Name"):
            template = await load_email_template(conn, named["Name"], named.get("Version"))
            if template is None:
                raise NotFoundError(
                    f"TemplateConfiguration.EmailTemplate: email template {named['Name']!r}"
                    + (f" version {named['Version']}" if named.get("Version") else "")
                    + " not found; create it with CreateEmailTemplate"
                )
        return email_content(config, template)

    async def _channel_templates(
        self, conn: AsyncConnection, templates: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """The request's SMS, push and voice templates (the named version, else the active one), by channel.

        Raises:
            NotFoundError: A named template (or version) does not exist.
        """
        found: dict[str, dict[str, Any]] = {}
        for channel, member in CHANNEL_TEMPLATES.items():
            named = templates.get(member) or {}
            if not named.get("Name"):
                continue
            template = await load_email_template(
                conn, named["Name"], named.get("Version"), template_type=channel
            )
            if template is None:
                raise NotFoundError(
                    f"TemplateConfiguration.{member}: {type_word(channel)} template {named['Name']!r}"
                    + (f" version {named['Version']}" if named.get("Version") else "")
                    + f" not found; create it with Create{type_word(channel).title()}Template"
                )
            found[channel] = template
        return found

    async def _deliver(self, planned: Sequence[_Planned]) -> None:
        """Send every planned message on the transactional lane, one batch per channel, channels at once."""
        by_channel: dict[str, list[_Planned]] = {}
        for p in planned:
            by_channel.setdefault(p.channel or "", []).append(p)
        await asyncio.gather(*(self._deliver_channel(ch, ps) for ch, ps in by_channel.items()))

    async def _deliver_channel(self, channel: str, planned: list[_Planned]) -> None:
        committed: set[str] = set()

        async def commit(ids: Sequence[str]) -> None:
            async with self.db.begin() as conn:
                await message_ledger.mark_sent(conn, ids)
            committed.update(ids)

        by_id = {p.message_id: p for p in planned}
        try:
            if channel == "EMAIL":
                emails = [p.outgoing for p in planned if isinstance(p.outgoing, OutgoingEmail)]
                sent = await self.lanes.email(Lane.TRANSACTIONAL).send_batch(emails, commit)
                for mid, res in sent.items():
                    status = (
                        SUCCESSFUL if res.ok else (PERMANENT_FAILURE if res.permanent else TEMPORARY_FAILURE)
                    )
                    text_ = f"MessageId: {mid}" if res.ok else f"{res.code} {res.message}"
                    by_id[mid].result = (status, 200 if res.ok else (res.code or 500), text_)
            else:
                messages = [p.outgoing for p in planned if isinstance(p.outgoing, OutgoingMessage)]
                got = await self.lanes.provider(channel, Lane.TRANSACTIONAL).send_batch(messages, commit)
                for mid, pr in got.items():
                    text_ = f"MessageId: {mid}" if pr.ok else pr.status_message
                    by_id[mid].result = (pr.delivery_status, 200 if pr.ok else (pr.status_code or 500), text_)
                    by_id[mid].provider_message_id = pr.provider_message_id
                    by_id[mid].updated_token = pr.updated_token
        except Exception as err:  # the relay or provider is unreachable: nothing more was accepted
            log.warning("direct send on %s failed: %r", channel, err)
            for p in planned:
                if p.message_id in committed:  # accepted before the failure: the ledger says sent
                    p.result = (SUCCESSFUL, 200, f"MessageId: {p.message_id}")
                elif p.result is None:
                    p.result = (TEMPORARY_FAILURE, 503, f"the {channel} transport failed: {err}"[:300])


def _endpoint_recipient(endpoint_id: str, row: Mapping[str, Any], overrides: Mapping[str, Any]) -> Recipient:
    if row.get("id") is None:
        return Recipient(endpoint_id, None, None, None, overrides, "ENDPOINT_MISSING")
    return Recipient(
        endpoint_id, row.get("channel_type"), row.get("address"), row, overrides, row.get("skip_reason")
    )


async def _enabled_channels(conn: AsyncConnection, app_id: str) -> dict[str, bool]:
    rows = await conn.execute(
        text("SELECT channel_type, enabled FROM channels WHERE app_id = :a"), {"a": app_id}
    )
    return {r.channel_type: bool(r.enabled) for r in rows}


def _channel_problem(channel_type: str, channels: Mapping[str, bool]) -> str | None:
    """Why the app cannot send on ``channel_type`` (its channel is missing or disabled), or None."""
    operation = CHANNEL_OPERATIONS.get(channel_type)
    if operation is None:  # PUSH and CUSTOM endpoints need no channel settings
        return None
    if channel_type not in channels:
        return f"The app has no {channel_type} channel; set it up with {operation}"
    if not channels[channel_type]:
        return f"The app's {channel_type} channel is disabled; enable it with {operation} (Enabled: true)"
    return None
