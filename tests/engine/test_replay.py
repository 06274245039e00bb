"""Replay recorded histories of every workflow type: a change to workflow code must not break running journeys.

Histories are recorded from the journey tests with ``SOJOURN_RECORD_HISTORIES=1 pytest tests/engine``. Keep old
files when workflow code changes: each one is a journey that may still be running somewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from sojourn.engine.worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_workflow_type_has_a_recorded_history() -> None:
    recorded = {path.stem.rsplit("_", 1)[-1] for path in HISTORIES}
    assert recorded == {"journey", "cohort", "campaign"}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"
