"""A real HTTP provider for tests: verifies sojourn's signatures, dedupes Idempotency-Keys, can throttle."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sojourn.channels.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify


@dataclass
class Delivery:
    """One accepted message."""

    path: str
    key: str
    payload: dict[str, Any]
    provider_message_id: str


@dataclass
class WebhookSink:
    """ThreadingHTTPServer on 127.0.0.1 and a free port.

    Attributes:
        secret: What signatures must be made with (a bad one is answered 401 and counted).
        throttle_first: Answer this many requests 429 (with ``retry_after``) before accepting any.
        fail_first: Then answer this many 500 before accepting.
        status_for_address: Fixed answers by message Address (e.g. 400 for a bad number).
        delay: Seconds to sleep before answering each request (a slow provider).
        slow_first: Sleep ``delay`` only for this many requests (0: every request).
    """

    secret: str
    throttle_first: int = 0
    retry_after: str | None = "1"
    fail_first: int = 0
    status_for_address: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    slow_first: int = 0
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    requests: list[tuple[str, int]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, answer = sink.answer(self.path, dict(self.headers.items()), body)
                if sink.delay and (not sink.slow_first or len(sink.requests) <= sink.slow_first):
                    time.sleep(sink.delay)
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
        lowered = {k.lower(): v for k, v in headers.items()}
        try:
            verify(
                self.secret,
                timestamp=lowered.get(TIMESTAMP_HEADER.lower()),
                signature=lowered.get(SIGNATURE_HEADER.lower()),
                body=body,
                now=time.time(),
            )
        except SignatureError as err:
            with self.lock:
                self.bad_signatures += 1
            return 401, {}, {"Message": str(err)}
        payload = json.loads(body)
        key = lowered.get("idempotency-key", "")
        with self.lock:
            n = len(self.requests)
            if n < self.throttle_first:
                self.requests.append((key, 429))
                return (
                    429,
                    ({"Retry-After": self.retry_after} if self.retry_after else {}),
                    {"Message": "slow down"},
                )
            if n < self.throttle_first + self.fail_first:
                self.requests.append((key, 500))
                return 500, {}, {"Message": "try again"}
            fixed = self.status_for_address.get(payload.get("Address", ""))
            if fixed is not None:
                self.requests.append((key, fixed))
                return fixed, {}, {"StatusMessage": f"refused with {fixed}"}
            self.requests.append((key, 200))
            if key not in self.deliveries:
                self.deliveries[key] = Delivery(path, key, payload, f"prov-{uuid.uuid4().hex[:12]}")
            delivery = self.deliveries[key]
        answer: dict[str, Any] = {"MessageId": delivery.provider_message_id}
        if payload.get("Address") == "token-to-refresh":
            answer["UpdatedToken"] = "token-refreshed"
        return 200, {}, answer

    def delivered_to(self, address: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries.values() if d.payload.get("Address") == address]
