"""Re-entry rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sojourn.domain.entry import EntryHistory, entry_verdict

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("history", "in_segment", "cap", "interval", "verdict"),
    [
        (None, True, 0, None, None),
        (None, False, 0, None, "FILTERED_OUT_BY_SEGMENT"),
        (EntryHistory(1, True, NOW), True, 0, None, "ACTIVE_ENDPOINT_REJECTED"),
        (EntryHistory(1, False, NOW - timedelta(days=1)), True, 0, None, None),
        (EntryHistory(2, False, NOW - timedelta(days=1)), True, 2, None, "REENTRY_CAP_EXCEEDED"),
        (EntryHistory(1, False, NOW - timedelta(days=1)), True, 2, None, None),
        (
            EntryHistory(1, False, NOW - timedelta(minutes=30)),
            True,
            0,
            timedelta(hours=1),
            "REENTRY_INTERVAL_NOT_ELAPSED",
        ),
        (EntryHistory(1, False, NOW - timedelta(hours=2)), True, 0, timedelta(hours=1), None),
    ],
)
def test_entry_verdict(
    history: EntryHistory | None, in_segment: bool, cap: int, interval: timedelta | None, verdict: str | None
) -> None:
    assert entry_verdict(history, in_segment=in_segment, cap=cap, interval=interval, now=NOW) == verdict
