"""HMAC-SHA256 signatures of provider webhooks and delivery callbacks (both directions use the same scheme).

The signed string is ``"<timestamp>.<body>"``: the timestamp header (unix seconds) is bound to the body, so a
captured request cannot be replayed later than ``tolerance`` seconds, nor its body reused with a new timestamp.
Headers: ``X-Sojourn-Timestamp: 1767225600`` and ``X-Sojourn-Signature: sha256=<hex digest>``.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Sojourn-Signature"
TIMESTAMP_HEADER = "X-Sojourn-Timestamp"
#: How far a timestamp may be from our clock, in seconds.
DEFAULT_TOLERANCE = 300


class SignatureError(ValueError):
    """A request's signature is missing, malformed, wrong or too old."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value of ``body`` sent at ``timestamp``.

    Args:
        secret: The shared secret.
        timestamp: Unix seconds, as sent in ``X-Sojourn-Timestamp``.
        body: The exact request body bytes.

    Returns:
        ``"sha256=<hex>"``.
    """
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The timestamp and signature headers for a request with ``body``."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Check a request's signature headers.

    Args:
        secret: The shared secret.
        timestamp: The ``X-Sojourn-Timestamp`` header value.
        signature: The ``X-Sojourn-Signature`` header value.
        body: The exact request body bytes.
        now: The current unix time.
        tolerance: Most seconds between the timestamp and ``now``.

    Raises:
        SignatureError: The headers are missing or malformed, the timestamp is outside the tolerance, or the
            signature does not match.
    """
    if not timestamp or not signature:
        raise SignatureError(f"the request needs the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers")
    if not timestamp.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds, got {timestamp[:20]!r}")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is more than {tolerance} seconds from the server's clock (replayed or clock skew)"
        )
    if not hmac.compare_digest(sign(secret, int(timestamp), body), signature.strip()):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body (wrong secret or altered body)")
