"""Render and send a batch of claimed email messages: the send path journeys and campaigns share.

Rows are ledger rows already claimed as ``pending`` (``message_id`` plus the endpoint's columns). The
transport's two-phase send marks each message sent in the ledger as it commits, so a retried batch never
sends a message twice (see :mod:`sojourn.channels.email`).

List mail: a template whose ``Headers`` carry SES's ``X-SES-LIST-MANAGEMENT-OPTIONS: contactListName=L;
topicName=T`` is list mail, as with SES. Recipients not subscribed to the topic (unsubscribed from the list,
else their preference, else the topic's default) are skipped (``UNSUBSCRIBED``); the others get
``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (RFC 8058 one-click) and ``{{amazonSESUnsubscribeUrl}}``
becomes their preference page. The header itself is not sent. Campaigns test the subscription in the claim
itself (``message_ledger.ListFilter``) and pass ``subscribers_only=False``; other senders filter here.

Per message the work is small: templates are compiled once per process (``compile_template`` caches by
source), tracking links are found once per HTML template (``tracking.plan_tracking``) and each message only
signs its tokens and fills them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.channels.email import EmailTransport, OutgoingEmail, SendResult
from sojourn.channels.list_unsubscribe import (
    UNSUBSCRIBE_PLACEHOLDER,
    ListUnsubscribeLinks,
    replace_unsubscribe_placeholder,
)
from sojourn.channels.tracking import instrument_html, plan_tracking
from sojourn.domain.lists import (
    LIST_MANAGEMENT_HEADER,
    ListRuleError,
    may_send,
    normalize_email,
    parse_list_management_header,
    topics_from_json,
)
from sojourn.domain.templates import build_context, email_root_names, render_email
from sojourn.settings import Settings
from sojourn.store import lists_repo, message_ledger
from sojourn.store.endpoint_rows import endpoint_response

# Stands for the unsubscribe URL while the template renders (Handlebars would empty the placeholder) and
# while tracking rewrites links (it is not an http URL, so the unsubscribe link is never click-tracked).
_UNSUBSCRIBE_SENTINEL = "sojourn-unsubscribe-url:"
_LIST_MANAGEMENT_HEADER = LIST_MANAGEMENT_HEADER.lower()


def list_options(template: dict[str, Any]) -> dict[str, str] | None:
    """The ListManagementOptions a template's ``X-SES-LIST-MANAGEMENT-OPTIONS`` header names, or None.

    Raises:
        ListRuleError: the header is malformed.
    """
    for header in template.get("Headers") or ():
        if str(header.get("Name") or "").lower() == LIST_MANAGEMENT_HEADER.lower():
            return parse_list_management_header(str(header.get("Value") or ""))
    return None


class EmailBatchSender:
    """Renders templates per endpoint and sends them through the transport, recording outcomes in the ledger."""

    def __init__(self, db: AsyncEngine, settings: Settings, transport: EmailTransport) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport
        self.secret = settings.tracking_key

    async def send(
        self,
        rows: list[dict[str, Any]],
        template: dict[str, Any],
        from_address: str,
        *,
        subscribers_only: bool = True,
    ) -> int:
        """Render and send ``rows`` with ``template``; failures are marked in the ledger.

        Args:
            rows: Claimed pending messages: ``message_id`` plus the endpoint row's columns.
            template: Email template content (Subject, HtmlPart, TextPart, DefaultSubstitutions, Headers).
            from_address: The sender.
            subscribers_only: For list mail, skip the recipients not subscribed to the topic first; False when
                the claim already did (``message_ledger.ListFilter``).

        Returns:
            How many were sent.
        """
        outgoing: list[OutgoingEmail] = []
        failures: list[tuple[str, str, str]] = []
        try:
            options = list_options(template)
        except ListRuleError as err:
            failures += [(row["message_id"], "RENDERING_FAILURE", str(err)) for row in rows]
            options, rows = None, []
        if options is not None and subscribers_only:
            rows = await self._subscribers_only(rows, options)
        prepared = self.prepare(template, from_address, options) if rows else None
        for row in rows:
            assert prepared is not None
            try:
                outgoing.append(prepared.render(row))
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

    async def _subscribers_only(
        self, rows: list[dict[str, Any]], options: dict[str, str]
    ) -> list[dict[str, Any]]:
        """The rows whose address may get list mail for ``options``; the others are marked skipped."""
        list_name, topic = options["ContactListName"], options.get("TopicName")
        async with self.db.connect() as conn:
            listing = await lists_repo.get_list(conn, list_name)
            contacts = await lists_repo.contacts_by_address(
                conn, list_name, {normalize_email(str(r["address"])) for r in rows}
            )
        keep: list[dict[str, Any]] = []
        skipped: list[tuple[str, str]] = []
        for row in rows:
            if listing is None:
                skipped.append(
                    (row["message_id"], f"LIST_NOT_FOUND: contact list {list_name} does not exist")
                )
                continue
            contact = contacts.get(normalize_email(str(row["address"])))
            try:
                allowed = may_send(
                    topics_from_json(listing.topics),
                    topic,
                    unsubscribe_all=bool(contact.unsubscribe_all) if contact is not None else False,
                    preferences=dict(contact.topic_preferences or {}) if contact is not None else {},
                )
            except ListRuleError as err:
                skipped.append((row["message_id"], f"LIST_NOT_FOUND: {err}"))
                continue
            if allowed:
                keep.append(row)
            else:
                skipped.append(
                    (row["message_id"], f"UNSUBSCRIBED: not subscribed to {list_name}/{topic or '*'}")
                )
        if skipped:
            async with self.db.begin() as conn:
                await message_ledger.mark_skipped(conn, skipped)
        return keep

    def render(
        self,
        row: dict[str, Any],
        template: dict[str, Any],
        from_address: str,
        options: dict[str, str] | None = None,
    ) -> OutgoingEmail:
        """One endpoint's email, with tracking links in its HTML, its template headers and, for list mail, the
        List-Unsubscribe headers and unsubscribe URL (a batch prepares once: :meth:`prepare`)."""
        return self.prepare(template, from_address, options).render(row)

    def prepare(
        self,
        template: dict[str, Any],
        from_address: str,
        options: dict[str, str] | None = None,
        now: datetime | None = None,
    ) -> PreparedEmail:
        """What every message of one send shares, worked out once: see :class:`PreparedEmail`.

        Args:
            template: Email template content (Subject, HtmlPart, TextPart, DefaultSubstitutions, Headers).
            from_address: The sender.
            options: List mail's ListManagementOptions, or None.
            now: When the send happens (list links expire ``page_token_ttl_days`` after it); default now.
        """
        return PreparedEmail(self.settings, template, from_address, options, now or datetime.now(UTC))


class PreparedEmail:
    """One template's messages for one send: each message only renders, signs its tokens and fills them in.

    Prepared once per send: whether list mail has an ``{{amazonSESUnsubscribeUrl}}`` placeholder (and the
    template with the placeholder held by a sentinel), the tracking plan of the HTML part, and the
    List-Unsubscribe token signers (:class:`~sojourn.channels.list_unsubscribe.ListUnsubscribeLinks`).
    """

    def __init__(
        self,
        settings: Settings,
        template: dict[str, Any],
        from_address: str,
        options: dict[str, str] | None,
        now: datetime,
    ) -> None:
        self.from_address = from_address
        self.settings = settings
        self.placeholder = options is not None and any(
            UNSUBSCRIBE_PLACEHOLDER in str(template.get(part) or "") for part in ("HtmlPart", "TextPart")
        )
        if self.placeholder:
            template = {
                **template,
                **{
                    part: str(template[part]).replace(UNSUBSCRIBE_PLACEHOLDER, _UNSUBSCRIBE_SENTINEL)
                    for part in ("HtmlPart", "TextPart")
                    if template.get(part)
                },
            }
        self.defaults = template.get("DefaultSubstitutions")
        html_source = template.get("HtmlPart")
        self.plan = (
            plan_tracking(str(html_source), settings.effective_public_url, settings.tracking_key)
            if html_source
            else None
        )
        # Links found once per template: each message only signs its tokens and fills them in.
        self.template = {**template, "HtmlPart": self.plan.source} if self.plan is not None else template
        headers = self.template.get("Headers")
        if headers:
            # The list-management header is not sent: not rendered either.
            self.template = {
                **self.template,
                "Headers": [
                    h for h in headers if str(h.get("Name") or "").lower() != _LIST_MANAGEMENT_HEADER
                ],
            }
        # Each message's context holds only the endpoint fields the template reads (None: all of them).
        self.names = email_root_names(self.template)
        self.links = (
            ListUnsubscribeLinks(
                public_url=settings.effective_public_url,
                secret=settings.page_key,
                list_name=options["ContactListName"],
                topic=options.get("TopicName"),
                now=now,
                ttl=timedelta(days=settings.page_token_ttl_days),
                mailto=settings.list_unsubscribe_mailto,
                with_preferences=self.placeholder,
            )
            if options is not None
            else None
        )

    def render(self, row: dict[str, Any]) -> OutgoingEmail:
        """One endpoint's email (``row``: ``message_id`` plus the endpoint's columns).

        Raises:
            ValueError: the template does not render for this endpoint (or its address is not one).
        """
        context = build_context(endpoint_response(row, self.names), default_substitutions=self.defaults)
        rendered = render_email(self.template, context)
        html = rendered.html
        if html is not None:
            if self.plan is not None:
                html = self.plan.instrument(html, row["message_id"])
            else:
                html = instrument_html(
                    html,
                    public_url=self.settings.effective_public_url,
                    message_id=row["message_id"],
                    secret=self.settings.tracking_key,
                )
        text = rendered.text
        headers = dict(rendered.headers)
        if self.links is not None:
            links = self.links.for_address(normalize_email(str(row["address"])))
            headers.update(links.headers)
            if self.placeholder:
                html = replace_unsubscribe_placeholder(
                    html.replace(_UNSUBSCRIBE_SENTINEL, UNSUBSCRIBE_PLACEHOLDER) if html else html,
                    links.preferences_url,
                )
                text = replace_unsubscribe_placeholder(
                    text.replace(_UNSUBSCRIBE_SENTINEL, UNSUBSCRIBE_PLACEHOLDER) if text else text,
                    links.preferences_url,
                )
        return OutgoingEmail(
            message_id=row["message_id"],
            from_address=self.from_address,
            to_address=row["address"],
            subject=rendered.subject,
            html=html,
            text=text,
            headers=headers,
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
