"""Open and click tracking of outgoing email: signed tokens, the open pixel and link rewriting.

A token is ``base64url(compact JSON payload) "." base64url(HMAC-SHA256 tag truncated to 128 bits)``, so the
tracking routes need no database lookup to trust what a link says. A click token binds the message id and
the target URL together, which keeps the redirect route from being an open redirect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html as html_lib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from html.entities import html5 as _HTML5_ENTITIES
from json.encoder import encode_basestring as _json_string
from typing import Final, cast
from urllib.parse import urlsplit

PIXEL_GIF: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A transparent 1×1 GIF89a (42 bytes)."""

_TAG_BYTES: Final = 16  # HMAC-SHA256 truncated to 128 bits
_MAX_TOKEN_CHARS: Final = 8192  # verify_token refuses longer input without decoding it
_MAX_TRACKED_URL_BYTES: Final = 4000  # longer links stay untracked, so every token we issue verifies
_TOKEN: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{22})")
NOTRACK_ATTRIBUTE: Final = "data-sojourn-notrack"
"""An ``<a>`` carrying this attribute keeps its link untouched."""


class InvalidTokenError(ValueError):
    """A tracking token that is malformed or was not signed with our secret."""


# ---- tokens ----


_URL_SAFE: Final = bytes.maketrans(b"+/", b"-_")


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=16)
def _keyed_hmac(secret: bytes) -> hmac.HMAC:
    # The key schedule is done once per process and secret; each signature copies the prepared state. The
    # OpenSSL state inside hmac.HMAC copies in C, about twice as fast as hmac.HMAC.copy (two links a message).
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    return cast(hmac.HMAC, getattr(mac, "_hmac", None) or mac)


def _signature(body: bytes, secret: bytes) -> bytes:
    mac = _keyed_hmac(secret).copy()
    mac.update(body)
    return mac.digest()[:_TAG_BYTES]


def _payload_json(payload: Mapping[str, str]) -> str:
    """``json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)`` for string payloads,
    without the encoder's per-call set-up (this runs for every link of every message)."""
    return "{" + ",".join(f"{_json_string(k)}:{_json_string(v)}" for k, v in sorted(payload.items())) + "}"


def _signed(body: bytes, secret: bytes) -> str:
    return f"{_b64encode(body)}.{_b64encode(_signature(body, secret))}"


def sign_token(payload: Mapping[str, str], secret: bytes) -> str:
    """A compact, URL-safe token carrying ``payload``, signed with HMAC-SHA256.

    Args:
        payload: Short string fields (keys and values must be strings).
        secret: The HMAC key; must not be empty.

    Returns:
        ``base64url(JSON).base64url(tag)``, made only of ``A-Z a-z 0-9 - _ .``.

    Raises:
        ValueError: An empty secret, or a key or value that is not a string.
    """
    if not secret:
        raise ValueError("the tracking secret must not be empty")
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in payload.items()):
        raise ValueError("token payload keys and values must be strings")
    return _signed(_payload_json(payload).encode(), secret)


class TokenTemplate:
    """Signs many tokens whose payloads differ in one field only, each exactly as :func:`sign_token` would.

    The JSON body is the fixed fields, sorted, around the one that varies: its text before the varying value
    and the text after it are built once, and the HMAC state has already taken the text before. Per token
    only the varying value is JSON-encoded, hashed and base64-encoded (a list mail blast signs one one-click
    link per recipient this way).

    Args:
        fixed: The fields every token carries (strings).
        variable: The name of the field that varies per token (not in ``fixed``).
        secret: The HMAC key; must not be empty.

    Raises:
        ValueError: An empty secret, a field that is not a string, or ``variable`` among ``fixed``.
    """

    __slots__ = ("_mac", "_prefix", "_suffix")

    def __init__(self, fixed: Mapping[str, str], variable: str, secret: bytes) -> None:
        if not secret:
            raise ValueError("the tracking secret must not be empty")
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in fixed.items()):
            raise ValueError("token payload keys and values must be strings")
        if not isinstance(variable, str) or variable in fixed:
            raise ValueError(f"the varying field {variable!r} must be a string key not among the fixed ones")
        fields = [f"{_json_string(k)}:{_json_string(v)}" for k, v in sorted(fixed.items())]
        before = [f for (k, _), f in zip(sorted(fixed.items()), fields, strict=True) if k < variable]
        after = fields[len(before) :]
        self._prefix = ("{" + "".join(f"{f}," for f in before) + f"{_json_string(variable)}:").encode()
        self._suffix = ("".join(f",{f}" for f in after) + "}").encode()
        self._mac = _keyed_hmac(secret).copy()
        self._mac.update(self._prefix)

    def sign(self, value: str) -> str:
        """The token whose payload is the fixed fields plus the varying field set to ``value``."""
        rest = _json_string(value).encode() + self._suffix
        mac = self._mac.copy()
        mac.update(rest)
        return f"{_b64encode(self._prefix + rest)}.{_b64encode(mac.digest()[:_TAG_BYTES])}"


