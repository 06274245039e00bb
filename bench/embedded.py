"""The embedded stack a benchmark runs on: PostgreSQL and the Temporal dev server in a temporary directory,
the API handlers in process, and a ``sojourn worker`` process started on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from sojourn.api.state import AppState
from sojourn.engine.client import connect
from sojourn.settings import Settings
from sojourn.stack import EmbeddedPostgres, TemporalDevServer, free_local_port
from sojourn.store.db import create_engine
from sojourn.store.migrate import upgrade_async


@dataclass
class BenchStack:
    """A running stack: settings, the in-process API state and Temporal client, and the worker process."""

    settings: Settings
    state: AppState
    client: Client
    temporal_address: str
    worker: subprocess.Popen[bytes] | None = field(default=None)

    def start_worker(self, profile: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """Start ``sojourn worker`` on this stack (extra ``SOJOURN_*`` variables in ``env``).

        Args:
            profile: Run the worker under cProfile and write its stats to this file when it stops.
        """
        profiler = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
        self.worker = subprocess.Popen(
            [*profiler, "-m", "sojourn", "worker"],
            env={
                **os.environ,
                "SOJOURN_DATABASE_URL": self.settings.database_url or "",
                "SOJOURN_TEMPORAL_ADDRESS": self.temporal_address,
                "SOJOURN_SMTP_URL": self.settings.smtp_url,
                "SOJOURN_TASK_QUEUE": self.settings.task_queue,
                "SOJOURN_LOG_LEVEL": os.environ.get("SOJOURN_LOG_LEVEL", "WARNING"),
                **env,
            },
        )
        return self.worker


@asynccontextmanager
async def embedded_stack() -> AsyncIterator[BenchStack]:
    """Start PostgreSQL (migrated) and Temporal; stop them and the worker at the end."""
    with tempfile.TemporaryDirectory(prefix="sojourn-bench-") as tmp:
        data = Path(tmp)
        pg = EmbeddedPostgres(data / "pg", port=free_local_port())
        pg.start()
        pg.ensure_database("sojourn")
        temporal = TemporalDevServer(data / "temporal", port=free_local_port(), ui_port=None)
        temporal.start(log_file=data / "temporal.log")
        stack: BenchStack | None = None
        try:
            settings = Settings(
                database_url=pg.url("sojourn"),
                temporal_address=temporal.address,
                smtp_url="null://",
                task_queue=f"bench-{uuid.uuid4().hex[:8]}",
            )
            await upgrade_async(settings.database_url or "")
            client = await connect(settings)
            state = AppState(db=create_engine(settings.database_url or "", pool_size=10), settings=settings)
            state.use_temporal(client)
            stack = BenchStack(settings, state, client, temporal.address)
            yield stack
            await state.db.dispose()
        finally:
            if stack is not None and stack.worker is not None:
                stack.worker.terminate()
                stack.worker.wait(30)
            temporal.stop()
            pg.stop()
