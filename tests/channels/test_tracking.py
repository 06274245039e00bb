"""Open/click tracking: signed tokens, the pixel, and link rewriting that leaves other markup alone."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import struct
import time

import pytest

from sojourn.channels import tracking
from sojourn.channels.tracking import (
    PIXEL_GIF,
    InvalidTokenError,
    click_url,
    instrument_html,
    open_pixel_url,
    parse_click_token,
    parse_open_token,
    sign_token,
    verify_token,
)

SECRET = hashlib.sha256(b"test tracking secret").digest()
PUBLIC = "https://track.example.com"
MESSAGE = "msg-0001"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(body: bytes, secret: bytes = SECRET) -> str:
    """A token with a valid signature over arbitrary bytes (to test what comes after the HMAC check)."""
    return f"{b64(body)}.{b64(hmac.new(secret, body, hashlib.sha256).digest()[:16])}"


def click(target: str) -> str:
    return html.escape(click_url(PUBLIC, MESSAGE, target, SECRET))


def pixel() -> str:
    src = html.escape(open_pixel_url(PUBLIC, MESSAGE, SECRET))
    return f'<img src="{src}" width="1" height="1" alt="" style="display:none">'


def instrument(markup: str) -> str:
    return instrument_html(markup, public_url=PUBLIC, message_id=MESSAGE, secret=SECRET)


# ---- the pixel ----


def test_pixel_is_a_transparent_one_by_one_gif() -> None:
    assert PIXEL_GIF[:6] == b"GIF89a"
    assert struct.unpack("<HH", PIXEL_GIF[6:10]) == (1, 1)
    extension = PIXEL_GIF.index(b"\x21\xf9\x04")  # graphic control extension
    assert PIXEL_GIF[extension + 3] & 0x01  # transparency flag
    assert PIXEL_GIF[10] & 0x80  # a global colour table, which the transparent index refers to
    assert PIXEL_GIF.index(b",") > extension  # the image descriptor follows the extension
    assert PIXEL_GIF.endswith(b"\x00;")


# ---- tokens ----


def test_sign_and_verify_round_trip() -> None:
    payload = {"m": "msg-1", "u": "https://example.com/ünïcode?a=1&b=2"}
    token = sign_token(payload, SECRET)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert verify_token(token, SECRET) == payload


def test_tag_is_at_least_128_bits() -> None:
    tag = sign_token({"m": "x"}, SECRET).split(".")[1]
    assert len(base64.urlsafe_b64decode(tag + "==")) >= 16


def test_tokens_are_deterministic_and_bound_to_their_payload() -> None:
    assert sign_token({"m": "a", "u": "b"}, SECRET) == sign_token({"u": "b", "m": "a"}, SECRET)
    assert sign_token({"m": "a"}, SECRET) != sign_token({"m": "b"}, SECRET)


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def _tampered_tokens() -> list[tuple[str, str]]:
    token = sign_token({"k": "c", "m": MESSAGE, "u": "https://example.com/a"}, SECRET)
    body, tag = token.split(".")
    other = sign_token({"k": "c", "m": MESSAGE, "u": "https://evil.example/"}, SECRET)
    forged_body = b64(json.dumps({"k": "c", "m": MESSAGE, "u": "https://evil.example/"}).encode())
    last = tag[-1]
    non_canonical = tag[:-1] + ("B" if last == "A" else chr(ord(last) ^ 1))
    return [
        ("flipped body", f"{_flip(body, 5)}.{tag}"),
        ("flipped tag", f"{body}.{_flip(tag, 3)}"),
        ("body of another token", f"{other.split('.')[0]}.{tag}"),
        ("forged body", f"{forged_body}.{tag}"),
        ("truncated tag", f"{body}.{tag[:-2]}"),
        ("missing tag", body),
        ("two dots", f"{body}.{tag}.{tag}"),
        ("padding", f"{body}.{tag}=="),
        ("space", f"{body}. {tag}"),
        ("non-url-safe alphabet", f"{body.replace('-', '+')}.{tag}" if "-" in body else f"+{body}.{tag}"),
        ("non-canonical tag bits", f"{body}.{non_canonical}"),
        ("empty", ""),
        ("just a dot", "."),
        ("huge", "A" * 20_000 + "." + tag),
    ]


@pytest.mark.parametrize(
    "token", [token for _, token in _tampered_tokens()], ids=[w for w, _ in _tampered_tokens()]
)
def test_tampered_or_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        verify_token(token, SECRET)


def test_token_signed_with_another_secret_is_rejected() -> None:
    token = sign_token({"m": MESSAGE}, b"another secret")
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_token(token, SECRET)


def test_non_string_token_is_rejected() -> None:
    with pytest.raises(InvalidTokenError):
        verify_token(None, SECRET)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'{"m": 1}', b'"text"'])
def test_validly_signed_garbage_is_rejected(body: bytes) -> None:
    with pytest.raises(InvalidTokenError, match="malformed"):
        verify_token(signed(body), SECRET)


def test_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tracking.hmac, "compare_digest", spy)
    verify_token(sign_token({"m": "x"}, SECRET), SECRET)
    assert len(calls) == 1


def test_invalid_token_error_is_a_value_error() -> None:
    assert issubclass(InvalidTokenError, ValueError)


def test_sign_token_refuses_an_empty_secret_and_non_strings() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign_token({"m": "x"}, b"")
    with pytest.raises(ValueError, match="strings"):
        sign_token({"m": 1}, SECRET)  # type: ignore[dict-item]


# ---- pixel and click URLs ----


def test_open_pixel_url() -> None:
    url = open_pixel_url(PUBLIC + "/", MESSAGE, SECRET)
    match = re.fullmatch(re.escape(PUBLIC) + r"/t/o/([A-Za-z0-9_.-]+)\.gif", url)
    assert match is not None, url
    assert parse_open_token(match.group(1), SECRET) == MESSAGE


def test_click_url_binds_message_and_target() -> None:
    target = "https://example.com/offer?a=1&b=2#top"
    url = click_url(PUBLIC, MESSAGE, target, SECRET)
    match = re.fullmatch(re.escape(PUBLIC) + r"/t/c/([A-Za-z0-9_.-]+)", url)
    assert match is not None, url
    assert parse_click_token(match.group(1), SECRET) == (MESSAGE, target)
    assert click_url(PUBLIC, MESSAGE, "https://example.com/other", SECRET) != url
    assert click_url(PUBLIC, "msg-0002", target, SECRET) != url


def test_open_and_click_tokens_are_not_interchangeable() -> None:
    open_token = open_pixel_url(PUBLIC, MESSAGE, SECRET).rsplit("/", 1)[1].removesuffix(".gif")
    click_token = click_url(PUBLIC, MESSAGE, "https://example.com/", SECRET).rsplit("/", 1)[1]
    with pytest.raises(InvalidTokenError):
        parse_click_token(open_token, SECRET)
    with pytest.raises(InvalidTokenError):
        parse_open_token(click_token, SECRET)


def test_click_token_must_target_the_web() -> None:
    token = sign_token({"k": "c", "m": MESSAGE, "u": "javascript:alert(1)"}, SECRET)
    with pytest.raises(InvalidTokenError):
        parse_click_token(token, SECRET)


# ---- instrument_html ----


def test_rewrites_links_and_adds_the_pixel_leaving_everything_else_unchanged() -> None:
    source = (
        "<!DOCTYPE html>\n<html><head><title>Hi</title></head>\n"
        '<body class="x">\n<p>Hello <b>Ann</b></p>\n'
        '<a class="btn" href="https://example.com/a" target=_blank>A</a>\n'
        "<a href='http://example.com/b' style='color: red'>B</a>\n"
        "<a href=https://example.com/c>C</a>\n"
        "</body>\n</html>\n"
    )
    expected = (
        "<!DOCTYPE html>\n<html><head><title>Hi</title></head>\n"
        '<body class="x">\n<p>Hello <b>Ann</b></p>\n'
        f'<a class="btn" href="{click("https://example.com/a")}" target=_blank>A</a>\n'
        f"<a href='{click('http://example.com/b')}' style='color: red'>B</a>\n"
        f'<a href="{click("https://example.com/c")}">C</a>\n'
        f"{pixel()}</body>\n</html>\n"
    )
    assert instrument(source) == expected


def test_rewritten_links_redirect_to_their_own_target() -> None:
    out = instrument('<a href="https://example.com/1">1</a><a href="https://example.com/2">2</a>')
    tokens = re.findall(r"/t/c/([A-Za-z0-9_.-]+)", out)
    assert [parse_click_token(t, SECRET) for t in tokens] == [
        (MESSAGE, "https://example.com/1"),
        (MESSAGE, "https://example.com/2"),
    ]


@pytest.mark.parametrize(
    ("href", "target"),
    [
        ("https://example.com/?a=1&amp;b=2", "https://example.com/?a=1&b=2"),
        ("https://example.com/?a=1&#38;b=2&#x26;c=3", "https://example.com/?a=1&b=2&c=3"),
        ("https://example.com/?a=1&copy=2", "https://example.com/?a=1&copy=2"),
        ("https://example.com/?q=&quot;x&quot;", 'https://example.com/?q="x"'),
        ("  https://example.com/a\n\tb ", "https://example.com/ab"),
        ("https://example.com/a b", "https://example.com/a b"),
        ("HTTPS://EXAMPLE.COM/Up", "HTTPS://EXAMPLE.COM/Up"),
    ],
)
def test_link_targets_are_read_as_a_browser_reads_them(href: str, target: str) -> None:
    out = instrument(f'<a href="{href}">x</a>')
    token = re.search(r"/t/c/([A-Za-z0-9_.-]+)", out)
    assert token is not None, out
    assert parse_click_token(token.group(1), SECRET) == (MESSAGE, target)


@pytest.mark.parametrize(
    "anchor",
    [
        '<a href="mailto:ann@example.com">mail</a>',
        '<a href="tel:+15551234567">call</a>',
        '<a href="#section">jump</a>',
        '<a href="/relative/path">relative</a>',
        '<a href="javascript:alert(1)">js</a>',
        '<a href="ftp://example.com/file">ftp</a>',
        '<a href="https://">no host</a>',
        '<a href="https://example.com/{{User.UserId}}">unrendered</a>',
        '<a href="https://example.com/" data-sojourn-notrack>opted out</a>',
        '<a DATA-SOJOURN-NOTRACK="" href="https://example.com/">opted out</a>',
        f'<a href="{PUBLIC}/t/c/already.tracked">tracked</a>',
        "<a name=top>no href</a>",
        "<a href>empty href</a>",
        '<abbr href="https://example.com/" title="not a link">abbr</abbr>',
        '<area href="https://example.com/">',
        '<a href="https://example.com/' + "x" * 5000 + '">too long to sign</a>',
    ],
)
def test_links_left_alone(anchor: str) -> None:
    assert instrument(f"<body>{anchor}</body>") == f"<body>{anchor}{pixel()}</body>"


def test_greater_than_inside_attribute_values_does_not_end_the_tag() -> None:
    source = '<a title="1 > 0" data-x=\'a>b\' href="https://example.com/">x</a>'
    expected = f'<a title="1 > 0" data-x=\'a>b\' href="{click("https://example.com/")}">x</a>'
    assert instrument(source) == expected + pixel()


def test_attribute_named_like_href_inside_another_value_is_not_the_href() -> None:
    source = '<a title="href=https://evil.example/" href="https://example.com/">x</a>'
    out = instrument(source)
    assert 'title="href=https://evil.example/"' in out
    assert f'href="{click("https://example.com/")}"' in out


def test_first_of_duplicate_hrefs_wins_as_in_browsers() -> None:
    source = '<a href="https://example.com/first" href="https://example.com/second">x</a>'
    expected = f'<a href="{click("https://example.com/first")}" href="https://example.com/second">x</a>'
    assert instrument(source) == expected + pixel()


def test_uppercase_tags_and_attributes() -> None:
    source = '<A HREF="https://example.com/">X</A></BODY >'
    assert instrument(source) == f'<A HREF="{click("https://example.com/")}">X</A>{pixel()}</BODY >'


def test_comments_scripts_and_styles_are_untouched() -> None:
    source = (
        '<!-- <a href="https://example.com/commented"> </body> -->'
        "<script>var s = '<a href=\"https://example.com/js\">'; // </body></script>"
        '<style>a[href="https://example.com/css"] { color: red }</style>'
        "<!---->"
        '<p>x</p><a href="https://example.com/real">real</a>'
    )
    out = instrument(source)
    assert out.startswith(source[: source.index("<p>x</p>")])
    assert out.endswith(f'<p>x</p><a href="{click("https://example.com/real")}">real</a>{pixel()}')


def test_links_in_outlook_conditional_comments_are_tracked() -> None:
    source = '<!--[if mso]><a href="https://example.com/mso">Outlook</a><![endif]-->'
    expected = f'<!--[if mso]><a href="{click("https://example.com/mso")}">Outlook</a><![endif]-->'
    assert instrument(source) == expected + pixel()


def test_pixel_goes_before_the_last_body_end_or_at_the_end() -> None:
    assert instrument("<html><body>x</body></html>") == f"<html><body>x{pixel()}</body></html>"
    assert instrument("<p>fragment</p>") == f"<p>fragment</p>{pixel()}"
    assert instrument("") == pixel()


def test_pixel_url_verifies() -> None:
    src = re.search(r'<img src="([^"]+)"', instrument("<body></body>"))
    assert src is not None
    token = html.unescape(src.group(1)).rsplit("/", 1)[1].removesuffix(".gif")
    assert parse_open_token(token, SECRET) == MESSAGE


def test_instrumenting_twice_does_not_wrap_links_twice() -> None:
    once = instrument('<body><a href="https://example.com/">x</a></body>')
    twice = instrument(once)
    assert twice.count("/t/c/") == 1


def test_malformed_markup_is_handled_quickly() -> None:
    nasty = "<a " + 'x =y =" ' * 4000 + "<a href='https://example.com/'" + "<" * 5000
    started = time.perf_counter()
    out = instrument(nasty)
    assert time.perf_counter() - started < 1.0
    assert out.endswith(pixel())


def test_unterminated_comment_runs_to_the_end() -> None:
    source = '<p>x</p><!-- <a href="https://example.com/">'
    assert instrument(source) == source + pixel()


@pytest.mark.parametrize(
    ("fixed", "variable"),
    [
        ({"k": "u", "l": "news", "t": "weekly", "x": "1790000000"}, "e"),  # varying field first
        ({"a": "1", "z": "2"}, "m"),  # in the middle
        ({"a": "1", "b": "2"}, "z"),  # last
        ({}, "m"),  # alone
    ],
)
@pytest.mark.parametrize("value", ["ada@example.com", "", 'qu"ote\\back', "名前@例え.jp", "line\nbreak\x01"])
def test_token_template_signs_exactly_what_sign_token_signs(
    fixed: dict[str, str], variable: str, value: str
) -> None:
    signer = tracking.TokenTemplate(fixed, variable, SECRET)
    token = signer.sign(value)
    assert token == sign_token({**fixed, variable: value}, SECRET)
    assert verify_token(token, SECRET) == {**fixed, variable: value}
    # The prepared state is copied per token, never consumed: the next token is as good.
    assert signer.sign(value) == token


def test_token_template_tokens_are_bound_to_their_value_and_key() -> None:
    signer = tracking.TokenTemplate({"k": "u", "l": "news"}, "e", SECRET)
    body, tag = signer.sign("ada@example.com").split(".")
    other_body, _ = signer.sign("bob@example.com").split(".")
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_token(f"{other_body}.{tag}", SECRET)
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_token(f"{body}.{tag}", b"another secret")


def test_token_template_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="secret"):
        tracking.TokenTemplate({"k": "u"}, "e", b"")
    with pytest.raises(ValueError, match="strings"):
        tracking.TokenTemplate({"k": 1}, "e", SECRET)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="varying field"):
        tracking.TokenTemplate({"e": "x"}, "e", SECRET)
