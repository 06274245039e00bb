"""verify_sigv4 against requests signed by botocore's real SigV4Auth, and against tampered ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sojourn.api.errors import (
    AuthError,
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from sojourn.api.sigv4 import canonical_query_string, canonical_uri, verify_sigv4

KEY_ID = "AKIDSOJOURNTEST"
SECRET = "s3cr3t/with+chars"
ENDPOINT = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Wire:
    """A signed request as the server sees it."""

    method: str
    raw_path: str
    query_string: str
    headers: dict[str, str]
    body: bytes


def sign(
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    service: str = "mobiletargeting",
    region: str = "eu-west-1",
    secret: str = SECRET,
    key_id: str = KEY_ID,
) -> Wire:
    """Sign with botocore's SigV4Auth, prepare the request as botocore sends it, return what arrives."""
    request = AWSRequest(
        method=method, url=ENDPOINT + path, params=params or {}, data=body, headers=headers or {}
    )
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    prepared = request.prepare()
    url = urlsplit(prepared.url)
    sent = dict(prepared.headers.items())
    sent.setdefault("Host", url.netloc)  # urllib3 adds it on the wire
    return Wire(method, url.path, url.query, sent, prepared.body or b"")


def verify(wire: Wire, *, now: datetime | None = None, secret: str = SECRET) -> None:
    verify_sigv4(
        wire.method,
        wire.raw_path,
        wire.query_string,
        wire.headers,
        wire.body,
        access_key_id=KEY_ID,
        secret_access_key=secret,
        signing_names={"mobiletargeting", "ses"},
        now=now or datetime.now(UTC),
    )


SIGNED_REQUESTS = [
    pytest.param("GET", "/v1/apps", None, b"", id="plain"),
    pytest.param("POST", "/v1/apps", None, b'{"Name": "shop"}', id="json-body"),
    pytest.param("GET", "/v1/apps/a%2Fb/endpoints/caf%C3%A9%20%2B1", None, b"", id="encoded-labels"),
    pytest.param(
        "DELETE", "/v1/tags/arn%3Aaws%3Amobiletargeting%3Aus-east-1%3A1%3Aapps%2Fx", None, b"", id="arn"
    ),
    pytest.param("GET", "/v1/apps/x~y_z.-!*'()", None, b"", id="unreserved-and-sub-delims"),
    pytest.param("GET", "/v1/./apps/../apps//x/", None, b"", id="dot-segments-and-double-slash"),
    pytest.param(
        "GET",
        "/v1/apps/a/journeys/j/execution-metrics",
        {"page-size": "25", "next-token": "a+b/c=d e~é"},
        b"",
        id="query",
    ),
    pytest.param("DELETE", "/v1/tags/x", {"tagKeys": "b", "TagKeys": "a", "a": ""}, b"", id="query-sorting"),
    pytest.param(
        "PUT", "/v1/apps/x/endpoints/y", {"q": "1"}, '{"Address": "é"}'.encode(), id="query-and-body"
    ),
]


@pytest.mark.parametrize(("method", "path", "params", "body"), SIGNED_REQUESTS)
def test_botocore_signatures_verify(
    method: str, path: str, params: dict[str, str] | None, body: bytes
) -> None:
    verify(sign(method, path, params=params, body=body))


@pytest.mark.parametrize(("method", "path", "params", "body"), SIGNED_REQUESTS)
def test_tampered_requests_are_rejected(
    method: str, path: str, params: dict[str, str] | None, body: bytes
) -> None:
    wire = sign(method, path, params=params, body=body)
    tampered = [
        replace(wire, method="PATCH"),
        replace(wire, raw_path=wire.raw_path + "x"),
        replace(wire, query_string=wire.query_string + "&extra=1"),
        replace(wire, headers={**wire.headers, "Host": "evil.example.com"}),
        replace(wire, body=wire.body + b" "),
    ]
    for bad in tampered:
        with pytest.raises(InvalidSignatureError) as info:
            verify(bad)
        assert info.value.message.startswith("The request signature we calculated does not match")
        assert "The Canonical String for this request should have been" in info.value.message


