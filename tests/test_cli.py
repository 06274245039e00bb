"""The sojourn command line, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def sojourn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sojourn", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_every_command() -> None:
    out = sojourn("--help")
    assert out.returncode == 0
    for command in ("up", "api", "worker", "migrate", "deploy", "journeys"):
        assert command in out.stdout


def test_review_reports_errors_and_exits_1(tmp_path: Path) -> None:
    source = tmp_path / "j.py"
    source.write_text(
        "from sojourn.dsl import Journey, email, split_on\n"
        "ok = Journey('fine', segment='s').then(email('a'), split_on('opened', of='a', yes=[email('b')]))\n"
        "bad = Journey('broken', segment='s').then(email('a'), split_on('opened', of='nope'))\n"
    )
    out = sojourn("journeys", "review", str(source))
    assert out.returncode == 1, out.stderr
    assert "journey fine: ready" in out.stdout
    assert "recommendation: split 'openedsplit' is evaluated immediately after a" in out.stdout
    assert "journey broken: cannot be published" in out.stdout
    assert (
        "error: activity 'openedsplit': EventCondition.MessageActivity 'nope' is not a message activity"
        in out.stdout
    )


def test_review_of_the_shipped_examples_passes() -> None:
    for example in sorted(Path(__file__).resolve().parent.parent.joinpath("workflows").glob("*.py")):
        out = sojourn("journeys", "review", str(example))
        assert out.returncode == 0, out.stdout + out.stderr
