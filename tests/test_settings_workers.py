"""How many worker processes a machine runs by default."""

from __future__ import annotations

import pytest

from sojourn.settings import Settings, default_worker_processes


@pytest.mark.parametrize(("cpus", "processes"), [(None, 1), (1, 1), (2, 1), (4, 2), (16, 8)])
def test_half_the_cores_leaving_the_rest_to_postgres_and_temporal(cpus: int | None, processes: int) -> None:
    assert default_worker_processes(cpus) == processes


def test_the_environment_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOJOURN_WORKER_PROCESSES", "3")
    assert Settings().worker_processes == 3
