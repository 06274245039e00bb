"""``sojourn up`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.helpers import free_port


class SojournProcess:
    """``python -m sojourn up`` with its own data dir and free ports."""

    def __init__(self, data_dir: Path, smtp_url: str, **env: str) -> None:
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "SOJOURN_DATA_DIR": str(data_dir),
            "SOJOURN_API_PORT": str(self.api_port),
            "SOJOURN_POSTGRES_PORT": str(free_port()),
            "SOJOURN_TEMPORAL_PORT": str(free_port()),
            "SOJOURN_TEMPORAL_UI_PORT": str(free_port()),
            "SOJOURN_SMTP_URL": smtp_url,
            "SOJOURN_LOG_LEVEL": "WARNING",
            **env,
        }
        self.log = data_dir / "up.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 120) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sojourn", "up"], env=self.env, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sojourn up exited early:\n{self.log.read_text()}")
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1)
                if "sojourn is up" in self.log.read_text():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"sojourn up did not come up:\n{self.log.read_text()}")

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a person would; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return int(self.process.returncode)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "pinpoint",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.env.get("SOJOURN_ACCESS_KEY_ID", "SOJOURNDEVACCESSKEY"),
            aws_secret_access_key=self.env.get("SOJOURN_SECRET_ACCESS_KEY", "sojourn-dev-secret-access-key"),
            config=Config(retries={"max_attempts": 1}),
        )
