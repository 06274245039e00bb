"""Verification of SNS message signatures, as AWS documents it for HTTP(S) subscribers.

An SNS message (Notification, SubscriptionConfirmation or UnsubscribeConfirmation) carries ``Signature``
(base64), ``SignatureVersion`` (``1``: RSA PKCS#1 v1.5 over SHA1, ``2``: over SHA256) and ``SigningCertURL``.
The signed bytes are the canonical string: for each of the type's fields, in this order and only when present,
``"<Name>\\n<Value>\\n"``.

* Notification: Message, MessageId, Subject, Timestamp, TopicArn, Type.
* SubscriptionConfirmation / UnsubscribeConfirmation: Message, MessageId, SubscribeURL, Timestamp, Token,
  TopicArn, Type.

The certificate is fetched only from an https URL whose host is ``sns.<region>.amazonaws.com`` (or ``.cn``),
or from a URL matching the operator's extra pattern (``SOJOURN_SNS_CERT_URL_PATTERN``, for self-hosted
SNS-compatible senders and tests), and cached per URL. The pure parts (canonical string, URL rule, the check
against a PEM) are separate from the fetching (:class:`SigningCertCache`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

AWS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
MAX_CERT_BYTES = 64 * 1024
CERT_FETCH_TIMEOUT_SECONDS = 10.0

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": _NOTIFICATION_FIELDS,
    "SubscriptionConfirmation": _CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": _CONFIRMATION_FIELDS,
}
_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class SnsSignatureError(ValueError):
    """The SNS message's signature is missing, malformed, from a refused certificate URL, or wrong."""


def canonical_string(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signs for ``message`` (see the module docstring).

    Raises:
        SnsSignatureError: ``Type`` is not one of the three signed message types, or a field is not a string.
    """
    kind = message.get("Type")
    fields = SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise SnsSignatureError(
            f"Type {kind!r} is not a signed SNS message type ({', '.join(SIGNED_FIELDS)})"
        )
    parts: list[str] = []
    for name in fields:
        if name not in message or message[name] is None:
            continue
        value = message[name]
        if not isinstance(value, str):
            raise SnsSignatureError(f"{name} must be a string in a signed SNS message")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def check_cert_url(url: str, extra_pattern: str | None = None, *, what: str = "SigningCertURL") -> None:
    """Refuse a SigningCertURL (or SubscribeURL) that is not AWS's (https, host
    ``sns.<region>.amazonaws.com[.cn]``).

    Args:
        url: The message's SigningCertURL.
        extra_pattern: A regex that a whole URL may match instead (the operator's own SNS-compatible sender).
        what: The field's name, for the message.

    Raises:
        SnsSignatureError: naming the rule the URL breaks.
    """
    if extra_pattern and re.fullmatch(extra_pattern, url):
        return
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise SnsSignatureError(f"{what} {url!r} is not https")
    host = parts.hostname or ""
    if parts.port not in (None, 443) or not AWS_CERT_HOST.fullmatch(host):
        raise SnsSignatureError(
            f"{what} host {host!r} is not an SNS host (sns.<region>.amazonaws.com); "
            "set SOJOURN_SNS_CERT_URL_PATTERN to allow another sender"
        )


async def confirm_subscription(url: str, extra_pattern: str | None = None) -> None:
    """Confirm an SNS subscription by visiting the SubscribeURL of a verified SubscriptionConfirmation.

    Only SNS's own URLs (or the operator's pattern) are visited, so a message cannot make sojourn request an
    arbitrary address.

    Raises:
        SnsSignatureError: the URL is refused, or SNS did not answer 200.
    """
    check_cert_url(url, extra_pattern, what="SubscribeURL")
    try:
        async with httpx.AsyncClient(timeout=CERT_FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as err:
        raise SnsSignatureError(f"could not visit the SubscribeURL: {err}") from None
    if response.status_code != 200:
        raise SnsSignatureError(f"the SubscribeURL answered HTTP {response.status_code}")


def verify_with_certificate(message: Mapping[str, Any], cert_pem: bytes) -> None:
    """Check ``message``'s Signature against the RSA key of the PEM certificate ``cert_pem``.

    Raises:
        SnsSignatureError: unknown SignatureVersion, undecodable Signature or certificate, or a signature
            that does not match the canonical string.
    """
    version = str(message.get("SignatureVersion") or "")
    algorithm = _HASHES.get(version)
    if algorithm is None:
        raise SnsSignatureError(f"SignatureVersion {version!r} is not supported; SNS signs with 1 or 2")
    try:
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise SnsSignatureError("Signature is not base64") from None
    if not signature:
        raise SnsSignatureError("the SNS message has no Signature")
    try:
        key = x509.load_pem_x509_certificate(cert_pem).public_key()
    except ValueError:
        raise SnsSignatureError("the signing certificate is not a PEM X.509 certificate") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsSignatureError("the signing certificate's key is not RSA")
    try:
        key.verify(signature, canonical_string(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SnsSignatureError("the SNS message's signature does not match its content") from None


class SigningCertCache:
    """Fetches signing certificates over HTTP(S), once per URL, for the life of the process.

    Only URLs that pass :func:`check_cert_url` are fetched; a failed fetch is not cached (the next message
    tries again).
    """

    def __init__(self, extra_pattern: str | None = None) -> None:
        """Raises ValueError at startup when ``extra_pattern`` is not a regular expression."""
        if extra_pattern:
            try:
                re.compile(extra_pattern)
            except re.error as err:
                raise ValueError(f"SOJOURN_SNS_CERT_URL_PATTERN is not a regular expression: {err}") from None
        self.extra_pattern = extra_pattern
        self._pems: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    async def pem(self, url: str) -> bytes:
        """The PEM at ``url``, fetched on first use.

        Raises:
            SnsSignatureError: the URL is refused, or the certificate could not be fetched.
        """
        check_cert_url(url, self.extra_pattern)
        cached = self._pems.get(url)
        if cached is not None:
            return cached
        async with self._lock:
            if url in self._pems:
                return self._pems[url]
            try:
                async with httpx.AsyncClient(
                    timeout=CERT_FETCH_TIMEOUT_SECONDS, follow_redirects=False
                ) as client:
                    response = await client.get(url)
            except httpx.HTTPError as err:
                raise SnsSignatureError(f"could not fetch the signing certificate {url}: {err}") from None
            if response.status_code != 200 or len(response.content) > MAX_CERT_BYTES:
                raise SnsSignatureError(
                    f"could not fetch the signing certificate {url}: HTTP {response.status_code}"
                )
            self._pems[url] = response.content
            return response.content

    async def verify(self, message: Mapping[str, Any]) -> None:
        """Verify a parsed SNS message: its certificate URL, then its signature.

        Raises:
            SnsSignatureError: the message is not genuine (the message says why).
        """
        url = message.get("SigningCertURL") or message.get("SigningCertUrl")
        if not isinstance(url, str) or not url:
            raise SnsSignatureError("the SNS message has no SigningCertURL")
        if str(message.get("SignatureVersion") or "") not in _HASHES:
            # Checked before any fetch: an unknown version never costs an outbound request.
            raise SnsSignatureError(
                f"SignatureVersion {message.get('SignatureVersion')!r} is not supported; SNS signs with 1 or 2"
            )
        verify_with_certificate(message, await self.pem(url))
