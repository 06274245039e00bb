"""A real SNS-like signer for tests: an RSA key, a self-signed certificate served over local HTTP, and
messages signed the way SNS signs them (SignatureVersion 1 and 2)."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from sojourn.channels.sns_signature import canonical_string


def self_signed_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A PEM self-signed certificate of ``key``, valid for a day."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsSigner:
    """Signs SNS messages and serves the certificate at ``cert_url`` (a real HTTP server on 127.0.0.1).

    Attributes:
        base_url: Where the certificate server listens.
        fetches: How many times the certificate was fetched (the receiver caches it per URL).
    """

    base_url: str = ""
    fetches: int = 0
    confirmed: list[str] = field(default_factory=list)
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    pem: bytes = b""

    @property
    def cert_url(self) -> str:
        """The SigningCertURL of messages this signer signs."""
        return f"{self.base_url}/SimpleNotificationService-test.pem"

    @property
    def url_pattern(self) -> str:
        """A ``SOJOURN_SNS_CERT_URL_PATTERN`` that allows this signer's certificate server."""
        return re.escape(self.base_url) + "/.*"

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        """``message`` with SignatureVersion, SigningCertURL and Signature set."""
        out = {
            **message,
            "SignatureVersion": version,
            "SigningCertURL": message.get("SigningCertURL") or self.cert_url,
        }
        algorithm: hashes.HashAlgorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(canonical_string(out), padding.PKCS1v15(), algorithm)
        out["Signature"] = base64.b64encode(signature).decode()
        return out

    def notification(self, ses_notification: dict[str, Any], version: str = "2") -> dict[str, Any]:
        """A signed SNS Notification whose Message is ``ses_notification`` as JSON."""
        return self.sign(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
                "Subject": "Amazon SES Email Event Notification",
                "Message": json.dumps(ses_notification),
                "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            },
            version,
        )


@contextmanager
def sns_signer() -> Iterator[SnsSigner]:
    """A signer whose certificate is served over HTTP until the block ends."""
    signer = SnsSigner()
    signer.pem = self_signed_certificate(signer.key)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/confirm"):
                signer.confirmed.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            signer.fetches += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/x-pem-file")
            self.send_header("Content-Length", str(len(signer.pem)))
            self.end_headers()
            self.wfile.write(signer.pem)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    signer.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield signer
    finally:
        server.shutdown()
        server.server_close()
