"""AWS Signature Version 4 verification of incoming requests, as the AWS SDKs sign them.

A pure function of the request: it rebuilds the canonical request exactly as botocore's
``SigV4Auth`` does for non-S3 services (the already-encoded path normalised and encoded once more,
the query re-encoded and sorted, the signed headers trimmed), derives the signing key from the one
configured secret and compares signatures in constant time. Errors use the codes and wording AWS
returns, so existing tooling recognises them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

from sojourn.api.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_UNRESERVED = "-_.~"


def remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, also collapsing repeated slashes (as AWS and botocore do)."""
    if not path:
        return ""
    output: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and output else ""
    return first + "/".join(output) + last


def canonical_uri(raw_path: str) -> str:
    """The canonical URI of a non-S3 request: the raw path normalised, then percent-encoded once more.

    Args:
        raw_path: The path exactly as sent on the wire (still percent-encoded), without the query.

    Returns:
        What botocore's ``SigV4Auth`` signs: ``quote(normalize_url_path(path), safe="/~")``.
    """
    normalized = remove_dot_segments(raw_path) if raw_path else "/"
    # surrogateescape: raw non-ASCII bytes on the wire round-trip to the same bytes the client quoted.
    return quote(normalized.encode("utf-8", "surrogateescape"), safe="/~")


