"""Page tokens: genuine ones verify; tampered, expired, foreign or misused ones are refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from sojourn.channels.page_tokens import (
    ExpiredPageTokenError,
    PageTokenError,
    make_page_token,
    page_token_signer,
    verify_page_token,
)
from sojourn.channels.tracking import sign_token

SECRET = b"k" * 32
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TTL = timedelta(days=60)


def token(**overrides: object) -> str:
    args: dict[str, object] = {
        "purpose": "unsubscribe",
        "list_name": "news",
        "email_address": "ada@example.com",
        "topic": "weekly",
        "now": NOW,
        "ttl": TTL,
        "secret": SECRET,
    }
    args.update(overrides)
    return make_page_token(**args)  # type: ignore[arg-type]


def test_a_genuine_token_verifies() -> None:
    claim = verify_page_token(token(), purpose="unsubscribe", now=NOW + TTL, secret=SECRET)
    assert (claim.list_name, claim.email_address, claim.topic) == ("news", "ada@example.com", "weekly")
    assert claim.expires_at == int((NOW + TTL).timestamp())
    preferences = verify_page_token(
        token(purpose="preferences", topic=None),
        purpose="preferences",
        now=NOW,
        secret=SECRET,
        list_name="news",
        email_address="ada@example.com",
    )
    assert preferences.topic is None


def test_expired_token_is_refused() -> None:
    with pytest.raises(ExpiredPageTokenError, match="expired"):
        verify_page_token(token(), purpose="unsubscribe", now=NOW + TTL + timedelta(seconds=1), secret=SECRET)


def test_tampered_token_is_refused() -> None:
    genuine = token()
    body, tag = genuine.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["l"] = "other-list"
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for bad in (f"{forged_body}.{tag}", genuine[:-2] + ("AA" if genuine[-2:] != "AA" else "BB"), "x", ""):
        with pytest.raises(PageTokenError):
            verify_page_token(bad, purpose="unsubscribe", now=NOW, secret=SECRET)


def test_token_of_another_key_is_refused() -> None:
    with pytest.raises(PageTokenError, match="signature"):
        verify_page_token(token(secret=b"other" * 8), purpose="unsubscribe", now=NOW, secret=SECRET)
    # A tracking token signed with the same key but without the page fields is no page token either.
    with pytest.raises(PageTokenError):
        verify_page_token(sign_token({"m": "msg"}, SECRET), purpose="unsubscribe", now=NOW, secret=SECRET)


def test_foreign_list_contact_or_purpose_is_refused() -> None:
    with pytest.raises(PageTokenError, match="another contact list"):
        verify_page_token(token(), purpose="unsubscribe", now=NOW, secret=SECRET, list_name="other")
    with pytest.raises(PageTokenError, match="another contact"):
        verify_page_token(
            token(), purpose="unsubscribe", now=NOW, secret=SECRET, email_address="bob@example.com"
        )
    with pytest.raises(PageTokenError, match="not a link to the preferences page"):
        verify_page_token(token(), purpose="preferences", now=NOW, secret=SECRET)


@pytest.mark.parametrize("topic", ["weekly", None])
@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
def test_a_prepared_signer_makes_the_tokens_of_the_reference_payload(topic: str | None, purpose: str) -> None:
    signer = page_token_signer(
        purpose=purpose,  # type: ignore[arg-type]
        list_name="news",
        topic=topic,
        now=NOW,
        ttl=TTL,
        secret=SECRET,
    )
    for address in ("ada@example.com", "bob+tag@example.org", "zoë@example.de"):
        # The payload as page tokens always carried it, signed the general way.
        payload = {
            "k": "u" if purpose == "unsubscribe" else "p",
            "l": "news",
            "e": address,
            "x": str(int((NOW + TTL).timestamp())),
        }
        if topic is not None:
            payload["t"] = topic
        fast = signer.sign(address)
        assert fast == sign_token(payload, SECRET)
        claim = verify_page_token(fast, purpose=purpose, now=NOW, secret=SECRET, email_address=address)  # type: ignore[arg-type]
        assert (claim.list_name, claim.topic) == ("news", topic)


def test_a_prepared_signers_token_tampered_is_refused() -> None:
    signer = page_token_signer(
        purpose="unsubscribe", list_name="news", topic="weekly", now=NOW, ttl=TTL, secret=SECRET
    )
    body, tag = signer.sign("ada@example.com").split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["e"] = "mallory@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    other_body, _ = signer.sign("mallory@example.com").split(".")
    for bad in (f"{forged}.{tag}", f"{other_body}.{tag}", f"{body}.{tag[:-2]}AA"):
        with pytest.raises(PageTokenError):
            verify_page_token(bad, purpose="unsubscribe", now=NOW, secret=SECRET)
