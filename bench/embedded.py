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

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
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
async def embedded_stack(pg_stats: bool = False) -> AsyncIterator[BenchStack]:
    """Start PostgreSQL (migrated) and Temporal; stop them and the worker at the end.

    Args:
        pg_stats: Load ``pg_stat_statements`` (see :func:`top_statements`).
    """
    with tempfile.TemporaryDirectory(prefix="sojourn-bench-") as tmp:
        data = Path(tmp)
        pg = EmbeddedPostgres(data / "pg", port=free_local_port())
        pg.start()
        if pg_stats:
            with (data / "pg" / "postgresql.conf").open("a") as conf:
                conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
            pg.stop()
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
            if pg_stats:
                engine = create_engine(settings.database_url or "")
                async with engine.begin() as conn:
                    await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                await engine.dispose()
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


async def top_statements(db: AsyncEngine, limit: int = 12) -> str:
    """The statements that took PostgreSQL the most time so far (needs ``embedded_stack(pg_stats=True)``):
    total and mean milliseconds, calls, rows, and the statement's first 160 characters."""
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT total_exec_time, mean_exec_time, calls, rows, "
                "regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements "
                "ORDER BY total_exec_time DESC LIMIT :n"
            ),
            {"n": limit},
        )
        return "\n".join(
            f"{total:10.0f} ms {mean:8.2f} ms/call {calls:7d} calls {n:9d} rows  {query[:160]}"
            for total, mean, calls, n, query in rows
        )
