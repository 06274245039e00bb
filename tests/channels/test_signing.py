"""Webhook and callback signatures."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from sojourn.channels.signing import SignatureError, sign, signed_headers, verify

BODY = b'{"MessageId":"m1"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1767225600, BODY) == f"sha256={expected}"
    assert signed_headers("s3cret", 1767225600, BODY) == {
        "X-Sojourn-Timestamp": "1767225600",
        "X-Sojourn-Signature": f"sha256={expected}",
    }


def test_a_good_signature_verifies() -> None:
    verify("s3cret", timestamp="1000", signature=sign("s3cret", 1000, BODY), body=BODY, now=1010)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "message"),
    [
        (None, "sha256=00", BODY, 1000, "needs the X-Sojourn-Timestamp and X-Sojourn-Signature"),
        ("1000", None, BODY, 1000, "needs the X-Sojourn-Timestamp"),
        ("soon", "sha256=00", BODY, 1000, "must be unix seconds"),
        ("1000", sign("s3cret", 1000, BODY), BODY, 1000 + 301, "more than 300 seconds"),
        ("1000", sign("other", 1000, BODY), BODY, 1000, "does not match"),
        ("1000", sign("s3cret", 1000, BODY), BODY + b" ", 1000, "does not match"),
        ("1001", sign("s3cret", 1000, BODY), BODY, 1000, "does not match"),
    ],
)
def test_bad_signatures_are_refused(
    timestamp: str | None, signature: str | None, body: bytes, now: float, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify("s3cret", timestamp=timestamp, signature=signature, body=body, now=now)
