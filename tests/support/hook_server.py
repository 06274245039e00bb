"""A real local https server standing in for a campaign FILTER hook (Pinpoint's Lambda as a webhook)."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HookAnswerFn = Callable[[dict[str, Any]], dict[str, Any]]


def keep_even(event: dict[str, Any]) -> dict[str, Any]:
    """Keep the endpoints whose id ends in an even number (``ep0``, ``ep2``, ...), unchanged."""
    return {k: v for k, v in event["Endpoints"].items() if int(k[2:]) % 2 == 0}


class HookServer:
    """An https server with a self-signed certificate for 127.0.0.1 that answers each POSTed event with
    ``answer(event)`` and records the events (``calls``).

    Args:
        directory: Where the certificate and key are written.
        answer: The hook's logic: event -> the map of endpoints it keeps.
    """

    def __init__(self, directory: Path, answer: HookAnswerFn = keep_even) -> None:
        self.cert = directory / "hook.pem"
        key = directory / "hook.key"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", str(key), "-out", str(self.cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.calls: list[dict[str, Any]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls.append(event)
                body = json.dumps(answer(event)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/filter"

    def client_tls(self) -> ssl.SSLContext:
        """A TLS context that trusts this server's certificate (the campaign activities' ``hook_tls``)."""
        return ssl.create_default_context(cafile=str(self.cert))


@contextmanager
def running_hook_server(directory: Path, answer: HookAnswerFn = keep_even) -> Iterator[HookServer]:
    """A started :class:`HookServer`, shut down on exit."""
    server = HookServer(directory, answer)
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