def canonical_query_string(query_string: str) -> str:
    """The canonical query string: each name and value URI-encoded, sorted by name, then value.

    Args:
        query_string: The raw query string (after ``?``), still percent-encoded.

    Returns:
        ``name=value`` pairs joined by ``&``.
    """
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        # Decode, then encode the AWS way, so optional encodings (``%7E`` for ``~``) compare equal.
        # botocore sends spaces as ``+`` (urlencode) but signs them as ``%20``.
        pairs.append((_aws_quote(name), _aws_quote(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _aws_quote(component: str) -> str:
    raw = component.replace("+", " ").encode("utf-8", "surrogateescape")
    return quote(unquote_to_bytes(raw), safe=_UNRESERVED)


def _header_values(headers: Mapping[str, str], name: str) -> list[str] | None:
    """All values of a header (Starlette's Headers keep repeats; plain mappings have one)."""
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        values = list(getlist(name))
        return values or None
    for key, value in headers.items():
        if key.lower() == name:
            return [value]
    return None


def canonical_headers(headers: Mapping[str, str], signed_headers: list[str]) -> str:
    """The canonical headers block: ``name:trimmed value`` lines for the signed headers, in order.

    Raises:
        InvalidSignatureError: a signed header is absent from the request.
    """
    lines = []
    for name in signed_headers:
        values = _header_values(headers, name)
        if values is None:
            raise InvalidSignatureError(
                f"The request signature we calculated does not match the signature you provided: "
                f"the signed header '{name}' is missing from the request."
            )
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=64)
def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key for a day, region and service (cached: it changes once a day)."""
    key = hmac.new(f"AWS4{secret_access_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _parse_authorization(authorization: str) -> tuple[list[str], list[str], str]:
    """The credential parts, signed header names and signature of an ``Authorization`` header.

    Raises:
        IncompleteSignatureError: not an AWS4-HMAC-SHA256 header, or a part is missing.
    """
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureError(
            f"Authorization header must use the {ALGORITHM} algorithm (AWS Signature Version 4), "
            f"not '{algorithm[:40]}'."
        )
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, value = item.strip().partition("=")
        if eq:
            parts[key] = value.strip()
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if not parts.get(p)]
    if missing:
        raise IncompleteSignatureError(
            " ".join(f"Authorization header requires '{p}' parameter." for p in missing)
            + f" Authorization={authorization[:200]}"
        )
    credential = parts["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request":
        raise IncompleteSignatureError(
            "Credential should be <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request, "
            f"got '{parts['Credential'][:120]}'."
        )
    return credential, parts["SignedHeaders"].lower().split(";"), parts["Signature"]


def _request_time(headers: Mapping[str, str], signed_headers: list[str]) -> tuple[str, datetime]:
    """The signing time as ``YYYYMMDDTHHMMSSZ`` and as a datetime, from X-Amz-Date (or Date).

    Raises:
        IncompleteSignatureError: no usable, signed date header.
    """
    amz_date = (_header_values(headers, "x-amz-date") or [""])[0].strip()
    if amz_date:
        if "x-amz-date" not in signed_headers:
            raise IncompleteSignatureError("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
        try:
            return amz_date, datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise IncompleteSignatureError(
                f"X-Amz-Date must be in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z', got '{amz_date[:40]}'."
            ) from None
    date_header = (_header_values(headers, "date") or [""])[0].strip()
    if date_header and "date" in signed_headers:
        # botocore signs with the Date header when the request already has one.
        try:
            signed_at = parsedate_to_datetime(date_header).astimezone(UTC)
        except (TypeError, ValueError):
            raise IncompleteSignatureError(
                f"Date header is not an HTTP date: '{date_header[:60]}'."
            ) from None
        return signed_at.strftime(_AMZ_DATE), signed_at
    raise IncompleteSignatureError(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )


def _check_clock(amz_date: str, signed_at: datetime, now: datetime, max_skew: timedelta) -> None:
    """Reject requests signed too long ago or too far ahead (AWS's wording, so tools recognise it)."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    minutes = int(max_skew.total_seconds() // 60)
    if signed_at < now - max_skew:
        raise InvalidSignatureError(
            f"Signature expired: {amz_date} is now earlier than {(now - max_skew).strftime(_AMZ_DATE)} "
            f"({now.strftime(_AMZ_DATE)} - {minutes} min.) Check the client's clock."
        )
    if signed_at > now + max_skew:
        raise InvalidSignatureError(
            f"Signature not yet current: {amz_date} is still later than {(now + max_skew).strftime(_AMZ_DATE)} "
            f"({now.strftime(_AMZ_DATE)} + {minutes} min.) Check the client's clock."
        )


def _payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    """The payload hash the client signed: X-Amz-Content-SHA256 if sent (checked against the body)."""
    actual = hashlib.sha256(body).hexdigest()
    claimed = (_header_values(headers, "x-amz-content-sha256") or [""])[0].strip()
    if not claimed:
        return actual
    if claimed == UNSIGNED_PAYLOAD:
        return claimed
    if claimed.lower() != actual:
        # Otherwise the body could be swapped under a valid signature.
        raise InvalidSignatureError(
            "The provided 'x-amz-content-sha256' header does not match what was computed from the request body."
        )
    return claimed


def verify_sigv4(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    access_key_id: str,
    secret_access_key: str,
    signing_names: Collection[str],
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
) -> None:
    """Check a request's SigV4 ``Authorization`` header against the configured key pair.

    Any region is accepted (it is whatever the client was configured with); the service in the
    credential scope must be one of ``signing_names``.

    Args:
        method: The HTTP method.
        raw_path: The path as sent on the wire (percent-encoded), without the query string.
        query_string: The raw query string, without ``?``.
        headers: The request headers; a mapping with ``getlist`` (Starlette's Headers) keeps repeats.
        body: The request body.
        access_key_id: The one access key id accepted.
        secret_access_key: Its secret.
        signing_names: Accepted services in the credential scope (the models' signing names, e.g.
            ``mobiletargeting`` for Pinpoint, ``ses`` for SESv2).
        now: The current time.
        max_skew: How far the request's signing time may be from ``now``.

    Raises:
        MissingAuthenticationTokenError: no ``Authorization`` header.
        IncompleteSignatureError: a malformed ``Authorization`` header or no signed date.
        UnrecognizedClientError: another access key id.
        InvalidSignatureError: the signature does not match, the scope is wrong, or the request is
            outside ``max_skew``.
    """
    authorization = (_header_values(headers, "authorization") or [""])[0]
    if not authorization.strip():
        raise MissingAuthenticationTokenError(
            "Missing Authentication Token: the request has no Authorization header. Sign requests with "
            "AWS Signature Version 4 (an AWS SDK with credentials does this)."
        )
    credential, signed_headers, signature = _parse_authorization(authorization)
    key_id, scope_date, region, service, _ = credential
    if not hmac.compare_digest(key_id.encode(), access_key_id.encode()):
        raise UnrecognizedClientError(
            "The security token included in the request is invalid. "
            "Use the access key id this sojourn server is configured with."
        )
    if service not in signing_names:
        raise InvalidSignatureError(
            f"Credential should be scoped to correct service: '{' or '.join(sorted(signing_names))}', "
            f"not '{service}'."
        )
    if "host" not in signed_headers:
        raise InvalidSignatureError("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    amz_date, signed_at = _request_time(headers, signed_headers)
    if amz_date[:8] != scope_date:
        raise InvalidSignatureError(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    _check_clock(amz_date, signed_at, now, max_skew)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query_string(query_string),
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            _payload_hash(headers, body),
        ]
    )
    scope = f"{scope_date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest(),
        ]
    )
    key = signing_key(secret_access_key, scope_date, region, service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        # AWS's wording, plus the strings we computed: comparing them with the client's debug log
        # (botocore logs both) shows what differs.
        raise InvalidSignatureError(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
            f"\n\nThe Canonical String for this request should have been\n'{canonical_request}'"
            f"\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
        )
