"""Channel providers for SMS, PUSH (APNs/FCM/Baidu/ADM payloads), VOICE and CUSTOM messages.

A provider delivers a batch of :class:`OutgoingMessage` and answers a :class:`ProviderResult` per message id.
Like the email transport, it calls ``commit(ids)`` with the ids the far side accepted, so a caller marks them
``sent`` in the message ledger (``send_batch(messages, commit)``, the shape a journey or campaign batch step
calls). Two providers:

- :class:`WebhookProvider` POSTs each message as JSON to a configured URL, signed with HMAC-SHA256
  (:mod:`sojourn.channels.signing`), with the deterministic sojourn message id as ``Idempotency-Key``. The
  idempotency key is the exactly-once guarantee: a retry after a timeout or a crash (before the ledger said
  ``sent``) sends the same key again and the provider must answer it without delivering twice. 5xx and
  timeouts are retried with exponential backoff; 429/503 honour ``Retry-After`` and slow the lane's
  :class:`~sojourn.channels.rate.AimdRate` down.
- :class:`FileProvider` appends one JSON line per message to a file (development, demos, tests).

``SOJOURN_<CHANNEL>_PROVIDER_URL`` picks the provider (:func:`provider_from_url`): ``https://...`` (or
``http://``) is a webhook, ``file://`` the file provider (a bare ``file://`` writes
``<data dir>/<channel>-messages.jsonl``), empty means "not configured".
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from sojourn.channels.priority import LaneGate
from sojourn.channels.rate import AimdRate
from sojourn.channels.signing import signed_headers

log = logging.getLogger(__name__)

SUCCESSFUL = "SUCCESSFUL"
THROTTLED = "THROTTLED"
TEMPORARY_FAILURE = "TEMPORARY_FAILURE"
PERMANENT_FAILURE = "PERMANENT_FAILURE"
UNKNOWN_FAILURE = "UNKNOWN_FAILURE"
OPT_OUT = "OPT_OUT"
DUPLICATE = "DUPLICATE"
DELIVERY_STATUSES = frozenset(
    {SUCCESSFUL, THROTTLED, TEMPORARY_FAILURE, PERMANENT_FAILURE, UNKNOWN_FAILURE, OPT_OUT, DUPLICATE}
)

#: The channels a provider serves (email goes through :mod:`sojourn.channels.email`).
PROVIDER_CHANNELS = ("SMS", "PUSH", "VOICE", "CUSTOM")
#: Endpoint channel types that are one "PUSH" provider channel; the message carries the type.
PUSH_CHANNEL_TYPES = frozenset(
    {"PUSH", "GCM", "APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "ADM", "BAIDU"}
)


def provider_channel(channel_type: str) -> str | None:
    """The sending channel of an endpoint ChannelType: EMAIL, SMS, PUSH, VOICE, CUSTOM, or None (IN_APP)."""
    if channel_type in PUSH_CHANNEL_TYPES:
        return "PUSH"
    if channel_type in ("EMAIL", "SMS", "VOICE", "CUSTOM"):
        return channel_type
    return None


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one address.

    Attributes:
        message_id: The ledger's deterministic id (the webhook's ``Idempotency-Key``).
        app_id: The application.
        channel: SMS, PUSH, VOICE or CUSTOM.
        channel_type: The endpoint's ChannelType (GCM, APNS, ... for push; else the channel).
        address: Phone number, push token or custom address.
        content: The rendered message fields (``Body``, ``Title``, ``Data``, ... as in Pinpoint's
            SMSMessage/GCMMessage/APNSMessage/VoiceMessage).
        endpoint_id: The endpoint, when the message was addressed to one.
        context: The request's Context map (copied into delivery events).
        trace_id: The request's TraceId.
    """

    message_id: str
    app_id: str
    channel: str
    channel_type: str
    address: str
    content: dict[str, Any]
    endpoint_id: str | None = None
    context: dict[str, str] = field(default_factory=dict)
    trace_id: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON body of the webhook request."""
        body: dict[str, Any] = {
            "MessageId": self.message_id,
            "ApplicationId": self.app_id,
            "Channel": self.channel,
            "ChannelType": self.channel_type,
            "Address": self.address,
            "Message": self.content,
        }
        if self.endpoint_id is not None:
            body["EndpointId"] = self.endpoint_id
        if self.context:
            body["Context"] = self.context
        if self.trace_id:
            body["TraceId"] = self.trace_id
        return body


@dataclass(frozen=True)
class ProviderResult:
    """What the provider said about one message.

    Attributes:
        delivery_status: One of Pinpoint's DeliveryStatus values.
        status_code: The provider's HTTP status (0: no answer).
        status_message: The provider's words, or ours.
        provider_message_id: The provider's id of the message (delivery callbacks may name it).
        retry_after: Seconds the provider asked us to wait (429/503).
        updated_token: A new push token the provider reported (Pinpoint's UpdatedToken).
    """

    delivery_status: str
    status_code: int
    status_message: str = ""
    provider_message_id: str | None = None
    retry_after: float | None = None
    updated_token: str | None = None

    @property
    def ok(self) -> bool:
        """The provider accepted the message."""
        return self.delivery_status == SUCCESSFUL

    @property
    def retryable(self) -> bool:
        """Sending the same message again may work (throttled, 5xx, timeout)."""
        return self.delivery_status in (THROTTLED, TEMPORARY_FAILURE)


CommitFn = Callable[[Sequence[str]], Awaitable[None]]


class ChannelProvider(Protocol):
    """Delivers messages of one channel; calls ``commit`` with the ids the far side accepted."""

    async def send_batch(
        self, messages: Sequence[OutgoingMessage], commit: CommitFn
    ) -> dict[str, ProviderResult]:
        """Send ``messages``; return a result per message id."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class ProviderNotConfiguredError(LookupError):
    """No provider is configured for a channel (its ``SOJOURN_<CHANNEL>_PROVIDER_URL`` is empty or invalid)."""


# ---- pure rules of the webhook contract ----


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def classify_response(status: int, body: bytes, headers: Mapping[str, str], now: datetime) -> ProviderResult:
    """The result of one webhook response.

    2xx is SUCCESSFUL unless the JSON body names another ``DeliveryStatus``; 429 is THROTTLED; 408, 425, 5xx
    are TEMPORARY_FAILURE (retried); other 4xx are PERMANENT_FAILURE. ``MessageId``, ``StatusMessage`` and
    ``UpdatedToken`` are read from a JSON object body when present.

    Args:
        status: HTTP status.
        body: Response body.
        headers: Response headers (case-insensitive mapping).
        now: Current time (for an HTTP-date ``Retry-After``).
    """
    parsed: dict[str, Any] = {}
    try:
        loaded = json.loads(body) if body else {}
        if isinstance(loaded, dict):
            parsed = loaded
    except ValueError:
        pass
    message = str(
        parsed.get("StatusMessage") or parsed.get("Message") or body[:200].decode("utf-8", "replace")
    )
    provider_id = parsed.get("MessageId") or parsed.get("ProviderMessageId")
    token = parsed.get("UpdatedToken")
    if 200 <= status < 300:
        delivery = str(parsed.get("DeliveryStatus") or SUCCESSFUL)
        if delivery not in DELIVERY_STATUSES:
            delivery = UNKNOWN_FAILURE
            message = f"the provider answered an unknown DeliveryStatus {parsed.get('DeliveryStatus')!r}"
    elif status == 429:
        delivery = THROTTLED
    elif status in (408, 425) or status >= 500:
        delivery = TEMPORARY_FAILURE
    else:
        delivery = PERMANENT_FAILURE
    return ProviderResult(
        delivery_status=delivery,
        status_code=status,
        status_message=message or f"HTTP {status}",
        provider_message_id=str(provider_id) if provider_id else None,
        retry_after=parse_retry_after(headers.get("retry-after"), now) if status in (429, 503) else None,
        updated_token=str(token) if token else None,
    )


def is_throttle(result: ProviderResult) -> bool:
    """The provider said "slow down" (429, or 503 with or without Retry-After)."""
    return result.status_code in (429, 503)


def retry_delay(attempt: int, retry_after: float | None, *, base: float, cap: float) -> float:
    """Seconds before attempt ``attempt + 1``: the provider's Retry-After, else ``base * 2**attempt``, capped."""
    if retry_after is not None:
        return min(cap, retry_after)
    return min(cap, base * (2**attempt))


# ---- the webhook provider ----


class WebhookProvider:
    """POSTs each message to ``url`` (see the module docstring and the README for the contract).

    Args:
        url: The provider's endpoint.
        secret: HMAC secret shared with the provider.
        rate: The lane's rate controller (shared by every request of this provider).
        gate: When set, this is a bulk-lane provider: every request first waits for its turn.
        concurrency: Requests in flight at once.
        max_attempts: Tries per message (5xx, timeouts and throttling are retried).
        timeout: Seconds per request.
        backoff_base: First retry delay without Retry-After; doubles per attempt.
        backoff_cap: Longest single wait (a longer Retry-After ends the attempts as THROTTLED).
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        rate: AimdRate,
        gate: LaneGate | None = None,
        concurrency: int = 8,
        max_attempts: int = 4,
        timeout: float = 10.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.rate = rate
        self.gate = gate
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._slots = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    async def send_batch(
        self, messages: Sequence[OutgoingMessage], commit: CommitFn
    ) -> dict[str, ProviderResult]:
        """Send every message (concurrently, within the lane's slots); commit the accepted ones."""
        results = await asyncio.gather(*(self._send_one(m) for m in messages))
        accepted = [m.message_id for m, r in zip(messages, results, strict=True) if r.ok]
        if accepted:
            await commit(accepted)
        return {m.message_id: r for m, r in zip(messages, results, strict=True)}

    async def _send_one(self, message: OutgoingMessage) -> ProviderResult:
        body = json.dumps(message.payload(), ensure_ascii=False, separators=(",", ":")).encode()
        result = ProviderResult(UNKNOWN_FAILURE, 0, "not sent")
        async with self._slots:
            for attempt in range(self.max_attempts):
                if self.gate is not None:
                    await self.gate.bulk_turn()
                wait = self.rate.reserve(time.monotonic())
                if wait > self.backoff_cap:
                    return ProviderResult(
                        THROTTLED,
                        429,
                        f"the provider asked to wait {wait:.0f}s; not retried within this call",
                    )
                if wait > 0:
                    await asyncio.sleep(wait)
                result = await self._post(message, body)
                if result.ok:
                    self.rate.on_success(time.monotonic())
                    return result
                if is_throttle(result):
                    self.rate.on_throttle(time.monotonic(), result.retry_after)
                if not result.retryable or attempt == self.max_attempts - 1:
                    return result
                delay = retry_delay(attempt, result.retry_after, base=self.backoff_base, cap=self.backoff_cap)
                if result.retry_after is not None and result.retry_after > self.backoff_cap:
                    return result
                log.info(
                    "provider %s: message %s got %s %s; retrying in %.2fs",
                    self.url,
                    message.message_id,
                    result.status_code,
                    result.delivery_status,
                    delay,
                )
                await asyncio.sleep(delay)
        return result

    async def _post(self, message: OutgoingMessage, body: bytes) -> ProviderResult:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.message_id,
            "User-Agent": "sojourn",
            **signed_headers(self.secret, int(time.time()), body),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as err:
            # The provider may have it: the retry carries the same Idempotency-Key.
            return ProviderResult(TEMPORARY_FAILURE, 0, f"timed out: {type(err).__name__}")
        except httpx.TransportError as err:
            return ProviderResult(TEMPORARY_FAILURE, 0, f"could not reach the provider: {err!r}"[:300])
        return classify_response(response.status_code, response.content, response.headers, datetime.now(UTC))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


# ---- the file provider ----


class FileProvider:
    """Appends one JSON line per message to ``path`` (the line is the webhook payload plus ``SentAt``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def send_batch(
        self, messages: Sequence[OutgoingMessage], commit: CommitFn
    ) -> dict[str, ProviderResult]:
        """Write the lines, then commit every message."""
        now = datetime.now(UTC).isoformat()
        lines = "".join(
            json.dumps({**m.payload(), "SentAt": now}, ensure_ascii=False) + "\n" for m in messages
        )
        async with self._lock:
            await asyncio.to_thread(self._append, lines)
        await commit([m.message_id for m in messages])
        return {
            m.message_id: ProviderResult(
                SUCCESSFUL, 200, f"written to {self.path.name}", f"file-{m.message_id}"
            )
            for m in messages
        }

    def _append(self, lines: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(lines)

    async def close(self) -> None:
        """Nothing to release."""


def file_provider_path(url: str, channel: str, data_dir: Path) -> Path:
    """Where ``file://...`` writes: a bare ``file://`` → ``<data dir>/<channel>-messages.jsonl``; relative paths
    are under the data dir; ``file:///abs/path`` is absolute."""
    parts = urlsplit(url)
    raw = (parts.netloc or "") + (parts.path or "")
    if not raw:
        return data_dir / f"{channel.lower()}-messages.jsonl"
    path = Path(raw)
    return path if path.is_absolute() else data_dir / path


def provider_from_url(
    url: str | None,
    secret: str | None,
    *,
    channel: str,
    data_dir: Path,
    rate: AimdRate,
    gate: LaneGate | None = None,
    concurrency: int = 8,
) -> ChannelProvider:
    """The provider a ``SOJOURN_<CHANNEL>_PROVIDER_URL`` names.

    Raises:
        ProviderNotConfiguredError: The URL is empty, has an unknown scheme, or a webhook has no secret.
    """
    setting = f"SOJOURN_{channel}_PROVIDER_URL"
    if not url:
        raise ProviderNotConfiguredError(
            f"no {channel} provider is configured: set {setting} to an https:// webhook URL "
            f"(with SOJOURN_{channel}_PROVIDER_SECRET) or to file:// for the file provider"
        )
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FileProvider(file_provider_path(url, channel, data_dir))
    if scheme in ("http", "https"):
        if not secret:
            raise ProviderNotConfiguredError(
                f"SOJOURN_{channel}_PROVIDER_SECRET is empty: webhook requests are always signed, set a secret"
            )
        return WebhookProvider(url, secret, rate=rate, gate=gate, concurrency=concurrency)
    raise ProviderNotConfiguredError(f"{setting} must start with https://, http:// or file://, got {url!r}")