def verify_token(token: str, secret: bytes) -> dict[str, str]:
    """The payload of a token signed by :func:`sign_token` with ``secret``.

    Args:
        token: The token as it came in a URL.
        secret: The HMAC key it must have been signed with.

    Returns:
        The payload.

    Raises:
        InvalidTokenError: The token is malformed, was altered, or was signed with another secret.
    """
    match = _TOKEN.fullmatch(token) if isinstance(token, str) and len(token) <= _MAX_TOKEN_CHARS else None
    if match is None:
        raise InvalidTokenError("malformed tracking token")
    body_text, tag_text = match.groups()
    try:
        body, tag = _b64decode(body_text), _b64decode(tag_text)
    except (binascii.Error, ValueError):
        raise InvalidTokenError("malformed tracking token") from None
    # Only the canonical spelling is accepted: unused trailing bits could otherwise be flipped unnoticed.
    if _b64encode(body) != body_text or _b64encode(tag) != tag_text:
        raise InvalidTokenError("malformed tracking token")
    if not hmac.compare_digest(tag, _signature(body, secret)):
        raise InvalidTokenError("tracking token signature does not match")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidTokenError("malformed tracking token") from None
    if not isinstance(payload, dict) or not all(isinstance(v, str) for v in payload.values()):
        raise InvalidTokenError("malformed tracking token")
    return payload


def _base(public_url: str) -> str:
    return public_url.rstrip("/")


def open_pixel_url(public_url: str, message_id: str, secret: bytes) -> str:
    """The URL of the open-tracking pixel of one message.

    Args:
        public_url: Where the sojourn API is reachable from recipients' mail clients.
        message_id: The message whose opens the pixel records.
        secret: The tracking HMAC key.

    Returns:
        ``{public_url}/t/o/{token}.gif``.
    """
    return f"{_base(public_url)}/t/o/{sign_token({'k': 'o', 'm': message_id}, secret)}.gif"


def click_url(public_url: str, message_id: str, target_url: str, secret: bytes) -> str:
    """The redirect URL that records a click on ``target_url`` in one message.

    Args:
        public_url: Where the sojourn API is reachable from recipients' mail clients.
        message_id: The message the link is in.
        target_url: Where the recipient goes; signed into the token, so the redirect cannot be repointed.
        secret: The tracking HMAC key.

    Returns:
        ``{public_url}/t/c/{token}``.
    """
    return f"{_base(public_url)}/t/c/{sign_token({'k': 'c', 'm': message_id, 'u': target_url}, secret)}"


def parse_open_token(token: str, secret: bytes) -> str:
    """The message id in an open-pixel token (the part of the path before ``.gif``).

    Raises:
        InvalidTokenError: Not a valid open token.
    """
    payload = verify_token(token, secret)
    if payload.get("k") != "o" or not payload.get("m"):
        raise InvalidTokenError("not an open-tracking token")
    return payload["m"]


def parse_click_token(token: str, secret: bytes) -> tuple[str, str]:
    """The message id and target URL in a click token.

    Raises:
        InvalidTokenError: Not a valid click token, or its target is not an http(s) URL.
    """
    payload = verify_token(token, secret)
    if payload.get("k") != "c" or not payload.get("m") or not _is_web_url(payload.get("u", "")):
        raise InvalidTokenError("not a click-tracking token")
    return payload["m"], payload["u"]


# ---- HTML instrumentation ----

# One left-to-right pass over the markup. Comments (except Outlook's <!--[if mso]> blocks, whose content
# Outlook renders) and <script>/<style> bodies are skipped whole; a start tag is matched with its
# attributes, quoted values included, so a '>' inside a value does not end it. Atomic groups keep the
# match linear on malformed input.
_ATTRIBUTES: Final = r"""(?>[\s/]+|[^\s/>][^\s/>=]*+(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s>]*+))?)*+"""
_MARKUP: Final = re.compile(
    rf"""
    <(?:
      !--(?!\[if)(?:>|->|.*?(?:--!?>|\Z))
    | (?P<raw>script|style)(?=[\s/>]).*?(?:</(?P=raw)\s*>|\Z)
    | (?P<tag>[A-Za-z][^\s/>]*+)(?P<attributes>{_ATTRIBUTES})>
    | (?P<body_end>/body\s*>)
    )
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_ATTRIBUTE: Final = re.compile(
    r"""(?P<name>[^\s/>][^\s/>=]*+)(?:\s*+=\s*+(?P<value>"[^"]*+"|'[^']*+'|[^\s>]*+))?"""
)
_CHARACTER_REFERENCE: Final = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z0-9]+;?)")
_URL_NOISE: Final = re.compile(r"[\t\n\r]")  # browsers drop these from URLs


