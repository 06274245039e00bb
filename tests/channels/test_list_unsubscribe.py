"""The List-Unsubscribe headers and URLs that list mail carries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sojourn.channels.list_unsubscribe import (
    ListUnsubscribeLinks,
    list_unsubscribe,
    mailto_unsubscribe_token,
    replace_unsubscribe_placeholder,
)
from sojourn.channels.page_tokens import verify_page_token

SECRET = b"s" * 32
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_headers_and_urls_bind_list_topic_and_contact() -> None:
    links = list_unsubscribe(
        public_url="https://mail.example.com/",
        secret=SECRET,
        list_name="news",
        topic="weekly",
        email_address="ada@example.com",
        now=NOW,
        ttl=timedelta(days=60),
        mailto="leave@example.com",
    )
    assert links.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(
        r"<https://mail\.example\.com/u/([^>]+)>, <mailto:leave@example\.com\?subject=unsubscribe%20([^>]+)>",
        links.headers["List-Unsubscribe"],
    )
    assert match is not None and links.one_click_url.endswith(match.group(1))
    # The mailto subject carries the same one-click token.
    assert match.group(2) == match.group(1)
    one_click = verify_page_token(match.group(1), purpose="unsubscribe", now=NOW, secret=SECRET)
    assert (one_click.list_name, one_click.email_address, one_click.topic) == (
        "news",
        "ada@example.com",
        "weekly",
    )
    token = links.preferences_url.removeprefix("https://mail.example.com/preferences/")
    preferences = verify_page_token(token, purpose="preferences", now=NOW, secret=SECRET)
    assert preferences.topic is None and preferences.list_name == "news"


def test_no_mailto_without_an_address() -> None:
    links = list_unsubscribe(
        public_url="http://x",
        secret=SECRET,
        list_name="news",
        topic=None,
        email_address="a@example.com",
        now=NOW,
        ttl=timedelta(days=1),
    )
    assert "mailto" not in links.headers["List-Unsubscribe"]
    assert (
        verify_page_token(
            links.one_click_url.removeprefix("http://x/u/"), purpose="unsubscribe", now=NOW, secret=SECRET
        ).topic
        is None
    )


def test_placeholder_replaced_at_most_twice() -> None:
    text = "{{amazonSESUnsubscribeUrl}} {{amazonSESUnsubscribeUrl}} {{amazonSESUnsubscribeUrl}}"
    assert replace_unsubscribe_placeholder(text, "U") == "U U {{amazonSESUnsubscribeUrl}}"
    assert replace_unsubscribe_placeholder(None, "U") is None


def test_the_token_comes_back_from_the_subject_or_the_body() -> None:
    token = "eyJrIjoidSJ9.c2lnbmF0dXJl-_x"
    assert mailto_unsubscribe_token(f"Subject: unsubscribe {token}\r\n\r\n".encode()) == token
    assert mailto_unsubscribe_token(f"Subject: Re: Unsubscribe {token}\r\n\r\nthanks".encode()) == token
    assert mailto_unsubscribe_token(f"Subject: leave\r\n\r\nplease unsubscribe {token}\r\n".encode()) == token
    assert mailto_unsubscribe_token(b"Subject: unsubscribe me\r\n\r\nplease\r\n") is None
    assert mailto_unsubscribe_token(b"\r\n") is None


def test_prepared_links_are_those_of_list_unsubscribe() -> None:
    for mailto in ("leave@example.com", None):
        for with_preferences in (True, False):
            common = {
                "public_url": "https://mail.example.com/",
                "secret": SECRET,
                "list_name": "news",
                "topic": "weekly",
                "now": NOW,
                "ttl": timedelta(days=60),
                "mailto": mailto,
                "with_preferences": with_preferences,
            }
            prepared = ListUnsubscribeLinks(**common)  # type: ignore[arg-type]
            for address in ("ada@example.com", "bob@example.org"):
                assert prepared.for_address(address) == list_unsubscribe(email_address=address, **common)  # type: ignore[arg-type]
