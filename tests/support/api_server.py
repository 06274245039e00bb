"""Serve the API (or any ASGI app) with uvicorn on a free port, in its own thread and event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import uvicorn
from botocore.config import Config

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.settings import Settings
from sojourn.store.db import create_engine
from tests.support.helpers import free_port

ACCESS_KEY_ID = "SOJOURNTESTKEY"
SECRET_ACCESS_KEY = "sojourn-test-secret"


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="sojourn-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def serve_api(database_url: str, **settings: Any) -> Iterator[tuple[str, Settings]]:
    """The whole API app (``create_app``: pinpoint, sesv2, pages); yields (base URL, the settings it runs with)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = Settings(
        database_url=database_url,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        public_url=url,
        **settings,
    )
    state = AppState(db=create_engine(database_url, pool_size=2), settings=config)
    app: Any = create_app(config, state)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="sojourn-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield url, config
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def boto3_client(
    service: str,
    endpoint_url: str,
    access_key_id: str = ACCESS_KEY_ID,
    secret_access_key: str = SECRET_ACCESS_KEY,
) -> Any:
    """A real boto3 client of ``service`` on ``endpoint_url``, signed with the given key, without retries."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )
