"""ISO-8601 durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sojourn.domain.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT10S", timedelta(seconds=10)),
        ("P2D", timedelta(days=2)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT1H30M", timedelta(minutes=90)),
        ("P1W", timedelta(days=7)),
        ("pt0.5s", timedelta(seconds=0.5)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "10S", "P1M", "P1Y", "P1DT", "PT-1S"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601 duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "delta",
    [
        timedelta(seconds=10),
        timedelta(days=2),
        timedelta(days=1, hours=2, minutes=3, seconds=4),
        timedelta(0),
    ],
)
def test_round_trip(delta: timedelta) -> None:
    assert parse_duration(format_duration(delta)) == delta
