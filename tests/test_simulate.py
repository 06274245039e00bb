"""`sojourn journeys simulate`: a journey run to its end against a synthetic audience, in skipped time."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from sojourn.dsl import Journey, email, split_on, wait
from sojourn.simulate import Audience, simulate

ROOT = Path(__file__).resolve().parent.parent


async def test_simulation_reports_each_activity(database_url: str) -> None:
    definition = (
        Journey("simulated", segment="ignored", quiet_time=("00:00", "00:01"))
        .then(
            email("hello"),
            wait(days=3),
            split_on("opened", of="hello", within=wait(days=1), yes=[email("thanks")], no=[email("again")]),
        )
        .definition()
    )
    n = 400
    report = await simulate(
        definition,
        Audience(size=n, zones=("UTC", ""), open_rate=0.5, click_rate=0.0),
        database_url=database_url,
    )
    assert report.journey["ENDPOINT_ENTERED"] == n and report.journey["ENDPOINT_LEFT"] == n
    split = next(m for aid, m in report.activities.items() if aid.startswith("openedsplit"))
    opened = split["Branch_1"]
    assert abs(opened - n / 2) <= 4 * math.sqrt(n * 0.25), opened
    thanks = next(m for aid, m in report.activities.items() if aid.startswith("thanks"))
    assert thanks["SUCCESS"] == opened
    assert report.elapsed_journey_time.startswith("4 days")


def test_the_cli_simulates_a_shipped_example() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sojourn",
            "journeys",
            "simulate",
            str(ROOT / "workflows" / "onboarding.py"),
            "--audience",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "simulated journey onboarding" in done.stdout
    assert "ENDPOINT_ENTERED 60" in done.stdout
    assert "running the journey" in done.stderr
