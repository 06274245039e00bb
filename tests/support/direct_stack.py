"""The API (create_app, as `sojourn api` serves it) with real SMTP and webhook providers, for direct-send tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from sojourn.api.app import create_app
from sojourn.settings import Settings
from tests.support.api_server import serve
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookSink

ACCESS_KEY_ID = "SOJOURNDIRECTKEY"
SECRET_ACCESS_KEY = "sojourn-direct-secret"
PROVIDER_SECRET = "provider-secret"


@dataclass
class DirectStack:
    """A running API with its sinks."""

    url: str
    settings: Settings
    smtp: SmtpSink
    webhook: WebhookSink
    data_dir: Path

    def pinpoint(self) -> Any:
        return boto3.client(
            "pinpoint",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(retries={"max_attempts": 1}),
        )


@contextmanager
def direct_stack(database_url: str, **overrides: Any) -> Iterator[DirectStack]:
    """Start an SMTP sink, a webhook provider and the API (uvicorn on its own thread and loop)."""
    smtp = SmtpSink()
    smtp.start()
    webhook = WebhookSink(PROVIDER_SECRET).start()
    with tempfile.TemporaryDirectory(prefix="sojourn-direct-") as tmp:
        settings = Settings(
            database_url=database_url,
            data_dir=Path(tmp),
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            smtp_url=smtp.url,
            sms_provider_url=f"{webhook.url}/sms",
            sms_provider_secret=PROVIDER_SECRET,
            push_provider_url=f"{webhook.url}/push",
            push_provider_secret=PROVIDER_SECRET,
            voice_provider_url=f"{webhook.url}/voice",
            voice_provider_secret=PROVIDER_SECRET,
            custom_provider_url="file://custom.jsonl",
            custom_provider_secret=PROVIDER_SECRET,
            **overrides,
        )
        app: Any = create_app(settings)
        try:
            with serve(app) as url:
                yield DirectStack(url, settings, smtp, webhook, Path(tmp))
        finally:
            webhook.stop()
            smtp.stop()
