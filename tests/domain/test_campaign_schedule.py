"""Campaign run times per frequency, DST-correct; missed runs; local-time slices; treatment cohorts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from sojourn.domain.campaign_schedule import (
    DueRun,
    LocalSlice,
    Run,
    ScheduleRule,
    add_months,
    due_run,
    local_slices,
    next_run,
    run_times,
    treatment_for_cohort,
)

NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rule(frequency: str, start: datetime, end: datetime | None = None, zone: object = UTC) -> ScheduleRule:
    return ScheduleRule(frequency=frequency, start=start, end=end, zone=zone)  # type: ignore[arg-type]


def local(runs: list[Run], zone: ZoneInfo) -> list[str]:
    return [r.at.astimezone(zone).strftime("%m-%d %H:%M") for r in runs]


def test_daily_at_nine_new_york_stays_at_nine_across_both_dst_changes() -> None:
    start = datetime(2026, 3, 6, 9, 0, tzinfo=NEW_YORK)
    runs = list(run_times(rule("DAILY", start, datetime(2026, 3, 10, 9, 0, tzinfo=NEW_YORK), NEW_YORK)))
    assert local(runs, NEW_YORK) == [
        "03-06 09:00",
        "03-07 09:00",
        "03-08 09:00",
        "03-09 09:00",
        "03-10 09:00",
    ]
    assert [r.at.hour for r in runs] == [14, 14, 13, 13, 13]  # EST, then EDT
    autumn = datetime(2026, 10, 31, 9, 0, tzinfo=NEW_YORK)
    runs = list(islice(run_times(rule("DAILY", autumn, zone=NEW_YORK)), 3))
    assert local(runs, NEW_YORK) == ["10-31 09:00", "11-01 09:00", "11-02 09:00"]
    assert [r.at.hour for r in runs] == [13, 14, 14]


def test_a_daily_time_in_the_spring_gap_shifts_forward_that_day_only() -> None:
    start = datetime(2026, 3, 7, 2, 30, tzinfo=NEW_YORK)
    runs = list(islice(run_times(rule("DAILY", start, zone=NEW_YORK)), 3))
    assert local(runs, NEW_YORK) == ["03-07 02:30", "03-08 03:30", "03-09 02:30"]


def test_hourly_runs_are_an_elapsed_hour_apart_across_a_change() -> None:
    start = datetime(2026, 3, 8, 0, 0, tzinfo=NEW_YORK)
    runs = list(islice(run_times(rule("HOURLY", start, zone=NEW_YORK)), 4))
    assert [r.at - start for r in runs] == [timedelta(hours=h) for h in range(4)]
    assert local(runs, NEW_YORK) == ["03-08 00:00", "03-08 01:00", "03-08 03:00", "03-08 04:00"]
    assert [r.no for r in runs] == [0, 1, 2, 3]


def test_weekly_keeps_weekday_and_wall_time() -> None:
    start = datetime(2026, 2, 23, 8, 15, tzinfo=NEW_YORK)  # a Monday
    runs = list(run_times(rule("WEEKLY", start, datetime(2026, 3, 23, 8, 15, tzinfo=NEW_YORK), NEW_YORK)))
    assert len(runs) == 5
    assert {r.at.astimezone(NEW_YORK).strftime("%a %H:%M") for r in runs} == {"Mon 08:15"}


def test_monthly_on_the_31st_uses_the_last_day_of_shorter_months_without_drifting() -> None:
    start = utc(2026, 1, 31, 10, 0)
    runs = list(run_times(rule("MONTHLY", start, utc(2026, 8, 1))))
    assert [r.at.date().isoformat() for r in runs] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
        "2026-07-31",
    ]
    assert add_months(datetime(2028, 1, 30), 1) == datetime(2028, 2, 29)


def test_once_runs_at_its_start_and_the_end_time_is_inclusive() -> None:
    assert list(run_times(rule("ONCE", utc(2026, 5, 1, 12)))) == [Run(0, utc(2026, 5, 1, 12))]
    assert list(run_times(rule("ONCE", utc(2026, 5, 1, 12)), after=utc(2026, 5, 1, 12))) == []
    daily = rule("DAILY", utc(2026, 5, 1, 12), utc(2026, 5, 3, 12))
    assert [r.no for r in run_times(daily)] == [0, 1, 2]
    assert list(run_times(rule("EVENT", utc(2026, 5, 1)))) == []


def test_next_run_skips_ahead_from_far_after_the_start() -> None:
    hourly = rule("HOURLY", utc(2026, 1, 1))
    assert next_run(hourly, utc(2026, 6, 1, 5, 30)) == Run(151 * 24 + 6, utc(2026, 6, 1, 6))
    assert next_run(hourly, None) == Run(0, utc(2026, 1, 1))
    assert next_run(rule("DAILY", utc(2026, 1, 1), utc(2026, 1, 5)), utc(2026, 1, 5)) is None


def test_missed_runs_the_latest_runs_once_when_less_than_a_period_late_older_ones_are_skipped() -> None:
    daily = rule("DAILY", utc(2026, 1, 1, 9))
    # Down from Jan 1 10:00 to Jan 4 15:00: runs of Jan 2, 3, 4 fell due; Jan 4 runs, two are skipped.
    assert due_run(daily, utc(2026, 1, 1, 9), utc(2026, 1, 4, 15)) == DueRun(Run(3, utc(2026, 1, 4, 9)), 2)
    assert due_run(daily, utc(2026, 1, 4, 9), utc(2026, 1, 4, 15)) == DueRun(None, 0)
    assert due_run(daily, None, utc(2026, 1, 1, 9)) == DueRun(Run(0, utc(2026, 1, 1, 9)), 0)
    # The last run before the end, missed by more than a period: nothing runs, it is skipped.
    ended = rule("DAILY", utc(2026, 1, 1, 9), utc(2026, 1, 2, 9))
    assert due_run(ended, utc(2026, 1, 1, 9), utc(2026, 1, 5)) == DueRun(None, 1)
    # A ONCE campaign runs however late the worker comes back.
    assert due_run(rule("ONCE", utc(2026, 1, 1)), None, utc(2026, 3, 1)) == DueRun(Run(0, utc(2026, 1, 1)), 0)


def test_local_time_slices_group_zones_by_instant_and_put_unknown_zones_in_the_schedule_zone() -> None:
    daily = rule("DAILY", utc(2026, 7, 1, 9), zone=UTC)
    slices = local_slices(
        utc(2026, 7, 1, 9), daily, ["Asia/Tokyo", "America/New_York", None, "", "Nowhere/Land", "Asia/Seoul"]
    )
    assert slices == [
        LocalSlice(utc(2026, 7, 1, 0), ("Asia/Seoul", "Asia/Tokyo")),
        LocalSlice(utc(2026, 7, 1, 9), ("", "Nowhere/Land")),
        LocalSlice(utc(2026, 7, 1, 13), ("America/New_York",)),
    ]


def test_local_time_slices_read_the_wall_time_in_the_schedule_zone() -> None:
    ny = rule("ONCE", datetime(2026, 7, 1, 9, tzinfo=NEW_YORK), zone=NEW_YORK)
    slices = local_slices(ny.start, ny, ["Europe/London"])
    assert [s.at for s in slices] == [utc(2026, 7, 1, 8), utc(2026, 7, 1, 13)]


def test_treatments_take_cohorts_after_the_holdout_and_the_default_gets_the_rest() -> None:
    assignments = [treatment_for_cohort(c, 10, [20, 30]) for c in range(100)]
    assert assignments.count(None) == 10
    assert assignments.count(1) == 20 and assignments.count(2) == 30 and assignments.count(0) == 40
    assert assignments[:10] == [None] * 10 and assignments[10] == 1 and assignments[30] == 2
    assert {treatment_for_cohort(c, 0, []) for c in range(100)} == {0}