def test_signed_header_values_are_covered() -> None:
    wire = sign("POST", "/v1/apps", body=b"{}", headers={"X-Custom": "a  b"})
    verify(wire)
    verify(replace(wire, headers={**wire.headers, "X-Custom": " a b "}))  # trimmed and collapsed
    with pytest.raises(InvalidSignatureError):
        verify(replace(wire, headers={**wire.headers, "X-Custom": "ab"}))


def test_content_sha256_header_must_match_the_body() -> None:
    # botocore signs the header's value when present, so the server must check it against the body.
    body = b'{"Name": "a"}'
    wire = sign(
        "POST", "/v1/apps", body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )
    verify(wire)
    with pytest.raises(InvalidSignatureError) as info:
        verify(replace(wire, body=b'{"Name": "b"}'))
    assert "x-amz-content-sha256" in info.value.message


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignatureError):
        verify(sign("GET", "/v1/apps", secret="not-the-secret"))


def test_unknown_access_key() -> None:
    with pytest.raises(UnrecognizedClientError) as info:
        verify(sign("GET", "/v1/apps", key_id="AKIDSOMEONEELSE"))
    assert info.value.code == "UnrecognizedClientException"
    assert info.value.message.startswith("The security token included in the request is invalid")


def test_missing_authorization() -> None:
    wire = sign("GET", "/v1/apps")
    headers = {k: v for k, v in wire.headers.items() if k.lower() != "authorization"}
    with pytest.raises(MissingAuthenticationTokenError) as info:
        verify(replace(wire, headers=headers))
    assert info.value.code == "MissingAuthenticationTokenException"
    assert info.value.message.startswith("Missing Authentication Token")


def test_any_region_but_only_our_services() -> None:
    verify(sign("GET", "/v1/apps", region="ap-southeast-2"))
    verify(sign("GET", "/v2/email/outbound-emails", service="ses"))
    with pytest.raises(InvalidSignatureError) as info:
        verify(sign("GET", "/v1/apps", service="s3"))
    assert "Credential should be scoped to correct service" in info.value.message


def test_clock_skew() -> None:
    wire = sign("GET", "/v1/apps")
    now = datetime.now(UTC)
    verify(wire, now=now + timedelta(minutes=14))
    with pytest.raises(InvalidSignatureError) as info:
        verify(wire, now=now + timedelta(minutes=16))
    assert info.value.message.startswith("Signature expired: ")
    with pytest.raises(InvalidSignatureError) as info:
        verify(wire, now=now - timedelta(minutes=16))
    assert info.value.message.startswith("Signature not yet current: ")


def test_malformed_authorization_headers() -> None:
    wire = sign("GET", "/v1/apps")
    for value in [
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 Credential=x",
        "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00",
    ]:
        with pytest.raises(IncompleteSignatureError):
            verify(replace(wire, headers={**wire.headers, "Authorization": value}))


def test_date_must_be_signed_and_match_the_scope() -> None:
    wire = sign("GET", "/v1/apps")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    with pytest.raises(AuthError):
        verify(replace(wire, headers={**wire.headers, "X-Amz-Date": tomorrow}))
    headers = {k: v for k, v in wire.headers.items() if k.lower() != "x-amz-date"}
    with pytest.raises(IncompleteSignatureError):
        verify(replace(wire, headers=headers))


def test_canonical_helpers_match_botocore() -> None:
    auth = SigV4Auth(Credentials(KEY_ID, SECRET), "mobiletargeting", "us-east-1")
    for path in ["/a/./b/../c//d/", "/caf%C3%A9/%2F~x", "", "/"]:
        assert canonical_uri(path) == auth._normalize_url_path(path or "/")
    request = AWSRequest(method="GET", url="http://h/p", params={"b": "2 3", "a": "é", "c": "+~"})
    query = urlsplit(request.prepare().url).query
    assert canonical_query_string(query) == auth.canonical_query_string(request)
