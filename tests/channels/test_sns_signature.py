"""SNS signature rules: the canonical string, the certificate URL rule, the check against a certificate."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sojourn.channels.sns_signature import (
    SigningCertCache,
    SnsSignatureError,
    canonical_string,
    check_cert_url,
    verify_with_certificate,
)
from tests.support.sns import SnsSigner, self_signed_certificate


def test_canonical_string_of_a_notification_skips_a_missing_subject() -> None:
    message = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "arn",
        "Message": "hello",
        "Timestamp": "2026-11-23T12:00:00.000Z",
        "SigningCertURL": "ignored",
        "UnsubscribeURL": "ignored",
    }
    assert canonical_string(message) == (
        b"Message\nhello\nMessageId\nm\nTimestamp\n2026-11-23T12:00:00.000Z\nTopicArn\narn\nType\nNotification\n"
    )
    assert b"Subject\ns\n" in canonical_string({**message, "Subject": "s"})


def test_canonical_string_of_a_subscription_confirmation_has_token_and_url() -> None:
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m",
        "Token": "tok",
        "TopicArn": "arn",
        "Message": "confirm",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
        "Timestamp": "t",
    }
    assert canonical_string(message) == (
        b"Message\nconfirm\nMessageId\nm\n"
        b"SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription\n"
        b"Timestamp\nt\nToken\ntok\nTopicArn\narn\nType\nSubscriptionConfirmation\n"
    )
    with pytest.raises(SnsSignatureError, match="Type"):
        canonical_string({**message, "Type": "Other"})


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
    ],
)
def test_aws_cert_urls_are_allowed(url: str) -> None:
    check_cert_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://sns.us-east-1.amazonaws.com/c.pem", "not https"),
        ("https://sns.us-east-1.amazonaws.com.evil.example/c.pem", "not an SNS host"),
        ("https://evil.example/sns.us-east-1.amazonaws.com/c.pem", "not an SNS host"),
        ("https://sns.us-east-1.amazonaws.com:8443/c.pem", "not an SNS host"),
        ("https://s3.amazonaws.com/c.pem", "not an SNS host"),
    ],
)
def test_other_cert_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(SnsSignatureError, match=why):
        check_cert_url(url)


def test_a_bad_extra_pattern_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="SOJOURN_SNS_CERT_URL_PATTERN"):
        SigningCertCache("https://[")


def test_an_extra_pattern_allows_the_operators_sender() -> None:
    check_cert_url("http://127.0.0.1:9000/c.pem", r"http://127\.0\.0\.1:9000/.*")
    with pytest.raises(SnsSignatureError):
        check_cert_url("http://127.0.0.1:9001/c.pem", r"http://127\.0\.0\.1:9000/.*")


@pytest.mark.parametrize("version", ["1", "2"])
def test_signature_versions_1_and_2_verify(version: str) -> None:
    signer = SnsSigner(base_url="http://127.0.0.1:1")
    pem = self_signed_certificate(signer.key)
    message = signer.notification({"notificationType": "Bounce"}, version=version)
    verify_with_certificate(message, pem)
    with pytest.raises(SnsSignatureError, match="does not match"):
        verify_with_certificate({**message, "Subject": "changed"}, pem)
    other = self_signed_certificate(rsa.generate_private_key(65537, 2048))
    with pytest.raises(SnsSignatureError, match="does not match"):
        verify_with_certificate(message, other)
    with pytest.raises(SnsSignatureError, match="SignatureVersion"):
        verify_with_certificate({**message, "SignatureVersion": "3"}, pem)
    with pytest.raises(SnsSignatureError, match="base64"):
        verify_with_certificate({**message, "Signature": "@@@"}, pem)
