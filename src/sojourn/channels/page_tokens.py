"""Signed, expiring tokens of the unsubscribe and preference pages.

A token binds what the page may change, so the page needs no login: the purpose (one-click ``unsubscribe`` or
the ``preferences`` page), the contact list, the contact's address, for one-click the topic, and an expiry.
The format is the tracking links' (``channels/tracking.py``): base64url JSON and a truncated HMAC-SHA256 tag,
signed with its own key (``Settings.page_key``), so a tracking token can never pass as a page token.
Pure functions: the clock is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sojourn.channels.tracking import InvalidTokenError, TokenTemplate, verify_token

Purpose = Literal["unsubscribe", "preferences"]
_PURPOSE_CODES: Final[dict[str, str]] = {"unsubscribe": "u", "preferences": "p"}


class PageTokenError(ValueError):
    """A page token that is malformed, altered, signed with another key, expired or meant for something else."""


class ExpiredPageTokenError(PageTokenError):
    """A genuine page token whose time is up (the page answers 410 Gone rather than 400)."""


@dataclass(frozen=True, slots=True)
class PageClaim:
    """What a valid page token allows.

    Attributes:
        purpose: ``unsubscribe`` (one-click) or ``preferences``.
        list_name: The contact list.
        email_address: The contact's (normalized) address.
        topic: For one-click: the topic to leave, or None for the whole list.
        expires_at: Unix seconds after which the token is refused.
    """

    purpose: Purpose
    list_name: str
    email_address: str
    topic: str | None
    expires_at: int


def page_token_signer(
    *,
    purpose: Purpose,
    list_name: str,
    topic: str | None,
    now: datetime,
    ttl: timedelta,
    secret: bytes,
) -> TokenTemplate:
    """Signs the page tokens of one (purpose, list, topic, expiry) for any number of contacts: what a list mail
    send prepares once, then ``signer.sign(email_address)`` per recipient gives :func:`make_page_token`'s token.

    Args:
        purpose: ``unsubscribe`` or ``preferences``.
        list_name: The contact list.
        topic: The topic (one-click unsubscribe from one topic), or None.
        now: The current time (timezone-aware).
        ttl: How long the tokens are valid.
        secret: The HMAC key (``Settings.page_key``).

    Returns:
        The signer; its ``sign`` takes the contact's normalized address.
    """
    fixed = {"k": _PURPOSE_CODES[purpose], "l": list_name, "x": str(int((now + ttl).timestamp()))}
    if topic is not None:
        fixed["t"] = topic
    return TokenTemplate(fixed, "e", secret)


def make_page_token(
    *,
    purpose: Purpose,
    list_name: str,
    email_address: str,
    topic: str | None,
    now: datetime,
    ttl: timedelta,
    secret: bytes,
) -> str:
    """A signed page token.

    Args:
        purpose: ``unsubscribe`` or ``preferences``.
        list_name: The contact list.
        email_address: The contact's normalized address.
        topic: The topic (one-click unsubscribe from one topic), or None.
        now: The current time (timezone-aware).
        ttl: How long the token is valid.
        secret: The HMAC key (``Settings.page_key``).

    Returns:
        A URL-safe token.
    """
    signer = page_token_signer(
        purpose=purpose, list_name=list_name, topic=topic, now=now, ttl=ttl, secret=secret
    )
    return signer.sign(email_address)


def verify_page_token(
    token: str,
    *,
    purpose: Purpose,
    now: datetime,
    secret: bytes,
    list_name: str | None = None,
    email_address: str | None = None,
) -> PageClaim:
    """The claim of a page token, if it is genuine, current and meant for ``purpose`` (and the given list/contact).

    Args:
        token: The token from the URL.
        purpose: What the caller is about to do.
        now: The current time.
        secret: The HMAC key.
        list_name: If given, the list the token must be for.
        email_address: If given, the contact the token must be for.

    Returns:
        The claim.

    Raises:
        ExpiredPageTokenError: genuine but expired.
        PageTokenError: malformed, altered, foreign key, another purpose, another list or contact.
    """
    try:
        payload = verify_token(token, secret)
    except InvalidTokenError as err:
        raise PageTokenError(str(err).replace("tracking", "page")) from None
    if payload.get("k") != _PURPOSE_CODES[purpose]:
        raise PageTokenError(f"this is not a link to the {purpose} page")
    expiry = payload.get("x", "")
    if not expiry.isdigit() or not payload.get("l") or not payload.get("e"):
        raise PageTokenError("malformed page token")
    if now.timestamp() > int(expiry):
        raise ExpiredPageTokenError("this link has expired")
    if list_name is not None and payload["l"] != list_name:
        raise PageTokenError("this link is for another contact list")
    if email_address is not None and payload["e"] != email_address:
        raise PageTokenError("this link is for another contact")
    return PageClaim(purpose, payload["l"], payload["e"], payload.get("t"), int(expiry))
