"""The unsubscribe and preference pages: server-rendered HTML that works without JavaScript and without login.

* ``GET /u/{token}``: a confirmation page with an Unsubscribe button. A GET never unsubscribes (mail scanners
  follow links).
* ``POST /u/{token}``: one-click unsubscribe (RFC 8058; mail clients post ``List-Unsubscribe=One-Click``, the
  confirmation button posts the same): out of the token's topic, or of the whole list. Idempotent.
* ``GET /preferences/{token}``: the list's topics in the list's own words, a checkbox each, and "unsubscribe
  from all"; ``POST`` saves the choice (form-encoded) and shows a confirmation.

The token (``channels/page_tokens.py``) says which list and contact the page is for; a tampered, expired or
foreign token gets a 4xx page and changes nothing.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Row
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from sojourn.api.handlers.events import ring_doorbells
from sojourn.api.state import AppState
from sojourn.channels.page_tokens import (
    ExpiredPageTokenError,
    PageClaim,
    PageTokenError,
    Purpose,
    make_page_token,
    verify_page_token,
)
from sojourn.domain import lists as rules
from sojourn.domain.subscription_events import ONE_CLICK, PREFERENCE_PAGE
from sojourn.store import lists_repo, subscription_repo, unsubscribes

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024
_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
    "fieldset{border:1px solid #999;padding:1rem}label{font-weight:600}.topic{margin:.75rem 0}"
    ".hint{margin:.1rem 0 0 1.7rem;color:#333}button{font-size:1rem;padding:.5rem 1.25rem;margin-top:1rem}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n<h1>{html.escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return HTMLResponse(document, status_code=status, headers=_HEADERS)


def _error_page(err: PageTokenError | None, status: int, detail: str) -> HTMLResponse:
    if err is not None:
        log.info("refused a page token: %s", err)
    return _page("This link does not work", f"<p>{html.escape(detail)}</p>", status)


def _refusal(err: PageTokenError) -> HTMLResponse:
    if isinstance(err, ExpiredPageTokenError):
        return _error_page(err, 410, "This link has expired. Use the link in a more recent email from us.")
    return _error_page(
        err,
        400,
        "This link is broken or was changed. Use the link exactly as it is in the email we sent you.",
    )


def _list_gone() -> HTMLResponse:
    return _error_page(
        None, 404, "This mailing list no longer exists, so you will get no more email from it."
    )


async def _form(request: Request) -> dict[str, list[str]]:
    body = await request.body()
    return parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"), keep_blank_values=True)


def page_routes(state: AppState) -> list[Route]:
    """The ``/u/{token}`` and ``/preferences/{token}`` routes (unauthenticated; the token is the credential)."""
    settings = state.settings

    def verify(token: str, purpose: Purpose) -> PageClaim:
        return verify_page_token(token, purpose=purpose, now=datetime.now(UTC), secret=settings.page_key)

    def preferences_link(claim: PageClaim) -> str:
        token = make_page_token(
            purpose="preferences",
            list_name=claim.list_name,
            email_address=claim.email_address,
            topic=None,
            now=datetime.now(UTC),
            ttl=timedelta(days=settings.page_token_ttl_days),
            secret=settings.page_key,
        )
        # Relative links keep working behind a proxy that serves sojourn under a path prefix.
        return f"../preferences/{token}"

    def what(claim: PageClaim, topics: Sequence[rules.Topic]) -> str:
        topic = next((t for t in topics if t.name == claim.topic), None)
        if claim.topic is None or topic is None:
            return "all email from this list"
        return f"“{topic.display_name}” email"

    async def unsubscribe_confirm(request: Request) -> HTMLResponse:
        token = request.path_params["token"]
        try:
            claim = verify(token, "unsubscribe")
        except PageTokenError as err:
            return _refusal(err)
        async with state.db.connect() as conn:
            row = await lists_repo.get_list(conn, claim.list_name)
        if row is None:
            return _list_gone()
        topics = rules.topics_from_json(row.topics)
        body = (
            f"<p>Stop sending {html.escape(what(claim, topics))} to "
            f"<strong>{html.escape(claim.email_address)}</strong>?</p>\n"
            f'<form method="post" action="{html.escape(token)}">\n'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
            '<button type="submit">Unsubscribe</button>\n</form>\n'
            f'<p><a href="{html.escape(preferences_link(claim))}">Choose which emails you get instead</a></p>'
        )
        return _page("Unsubscribe", body)

    async def unsubscribe_now(request: Request) -> HTMLResponse:
        try:
            claim = verify(request.path_params["token"], "unsubscribe")
        except PageTokenError as err:
            return _refusal(err)
        row = await unsubscribe_by_claim(state, claim, ONE_CLICK, **_who(request))
        if row is None:
            return _list_gone()
        topics = rules.topics_from_json(row.topics)
        body = (
            f"<p>You will get no more {html.escape(what(claim, topics))} at "
            f"<strong>{html.escape(claim.email_address)}</strong>.</p>\n"
            f'<p><a href="{html.escape(preferences_link(claim))}">Manage your email preferences</a></p>'
        )
        return _page("You are unsubscribed", body)

    async def preferences_form(request: Request) -> HTMLResponse:
        token = request.path_params["token"]
        try:
            claim = verify(token, "preferences")
        except PageTokenError as err:
            return _refusal(err)
        async with state.db.connect() as conn:
            row = await lists_repo.get_list(conn, claim.list_name)
            contact = await lists_repo.get_contact(conn, claim.list_name, claim.email_address)
        if row is None:
            return _list_gone()
        topics = rules.topics_from_json(row.topics)
        unsubscribed = bool(contact and contact.unsubscribe_all)
        preferences = dict(contact.topic_preferences) if contact else {}
        return _page(
            "Email preferences",
            _preferences_body(token, claim, row.description, topics, preferences, unsubscribed),
        )

    async def preferences_save(request: Request) -> HTMLResponse:
        try:
            claim = verify(request.path_params["token"], "preferences")
        except PageTokenError as err:
            return _refusal(err)
        form = await _form(request)
        chosen = set(form.get("topic", []))
        unsubscribe_all = bool(form.get("unsubscribe_all"))
        async with state.db.begin() as conn:
            row = await lists_repo.get_list(conn, claim.list_name, for_update=True)
            if row is None:
                return _list_gone()
            topics = rules.topics_from_json(row.topics)
            preferences = {t.name: rules.OPT_IN if t.name in chosen else rules.OPT_OUT for t in topics}
            before = await subscription_repo.current(conn, claim.list_name, claim.email_address)
            await lists_repo.save_preferences(
                conn,
                claim.list_name,
                claim.email_address,
                preferences=preferences,
                unsubscribe_all=unsubscribe_all,
            )
            if unsubscribe_all:
                await unsubscribes.unsubscribed_from_all(
                    conn, claim.list_name, claim.email_address, **_who(request)
                )
            else:
                await unsubscribes.subscribed_again(conn, claim.email_address)
            journeys = await subscription_repo.record_change(
                conn,
                list_name=claim.list_name,
                email=claim.email_address,
                source=PREFERENCE_PAGE,
                old=before,
                topics=topics,
            )
        await ring_all_doorbells(state, journeys)
        if unsubscribe_all:
            summary = "<p>You are unsubscribed from all email from this list.</p>"
        else:
            kept = [t.display_name for t in topics if t.name in chosen]
            items = "".join(f"<li>{html.escape(name)}</li>" for name in kept)
            summary = (
                f"<p>You will get:</p>\n<ul>{items}</ul>"
                if kept
                else "<p>You will get none of these emails.</p>"
            )
        back = f'<p><a href="{html.escape(request.path_params["token"])}">Change them again</a></p>'
        return _page("Your preferences are saved", f"{summary}\n{back}")

    return [
        Route("/u/{token}", unsubscribe_confirm, methods=["GET"]),
        Route("/u/{token}", unsubscribe_now, methods=["POST"]),
        Route("/preferences/{token}", preferences_form, methods=["GET"]),
        Route("/preferences/{token}", preferences_save, methods=["POST"]),
    ]


def _preferences_body(
    token: str,
    claim: PageClaim,
    description: str | None,
    topics: Sequence[rules.Topic],
    preferences: dict[str, str],
    unsubscribed: bool,
) -> str:
    intro = f"<p>Choose the email you want at <strong>{html.escape(claim.email_address)}</strong>.</p>"
    if description:
        intro += f"\n<p>{html.escape(description)}</p>"
    items = []
    for index, topic in enumerate(topics):
        status = preferences.get(topic.name, topic.default_status)
        checked = " checked" if status == rules.OPT_IN else ""
        hint = ""
        described = ""
        if topic.description:
            hint = f'\n<p class="hint" id="topic-{index}-hint">{html.escape(topic.description)}</p>'
            described = f' aria-describedby="topic-{index}-hint"'
        items.append(
            f'<div class="topic"><input type="checkbox" id="topic-{index}" name="topic" '
            f'value="{html.escape(topic.name)}"{checked}{described}>\n'
            f'<label for="topic-{index}">{html.escape(topic.display_name)}</label>{hint}</div>'
        )
    unsubscribe_checked = " checked" if unsubscribed else ""
    return (
        f"{intro}\n"
        f'<form method="post" action="{html.escape(token)}">\n'
        "<fieldset>\n<legend>Topics</legend>\n" + "\n".join(items) + "\n</fieldset>\n"
        '<div class="topic"><input type="checkbox" id="unsubscribe-all" name="unsubscribe_all" value="on"'
        f"{unsubscribe_checked}>\n"
        '<label for="unsubscribe-all">Unsubscribe from all email from this list</label></div>\n'
        '<button type="submit">Save preferences</button>\n</form>'
    )


async def ring_all_doorbells(state: AppState, journeys: dict[str, set[str]]) -> None:
    """Ring the doorbells of the event-triggered journeys that Subscription events started, per app."""
    for app_id, journey_ids in journeys.items():
        await ring_doorbells(state, app_id, journey_ids)


async def unsubscribe_by_claim(
    state: AppState,
    claim: PageClaim,
    source: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Row[Any] | None:
    """What one-click unsubscribe does (the ``POST /u/{token}`` page and the mailto address alike): out of
    the claim's topic, or of the whole list (then suppressed too), with its Subscription event. Idempotent.

    Returns:
        The contact list's row, or None when the list no longer exists (nothing changed).
    """
    async with state.db.begin() as conn:
        row = await lists_repo.get_list(conn, claim.list_name)
        if row is None:
            return None
        before = await subscription_repo.current(conn, claim.list_name, claim.email_address)
        await lists_repo.unsubscribe(conn, claim.list_name, claim.email_address, claim.topic)
        if claim.topic is None:
            await unsubscribes.unsubscribed_from_all(
                conn, claim.list_name, claim.email_address, ip=ip, user_agent=user_agent
            )
        journeys = await subscription_repo.record_change(
            conn,
            list_name=claim.list_name,
            email=claim.email_address,
            source=source,
            old=before,
            topics=rules.topics_from_json(row.topics),
        )
    await ring_all_doorbells(state, journeys)
    return row


def _who(request: Request) -> dict[str, str | None]:
    """The IP and user agent of a page request, for the consent ledger."""
    return {
        "ip": request.client.host if request.client else None,
        "user_agent": (request.headers.get("user-agent") or "")[:500] or None,
    }
