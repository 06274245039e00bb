"""Wall times in zones across DST changes, and the quiet-time window test."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from sojourn.domain.local_time import in_quiet_time, utc_to_wall, wall_to_utc, zone_or_utc

NEW_YORK = ZoneInfo("America/New_York")


def test_wall_time_maps_to_the_zones_offset_on_each_side_of_a_change() -> None:
    assert wall_to_utc(datetime(2026, 3, 7, 9, 0), NEW_YORK) == datetime(2026, 3, 7, 14, 0, tzinfo=UTC)
    assert wall_to_utc(datetime(2026, 3, 9, 9, 0), NEW_YORK) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_a_wall_time_in_the_spring_gap_shifts_forward() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: it is taken as 03:30 EDT.
    instant = wall_to_utc(datetime(2026, 3, 8, 2, 30), NEW_YORK)
    assert instant == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert utc_to_wall(instant, NEW_YORK) == datetime(2026, 3, 8, 3, 30)


def test_a_repeated_wall_time_is_its_first_occurrence() -> None:
    assert wall_to_utc(datetime(2026, 11, 1, 1, 30), NEW_YORK) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_unknown_zone_names_fall_back_to_utc() -> None:
    assert zone_or_utc("Mars/Olympus") is UTC
    assert zone_or_utc(None) is UTC
    assert utc_to_wall(datetime(2026, 1, 1, tzinfo=UTC), zone_or_utc("UTC+05:30")) == datetime(
        2026, 1, 1, 5, 30
    )


@pytest.mark.parametrize(
    ("at", "start", "end", "quiet"),
    [
        (time(23, 0), time(22, 0), time(7, 0), True),
        (time(3, 0), time(22, 0), time(7, 0), True),
        (time(7, 0), time(22, 0), time(7, 0), False),  # the end is exclusive
        (time(22, 0), time(22, 0), time(7, 0), True),  # the start inclusive
        (time(12, 0), time(22, 0), time(7, 0), False),
        (time(13, 0), time(12, 0), time(14, 0), True),
        (time(14, 0), time(12, 0), time(14, 0), False),
        (time(11, 59), time(12, 0), time(14, 0), False),
        (time(12, 0), time(12, 0), time(12, 0), False),  # an empty window
    ],
)
def test_quiet_time_windows_including_those_that_wrap_midnight(
    at: time, start: time, end: time, quiet: bool
) -> None:
    assert in_quiet_time(at, start, end) is quiet
    assert in_quiet_time(datetime.combine(datetime(2026, 5, 1).date(), at), start, end) is quiet