def _unescape_attribute(value: str) -> str:
    """Decode character references as a browser does inside an attribute value.

    Unlike ``html.unescape``, a legacy reference without ``;`` followed by ``=`` stays literal, so the
    query ``?a=1&copy=2`` keeps its ``&copy`` (the HTML standard's rule for attributes).
    """
    if "&" not in value:
        return value

    def decode(match: re.Match[str]) -> str:
        reference = match.group()
        if reference.startswith("&#"):
            return html_lib.unescape(reference)
        name = reference[1:]
        if name.endswith(";"):
            return _HTML5_ENTITIES.get(name, reference)
        # Without ';' only a whole legacy name (&amp, &copy) decodes, and not right before '='.
        if name in _HTML5_ENTITIES and value[match.end() : match.end() + 1] != "=":
            return _HTML5_ENTITIES[name]
        return reference

    return _CHARACTER_REFERENCE.sub(decode, value)


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _click_target(raw_value: str, own_prefix: str) -> str | None:
    """The URL a link goes to, if it is one to track: http(s), fully rendered, not ours, not huge."""
    url = _URL_NOISE.sub("", _unescape_attribute(raw_value)).strip()
    if "{{" in url or "}}" in url or url.startswith(own_prefix) or not _is_web_url(url):
        return None
    return url if len(url.encode()) <= _MAX_TRACKED_URL_BYTES else None


def _href_edit(
    html: str, match: re.Match[str], rewrite: Callable[[str], str | None]
) -> tuple[int, int, str] | None:
    """(start, end, new text) for the href value of one ``<a>`` tag, or None to leave the tag alone."""
    start, end = match.span("attributes")
    href: re.Match[str] | None = None
    for attribute in _ATTRIBUTE.finditer(html, start, end):
        name = attribute.group("name").lower()
        if name == NOTRACK_ATTRIBUTE:
            return None
        if name == "href" and href is None:  # as browsers, the first of duplicate attributes wins
            href = attribute
    if href is None or href.group("value") is None:
        return None
    quoted = href.group("value")
    quote = quoted[0] if quoted[:1] in ("'", '"') else ""
    new_url = rewrite(quoted[1:-1] if quote else quoted)
    if new_url is None:
        return None
    quote = quote or '"'
    return href.start("value"), href.end("value"), f"{quote}{html_lib.escape(new_url)}{quote}"


def instrument_html(html: str, *, public_url: str, message_id: str, secret: bytes) -> str:
    """Rewrite a message's links to click-tracking redirects and add its open pixel.

    Every ``href`` of an ``<a>`` whose target is an http(s) URL becomes the message's click URL for that
    target. Left alone: ``mailto:``, ``tel:``, ``#anchors`` and other schemes, links with a
    ``data-sojourn-notrack`` attribute, links still holding ``{{…}}``, links already pointing at
    ``public_url``'s tracking routes, and links in comments, ``<script>`` and ``<style>``. A 1×1 pixel goes just
    before the last ``</body>``, or at the end without one. Everything else stays byte-for-byte the same.

    Args:
        html: The rendered HTML part.
        public_url: Where the sojourn API is reachable from recipients' mail clients.
        message_id: The message being sent.
        secret: The tracking HMAC key.

    Returns:
        The instrumented HTML.
    """
    own_prefix = f"{_base(public_url)}/t/"

    def rewrite(raw_value: str) -> str | None:
        target = _click_target(raw_value, own_prefix)
        return None if target is None else click_url(public_url, message_id, target, secret)

    edits: list[tuple[int, int, str]] = []
    body_end = len(html)
    for match in _MARKUP.finditer(html):
        if match.group("body_end"):
            body_end = match.start()
        elif (match.group("tag") or "").lower() == "a" and (edit := _href_edit(html, match, rewrite)):
            edits.append(edit)
    pixel = (
        f'<img src="{html_lib.escape(open_pixel_url(public_url, message_id, secret))}" '
        'width="1" height="1" alt="" style="display:none">'
    )
    edits.append((body_end, body_end, pixel))
    return _apply(html, edits)


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each (start, end, replacement) applied; edits are in order and do not overlap."""
    out: list[str] = []
    position = 0
    for start, end, replacement in sorted(edits, key=lambda edit: edit[0]):
        out.append(text[position:start])
        out.append(replacement)
        position = end
    out.append(text[position:])
    return "".join(out)


# ---- tracking prepared once per template ----

# A mustache of the template language (comments included); conservative: anything from ``{{`` to ``}}``.
_MUSTACHE: Final = re.compile(r"\{\{(?:!--.*?--\}\}|.*?\}\})", re.DOTALL)
# Mustaches whose output is not HTML-escaped (``{{{x}}}``, ``{{&x}}``) or that bring in other markup (partials).
_UNESCAPED_MUSTACHE: Final = re.compile(r"\{\{~?\s*(?:\{|&|>|#\*)")


@dataclass(frozen=True, slots=True)
class TrackingPlan:
    """An HTML template source whose tracked links were found once, for every message rendered from it.

    ``source`` is the template with each tracked ``href`` value (quotes included) replaced by a marker and a
    marker where the open pixel goes; rendering it and calling :meth:`instrument` gives exactly what
    :func:`instrument_html` gives for the rendered template, with per-message work reduced to signing and
    string replacement.

    Attributes:
        source: The template source to render (HTML escaping on).
        links: (marker, JSON-encoded target URL) per tracked link.
        pixel_marker: The marker where the pixel goes, or None to append the pixel at the end.
        base: The escaped public URL.
        secret: The tracking HMAC key.
    """

    source: str
    links: tuple[tuple[str, str], ...]
    pixel_marker: str | None
    base: str
    secret: bytes

    def instrument(self, rendered: str, message_id: str) -> str:
        """The rendered HTML with the message's click URLs and open pixel in place of the markers."""
        mid = _json_string(message_id)
        html = rendered
        for marker, target in self.links:
            token = _signed(f'{{"k":"c","m":{mid},"u":{target}}}'.encode(), self.secret)
            html = html.replace(marker, f"{self.base}/t/c/{token}")
        token = _signed(f'{{"k":"o","m":{mid}}}'.encode(), self.secret)
        pixel = f'<img src="{self.base}/t/o/{token}.gif" width="1" height="1" alt="" style="display:none">'
        if self.pixel_marker is not None and self.pixel_marker in html:
            return html.replace(self.pixel_marker, pixel)
        return html + pixel


