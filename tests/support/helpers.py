"""Small helpers shared by the tests (in the spirit of temporalio/sdk-python's tests/helpers)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sojourn.stack import free_local_port

T = TypeVar("T")


def unique(prefix: str = "t") -> str:
    """A short unique name for an app, queue or journey of one test."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_local_port()


async def assert_eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, interval: float = 0.2
) -> T:
    """Await ``check`` until it stops raising AssertionError, or fail after ``timeout`` seconds.

    Returns:
        What ``check`` returned the first time it passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


async def skip_time_until_done(env: Any, handle: Any) -> Any:
    """Await a workflow's result on the time-skipping server, letting its timers jump ahead meanwhile.

    (Handles that ``get_workflow_handle`` returns do not unlock time skipping by themselves.)
    """
    async with env.time_skipping_unlocked():
        return await handle.result()


HISTORIES = Path(__file__).resolve().parent.parent / "engine" / "histories"


async def record_histories(client: Any, workflow_ids: list[str], name: str) -> None:
    """With SOJOURN_RECORD_HISTORIES=1, save these workflows' histories for the replay tests."""
    if os.environ.get("SOJOURN_RECORD_HISTORIES") != "1":
        return
    HISTORIES.mkdir(exist_ok=True)
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        kind = (
            "cohort"
            if "/cohort/" in workflow_id
            else "campaign"
            if workflow_id.startswith("campaign/")
            else "journey"
        )
        (HISTORIES / f"{name}_{kind}.json").write_text(history.to_json())
