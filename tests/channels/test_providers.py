"""Channel providers: the webhook contract's rules, and the webhook and file providers against real sinks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sojourn.channels.providers import (
    FileProvider,
    OutgoingMessage,
    ProviderNotConfiguredError,
    WebhookProvider,
    classify_response,
    file_provider_path,
    parse_retry_after,
    provider_channel,
    provider_from_url,
    retry_delay,
)
from sojourn.channels.rate import AimdRate
from tests.support.webhook import WebhookSink

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "provider-secret"


def message(i: int, address: str | None = None, channel: str = "SMS") -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"m{i:04d}",
        app_id="app1",
        channel=channel,
        channel_type=channel,
        address=address or f"+1206555{i:04d}",
        content={"Body": f"hello {i}"},
        context={"order": str(i)},
        trace_id="trace-1",
    )


class Commits:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, ids: Sequence[str]) -> None:
        self.ids.extend(ids)


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink(SECRET).start()
    yield server
    server.stop()


# ---- pure rules ----


@pytest.mark.parametrize(("channel_type", "channel"), [
    ("SMS", "SMS"), ("GCM", "PUSH"), ("APNS_VOIP_SANDBOX", "PUSH"), ("BAIDU", "PUSH"), ("ADM", "PUSH"),
    ("VOICE", "VOICE"), ("CUSTOM", "CUSTOM"), ("EMAIL", "EMAIL"), ("IN_APP", None),
])  # fmt: skip
def test_provider_channel(channel_type: str, channel: str | None) -> None:
    assert provider_channel(channel_type) == channel


@pytest.mark.parametrize(("value", "seconds"), [
    ("3", 3.0), ("0.5", 0.5), (None, None), ("", None), ("soon", None),
    ("Mon, 23 Nov 2026 12:00:10 GMT", 10.0), ("Mon, 23 Nov 2026 11:00:00 GMT", 0.0),
])  # fmt: skip
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(("status", "body", "delivery", "provider_id"), [
    (200, b'{"MessageId": "p1"}', "SUCCESSFUL", "p1"),
    (202, b"", "SUCCESSFUL", None),
    (200, b'{"DeliveryStatus": "OPT_OUT", "StatusMessage": "number opted out"}', "OPT_OUT", None),
    (200, b'{"DeliveryStatus": "MAYBE"}', "UNKNOWN_FAILURE", None),
    (429, b"", "THROTTLED", None),
    (503, b"", "TEMPORARY_FAILURE", None),
    (500, b"oops", "TEMPORARY_FAILURE", None),
    (408, b"", "TEMPORARY_FAILURE", None),
    (400, b'{"Message": "bad number"}', "PERMANENT_FAILURE", None),
    (404, b"", "PERMANENT_FAILURE", None),
])  # fmt: skip
def test_classify_response(status: int, body: bytes, delivery: str, provider_id: str | None) -> None:
    result = classify_response(status, body, {"retry-after": "2"}, NOW)
    assert result.delivery_status == delivery and result.provider_message_id == provider_id
    assert result.status_code == status
    assert result.retry_after == (2.0 if status in (429, 503) else None)
    assert result.retryable == (delivery in ("THROTTLED", "TEMPORARY_FAILURE"))


def test_classify_response_reads_the_provider_words_and_updated_token() -> None:
    result = classify_response(200, b'{"MessageId": "p", "UpdatedToken": "new"}', {}, NOW)
    assert result.updated_token == "new"
    assert classify_response(400, b'{"Message": "bad number"}', {}, NOW).status_message == "bad number"


def test_retry_delay_doubles_and_honours_retry_after() -> None:
    assert [retry_delay(a, None, base=0.2, cap=5) for a in range(6)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5]
    assert retry_delay(0, 3.0, base=0.2, cap=5) == 3.0
    assert retry_delay(0, 30.0, base=0.2, cap=5) == 5


def test_file_provider_path(tmp_path: Path) -> None:
    assert file_provider_path("file://", "SMS", tmp_path) == tmp_path / "sms-messages.jsonl"
    assert file_provider_path("file://out/push.jsonl", "PUSH", tmp_path) == tmp_path / "out/push.jsonl"
    assert file_provider_path(f"file://{tmp_path}/abs.jsonl", "SMS", Path("x")) == tmp_path / "abs.jsonl"


@pytest.mark.parametrize(("url", "secret", "message"), [
    ("", "s", "no SMS provider is configured: set SOJOURN_SMS_PROVIDER_URL"),
    ("https://sms.example.com/send", "", "SOJOURN_SMS_PROVIDER_SECRET is empty"),
    ("ftp://sms.example.com", "s", "must start with https://, http:// or file://"),
])  # fmt: skip
def test_provider_from_url_errors(url: str, secret: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ProviderNotConfiguredError, match=message):
        provider_from_url(url, secret, channel="SMS", data_dir=tmp_path, rate=AimdRate(maximum=10))


# ---- the webhook provider against a real HTTP server ----


async def test_webhook_posts_signed_json_with_the_idempotency_key(sink: WebhookSink) -> None:
    provider = WebhookProvider(sink.url + "/sms", SECRET, rate=AimdRate(maximum=100))
    commits = Commits()
    try:
        results = await provider.send_batch([message(1), message(2)], commits)
    finally:
        await provider.close()

    assert sink.bad_signatures == 0
    assert {r.delivery_status for r in results.values()} == {"SUCCESSFUL"}
    assert sorted(commits.ids) == ["m0001", "m0002"]
    delivery = sink.deliveries["m0001"]
    assert delivery.path == "/sms" and results["m0001"].provider_message_id == delivery.provider_message_id
    assert delivery.payload == {
        "MessageId": "m0001",
        "ApplicationId": "app1",
        "Channel": "SMS",
        "ChannelType": "SMS",
        "Address": "+12065550001",
        "Message": {"Body": "hello 1"},
        "Context": {"order": "1"},
        "TraceId": "trace-1",
    }


async def test_webhook_with_the_wrong_secret_is_refused_permanently(sink: WebhookSink) -> None:
    provider = WebhookProvider(sink.url, "wrong", rate=AimdRate(maximum=100))
    commits = Commits()
    try:
        results = await provider.send_batch([message(1)], commits)
    finally:
        await provider.close()
    assert results["m0001"].delivery_status == "PERMANENT_FAILURE" and results["m0001"].status_code == 401
    assert commits.ids == [] and sink.bad_signatures == 1 and not sink.deliveries


async def test_webhook_retries_5xx_and_reports_4xx_without_retrying(sink: WebhookSink) -> None:
    sink.fail_first = 2
    sink.status_for_address = {"+19995550400": 400}
    provider = WebhookProvider(sink.url, SECRET, rate=AimdRate(maximum=100), backoff_base=0.01, concurrency=1)
    commits = Commits()
    try:
        results = await provider.send_batch([message(1), message(2, "+19995550400")], commits)
    finally:
        await provider.close()
    assert results["m0001"].ok and commits.ids == ["m0001"]
    bad = results["m0002"]
    assert bad.delivery_status == "PERMANENT_FAILURE" and bad.status_code == 400
    assert bad.status_message == "refused with 400"
    assert [status for key, status in sink.requests if key == "m0002"].count(400) == 1


async def test_webhook_gives_up_after_max_attempts_as_temporary_failure(sink: WebhookSink) -> None:
    sink.fail_first = 10
    provider = WebhookProvider(
        sink.url, SECRET, rate=AimdRate(maximum=100), backoff_base=0.01, max_attempts=3
    )
    commits = Commits()
    try:
        results = await provider.send_batch([message(1)], commits)
    finally:
        await provider.close()
    assert results["m0001"].delivery_status == "TEMPORARY_FAILURE" and results["m0001"].status_code == 500
    assert len(sink.requests) == 3 and commits.ids == []


async def test_throttling_backs_off_recovers_and_delivers_each_message_once(sink: WebhookSink) -> None:
    """The provider answers 429 (Retry-After: 1) to the first requests; every message still arrives once."""
    sink.throttle_first = 12
    rate = AimdRate(maximum=50, minimum=1, increase=10, cooldown=0.5)
    provider = WebhookProvider(sink.url, SECRET, rate=rate, concurrency=4, max_attempts=6)
    commits = Commits()
    messages = [message(i) for i in range(20)]
    try:
        results = await provider.send_batch(messages, commits)
        assert rate.throttles >= 4 and rate.rate < 50
        low = rate.rate
        # The provider has recovered: clean sending brings the rate back up by itself.
        more = [message(i) for i in range(100, 160)]
        results.update(await provider.send_batch(more, commits))
    finally:
        await provider.close()

    assert rate.rate > low
    assert {r.delivery_status for r in results.values()} == {"SUCCESSFUL"}
    assert len(sink.deliveries) == 80 and sorted(commits.ids) == sorted(results)
    accepted_keys = [key for key, status in sink.requests if status == 200]
    assert len(accepted_keys) == len(set(accepted_keys)) == 80
    assert sum(1 for _, status in sink.requests if status == 429) == 12


# ---- the file provider ----


async def test_file_provider_appends_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "sms.jsonl"
    provider = FileProvider(path)
    commits = Commits()
    results = await provider.send_batch([message(1), message(2)], commits)
    await provider.send_batch([message(3)], commits)

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["MessageId"] for line in lines] == ["m0001", "m0002", "m0003"]
    assert lines[0]["Message"] == {"Body": "hello 1"} and lines[0]["SentAt"].startswith("20")
    assert commits.ids == ["m0001", "m0002", "m0003"]
    assert results["m0001"].ok and results["m0001"].provider_message_id == "file-m0001"


async def test_a_timed_out_request_is_retried_with_the_same_idempotency_key(sink: WebhookSink) -> None:
    """The provider took the first request but answered too late: the retry must not deliver twice."""
    sink.delay, sink.slow_first = 1.0, 1
    provider = WebhookProvider(sink.url, SECRET, rate=AimdRate(maximum=100), timeout=0.3, backoff_base=0.01)
    commits = Commits()
    try:
        results = await provider.send_batch([message(1)], commits)
    finally:
        await provider.close()
    assert results["m0001"].ok and commits.ids == ["m0001"]
    assert [key for key, _ in sink.requests] == ["m0001", "m0001"]
    assert len(sink.deliveries) == 1
