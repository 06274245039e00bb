"""Double opt-in rules: address keys, per-app public form keys and signed, expiring confirmation tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass


class InvalidConfirmTokenError(ValueError):
    """The token was not issued by this deployment, or was altered."""


class ExpiredConfirmTokenError(ValueError):
    """The token is genuine but its confirmation window has passed."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def address_key(address: str) -> str:
    """A stable, address-free key of an email address (sha256 of the trimmed, lower-cased address, 32 hex)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]


def optin_workflow_id(app_id: str, address: str) -> str:
    """The DoubleOptInWorkflow id of an address in an app: ``optin/{app}/{address key}``."""
    return optin_workflow_id_for_key(app_id, address_key(address))


def optin_workflow_id_for_key(app_id: str, key: str) -> str:
    """The DoubleOptInWorkflow id from an address key (what a confirmation token carries)."""
    return f"optin/{app_id}/{key}"


def optin_endpoint_id(address: str) -> str:
    """The endpoint id an opt-in creates when the app has no EMAIL endpoint with the address yet."""
    return f"optin-{address_key(address)[:20]}"


def form_key(app_id: str, secret: bytes) -> str:
    """The app's public opt-in form key: it identifies the app's forms, it is not a secret (it is in the page)."""
    return _b64(hmac.new(secret, f"optin-form:{app_id}".encode(), hashlib.sha256).digest()[:16])


def form_key_matches(app_id: str, candidate: str, secret: bytes) -> bool:
    """Whether ``candidate`` is the app's form key (constant-time)."""
    return hmac.compare_digest(form_key(app_id, secret), candidate or "")


@dataclass(frozen=True)
class ConfirmToken:
    """What a confirmation link carries."""

    app_id: str
    endpoint_id: str
    address_key: str
    expires_at: int  # unix seconds


def make_confirm_token(token: ConfirmToken, secret: bytes) -> str:
    """The URL-safe, HMAC-signed form of ``token``."""
    body = _b64(json.dumps([token.app_id, token.endpoint_id, token.address_key, token.expires_at]).encode())
    mac = _b64(hmac.new(secret, f"confirm:{body}".encode(), hashlib.sha256).digest()[:18])
    return f"{body}.{mac}"


def parse_confirm_token(text: str, secret: bytes, *, now: float) -> ConfirmToken:
    """Check and decode a confirmation token.

    Args:
        text: The token from the link.
        secret: The signing key.
        now: The current time (unix seconds).

    Raises:
        InvalidConfirmTokenError: not ours or altered.
        ExpiredConfirmTokenError: ours, but past its expiry.
    """
    body, _, mac = text.partition(".")
    expected = _b64(hmac.new(secret, f"confirm:{body}".encode(), hashlib.sha256).digest()[:18])
    if not body or not hmac.compare_digest(mac, expected):
        raise InvalidConfirmTokenError("this confirmation link is broken or was altered")
    try:
        app_id, endpoint_id, key, expires_at = json.loads(_unb64(body))
        token = ConfirmToken(str(app_id), str(endpoint_id), str(key), int(expires_at))
    except (ValueError, TypeError) as err:
        raise InvalidConfirmTokenError("this confirmation link is broken or was altered") from err
    if now > token.expires_at:
        raise ExpiredConfirmTokenError("this confirmation link has expired; please sign up again")
    return token
