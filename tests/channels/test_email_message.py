"""OutgoingEmail's RFC 5322 form: extra recipients, header overrides and raw messages."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

from sojourn.channels.email import OutgoingEmail


def test_headers_replace_same_named_ones_and_recipients_cover_cc_and_bcc() -> None:
    email = OutgoingEmail(
        message_id="m1",
        from_address="news@example.com",
        to_address="a@example.com",
        also_to=("b@example.com",),
        cc=("c@example.com",),
        bcc=("d@example.com",),
        reply_to=("help@example.com",),
        subject="Hi",
        html=None,
        text="Body",
        headers={"Subject": "Replaced", "List-Unsubscribe": "<https://x/u/t>"},
    )
    parsed = message_from_bytes(email.to_bytes("example.com"), policy=default_policy)
    assert email.recipients == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    assert parsed["To"] == "a@example.com, b@example.com" and parsed["Cc"] == "c@example.com"
    assert parsed["Bcc"] is None and parsed["Reply-To"] == "help@example.com"
    assert parsed.get_all("Subject") == ["Replaced"] and parsed["List-Unsubscribe"] == "<https://x/u/t>"
    assert parsed["Message-ID"] == "<m1@example.com>"


def test_raw_message_keeps_its_content_but_gets_our_id_and_headers() -> None:
    raw = (
        b"From: r@example.com\r\nTo: t@example.com\r\nSubject: Raw\r\nMessage-ID: <theirs@x>\r\n"
        b"List-Unsubscribe: <https://old>\r\n\r\nRaw body\r\n"
    )
    email = OutgoingEmail(
        message_id="m2",
        from_address="r@example.com",
        to_address="t@example.com",
        subject="ignored",
        html=None,
        text=None,
        headers={"List-Unsubscribe": "<https://new>"},
        raw=raw,
    )
    parsed = message_from_bytes(email.to_bytes("example.com"), policy=default_policy)
    assert parsed["Subject"] == "Raw" and parsed.get_content().strip() == "Raw body"  # type: ignore[attr-defined]
    assert parsed.get_all("Message-ID") == ["<m2@example.com>"]
    assert parsed.get_all("List-Unsubscribe") == ["<https://new>"]
