"""The MIME bytes written directly equal what EmailMessage builds (but for the Date and the boundary)."""

from __future__ import annotations

import re
from dataclasses import replace
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default

import pytest

from sojourn.channels import email as email_module
from sojourn.channels.email import OutgoingEmail

LONG_URL = "https://sojourn.example.com/u/" + "A" * 180
HTML = (
    '<html><body><h1>Hi Zoë</h1><p><a href="https://track.example.com/t/c/abc.def">Read</a></p></body></html>'
)

BASE = OutgoingEmail(
    message_id="0123456789abcdef0123456789abcdef",
    from_address="news@example.com",
    to_address="ann@example.com",
    subject="This week",
    html="<p>Hello</p>",
    text="Hello",
)

CASES = {
    "text and html": BASE,
    "text only": replace(BASE, html=None),
    "html only": replace(BASE, text=None),
    "non-ascii subject": replace(BASE, subject="Ça va, Zoë? — 50% off ✓"),
    "long subject": replace(BASE, subject="A subject that is long enough to need folding " * 3),
    "encoded-word lookalike": replace(BASE, subject="=?utf-8?q?not_really?="),
    "extra spaces": replace(BASE, subject="  two  spaces  "),
    "non-ascii html": replace(BASE, html=HTML),
    "long lines": replace(BASE, text="word " * 60, html="<p>" + "x" * 300 + "</p>"),
    "non-ascii long lines": replace(BASE, text="é" * 200, html="ü" * 100 + "\n" + "a" * 20),
    "many lines": replace(BASE, text="\n".join(f"line {i} é" * 12 for i in range(30))),
    "line endings": replace(BASE, text="a\r\nb\rc\nd", html="<p>\r\n</p>"),
    "leading dot and no final newline": replace(BASE, text=".hidden\n.", html="."),
    "display name": replace(BASE, from_address="Sojourn News <news@example.com>"),
    "recipients": replace(
        BASE, also_to=("b@example.com",), cc=("c@example.com", "d@example.com"), reply_to=("r@example.com",)
    ),
    "headers": replace(
        BASE,
        headers={
            "X-Campaign": "weekly-Zoë",
            "X-Plain": "v",
            "X-Long": "word " * 30,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    ),
    "special display name": replace(BASE, from_address='"News, Inc." <news@example.com>'),
    "header replacing a standard one": replace(BASE, headers={"Subject": "Replaced"}),
}


def normalized(data: bytes) -> bytes:
    data = re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", data)
    return re.sub(rb"===============\d+==", b"BOUNDARY", data)


def general_path(email: OutgoingEmail, domain: str) -> bytes:
    """What EmailMessage builds (the path every message took before)."""
    original = email_module._spliced_mime
    email_module._spliced_mime = lambda *_: None  # type: ignore[assignment]
    try:
        return email.to_bytes(domain)
    finally:
        email_module._spliced_mime = original


@pytest.mark.parametrize("case", CASES)
def test_spliced_bytes_equal_email_message_bytes(case: str) -> None:
    email = CASES[case]
    assert normalized(email.to_bytes("example.com")) == normalized(general_path(email, "example.com"))


def test_plain_messages_take_the_spliced_path_and_others_do_not() -> None:
    assert email_module._spliced_mime(CASES["non-ascii subject"], "example.com") is not None
    assert email_module._spliced_mime(CASES["headers"], "example.com") is not None
    assert email_module._spliced_mime(CASES["special display name"], "example.com") is None
    assert email_module._spliced_mime(CASES["header replacing a standard one"], "example.com") is None


def test_the_spliced_message_parses_back_to_its_parts() -> None:
    email = replace(CASES["non-ascii html"], text="Hi Zoë\n" + "x" * 120, subject="Ça va?")
    parsed = message_from_bytes(email.to_bytes("example.com"), policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Ça va?" and parsed["Message-ID"] == f"<{email.message_id}@example.com>"
    html = parsed.get_body(preferencelist=("html",))
    text = parsed.get_body(preferencelist=("plain",))
    assert html is not None and text is not None
    assert html.get_content().replace("\r\n", "\n") == HTML + "\n"  # type: ignore[attr-defined]
    assert text.get_content().replace("\r\n", "\n") == f"{email.text}\n"  # type: ignore[attr-defined]
    assert parsed.defects == [] and all(part.defects == [] for part in parsed.walk())


def test_list_unsubscribe_keeps_its_urls_readable() -> None:
    """EmailMessage RFC 2047-encodes a long List-Unsubscribe, which mail clients cannot use; ours stays plain."""
    value = f"<{LONG_URL}>, <mailto:unsubscribe@example.com?subject=unsubscribe%20news>"
    email = replace(BASE, headers={"List-Unsubscribe": value})
    data = email.to_bytes("example.com")
    assert "=?utf-8?" in SMTP.header_factory("List-Unsubscribe", value).fold(policy=SMTP)
    assert f"List-Unsubscribe: <{LONG_URL}>,\r\n <mailto:".encode() in data
    assert message_from_bytes(data, policy=default)["List-Unsubscribe"] == value
