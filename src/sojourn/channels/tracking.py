"""Open and click tracking: signed tokens, the open pixel and link rewriting of outgoing HTML."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html as html_lib
import json
import re
from collections.abc import Mapping

# A transparent 1x1 GIF.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_TAG_BYTES = 16  # 128-bit truncated HMAC-SHA256
_ANCHOR = re.compile(r"<a\b[^>]*>", re.I)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)


class InvalidTokenError(ValueError):
    """A tracking token that is malformed or was not signed with our secret."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(payload: Mapping[str, str], secret: bytes) -> str:
    """A compact URL-safe token carrying ``payload``, signed with HMAC-SHA256."""
    body = json.dumps(dict(payload), separators=(",", ":"), sort_keys=True).encode()
    tag = hmac.new(secret, body, hashlib.sha256).digest()[:_TAG_BYTES]
    return f"{_b64(body)}.{_b64(tag)}"


def verify_token(token: str, secret: bytes) -> dict[str, str]:
    """The payload of a token we signed.

    Raises:
        InvalidTokenError: malformed, or the signature does not match.
    """
    try:
        body_part, tag_part = token.split(".", 1)
        body, tag = _unb64(body_part), _unb64(tag_part)
    except (ValueError, TypeError) as err:
        raise InvalidTokenError("malformed tracking token") from err
    expected = hmac.new(secret, body, hashlib.sha256).digest()[:_TAG_BYTES]
    if not hmac.compare_digest(tag, expected):
        raise InvalidTokenError("tracking token signature does not match")
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as err:
        raise InvalidTokenError("malformed tracking token") from err
    if not isinstance(payload, dict) or not all(isinstance(v, str) for v in payload.values()):
        raise InvalidTokenError("malformed tracking token")
    return payload


def open_pixel_url(public_url: str, message_id: str, secret: bytes) -> str:
    """URL of the open-tracking pixel of one message."""
    return f"{public_url.rstrip('/')}/t/o/{sign_token({'m': message_id}, secret)}.gif"


def click_url(public_url: str, message_id: str, target_url: str, secret: bytes) -> str:
    """Redirect URL that records a click on ``target_url`` (bound into the token: no open redirect)."""
    return f"{public_url.rstrip('/')}/t/c/{sign_token({'m': message_id, 'u': target_url}, secret)}"


def parse_open_token(token: str, secret: bytes) -> str:
    """The message id of an open-pixel token."""
    payload = verify_token(token, secret)
    if "m" not in payload:
        raise InvalidTokenError("not an open token")
    return payload["m"]


def parse_click_token(token: str, secret: bytes) -> tuple[str, str]:
    """(message id, target URL) of a click token."""
    payload = verify_token(token, secret)
    if "m" not in payload or "u" not in payload:
        raise InvalidTokenError("not a click token")
    return payload["m"], payload["u"]


def _trackable(url: str) -> bool:
    lowered = url.strip().lower()
    return lowered.startswith(("http://", "https://")) and "{{" not in url


def instrument_html(html: str, *, public_url: str, message_id: str, secret: bytes) -> str:
    """Rewrite http(s) links to click-tracking redirects and add the open pixel before ``</body>``.

    Links with a ``data-sojourn-notrack`` attribute, mailto:/tel:/anchors and unrendered ``{{...}}`` are left
    alone; everything else in the HTML is unchanged.
    """

    def rewrite_anchor(tag: re.Match[str]) -> str:
        text = tag.group(0)
        if "data-sojourn-notrack" in text.lower():
            return text

        def rewrite_href(m: re.Match[str]) -> str:
            raw = next(g for g in (m.group(2), m.group(3), m.group(4)) if g is not None)
            target = html_lib.unescape(raw)
            if not _trackable(target):
                return m.group(0)
            return f'{m.group(1)}"{html_lib.escape(click_url(public_url, message_id, target, secret))}"'

        return _HREF.sub(rewrite_href, text, count=1)

    out = _ANCHOR.sub(rewrite_anchor, html)
    pixel = f'<img src="{open_pixel_url(public_url, message_id, secret)}" width="1" height="1" alt="" style="display:none">'
    ends = [m.start() for m in _BODY_END.finditer(out)]
    if not ends:
        return out + pixel
    return out[: ends[-1]] + pixel + out[ends[-1] :]