def _markup_is_static(source: str, markup: list[re.Match[str]]) -> bool:
    """Whether no value a template renders can change which tags, links and ``</body>`` the HTML has.

    HTML-escaped output cannot make or break markup when it stands in text between tags: it never holds
    ``< > " ' =``. So every mustache (block tags included) must stand outside any tag, comment, script or
    style, not right after an unclosed ``<``, and none may follow the last ``</body>`` (which is then always
    rendered). Unescaped output and partials could bring markup of their own: no plan for those.
    """
    mustaches = list(_MUSTACHE.finditer(source))
    if "\x00" in source or any(_UNESCAPED_MUSTACHE.match(m.group()) for m in mustaches):
        return False
    spans = [m.span() for m in markup]
    last_body_end = max((m.start() for m in markup if m.group("body_end")), default=None)
    for mustache in mustaches:
        start, end = mustache.span()
        if any(s < end and start < e for s, e in spans):
            return False
        if source.rfind("<", 0, start) > source.rfind(">", 0, start):
            return False
        if last_body_end is not None and start > last_body_end:
            return False
    return "{{" not in _MUSTACHE.sub("", source)  # an unclosed mustache: let the renderer say what is wrong


@lru_cache(maxsize=256)
def plan_tracking(source: str, public_url: str, secret: bytes) -> TrackingPlan | None:
    """Find an HTML template's tracked links and pixel place once (cached per template, URL and key).

    Args:
        source: The HtmlPart template source.
        public_url: Where the sojourn API is reachable from recipients' mail clients.
        secret: The tracking HMAC key.

    Returns:
        The plan, or None when rendered values could change the markup (then each rendered message goes
        through :func:`instrument_html`).
    """
    if not secret:
        raise ValueError("the tracking secret must not be empty")
    markup = list(_MARKUP.finditer(source))
    if not _markup_is_static(source, markup):
        return None
    own_prefix = f"{_base(public_url)}/t/"
    nonce = secrets.token_hex(8)  # markers no endpoint value can spell
    links: list[tuple[str, str]] = []

    def rewrite(raw_value: str) -> str | None:
        target = _click_target(raw_value, own_prefix)
        if target is None:
            return None
        marker = f"\x00{nonce}-{len(links)}\x00"
        links.append((marker, _json_string(target)))
        return marker

    edits: list[tuple[int, int, str]] = []
    body_end: int | None = None
    for match in markup:
        if match.group("body_end"):
            body_end = match.start()
        elif (match.group("tag") or "").lower() == "a" and (edit := _href_edit(source, match, rewrite)):
            edits.append(
                edit
            )  # the marker, quoted: each message's URL replaces the marker between the quotes
    pixel_marker = None
    if body_end is not None:
        pixel_marker = f"\x00{nonce}-pixel\x00"
        edits.append((body_end, body_end, pixel_marker))
    return TrackingPlan(
        source=_apply(source, edits),
        links=tuple(links),
        pixel_marker=pixel_marker,
        base=html_lib.escape(_base(public_url)),
        secret=secret,
    )
