"""Quiet time, open hours and closed days in the participant's zone, across midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from sojourn.domain.journeys import JourneyDefinition
from sojourn.domain.sending_window import (
    ClosedPeriod,
    SendingRules,
    Window,
    blocked_reason,
    closed_days_for,
    local_to_utc,
    next_allowed,
    open_hours_for,
    parse_clock,
    rules_for_journey,
    verdict,
    zone_named,
)

NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
QUIET = Window(time(22), time(7))


def at(zone: ZoneInfo, *args: int) -> datetime:
    """An aware instant from a local wall time."""
    return local_to_utc(datetime(*args), zone)  # type: ignore[arg-type]


def test_parse_clock() -> None:
    assert parse_clock("08:30") == time(8, 30)
    assert parse_clock("24:00") == time.max
    for bad in ("8", "25:00", "12:60", "noon"):
        with pytest.raises(ValueError, match="HH:MM"):
            parse_clock(bad)


def test_zone_named_takes_iana_names_and_pinpoint_offsets() -> None:
    assert zone_named("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert zone_named("UTC") == UTC
    assert zone_named("UTC+05:45") == timezone(timedelta(hours=5, minutes=45), "UTC+05:45")
    assert zone_named("UTC-09:30").utcoffset(None) == -timedelta(hours=9, minutes=30)  # type: ignore[union-attr]
    assert zone_named("Mars/Olympus") is None and zone_named("") is None and zone_named(None) is None


def test_window_crossing_midnight() -> None:
    assert QUIET.contains(time(23)) and QUIET.contains(time(0)) and QUIET.contains(time(6, 59))
    assert not QUIET.contains(time(7)) and not QUIET.contains(time(12)) and not QUIET.contains(time(21, 59))
    day = Window(time(9), time(17))
    assert day.contains(time(9)) and not day.contains(time(17))


def test_quiet_time_is_read_in_the_participants_zone() -> None:
    rules = SendingRules(quiet=QUIET, wait_for_quiet=True)
    instant = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)  # 23:00 in New York, 12:00 in Tokyo
    assert blocked_reason(instant, NEW_YORK, rules) == "QUIET_TIME"
    assert blocked_reason(instant, TOKYO, rules) is None
    held = verdict(instant, NEW_YORK, rules)
    assert held.action == "hold" and held.until == at(NEW_YORK, 2026, 6, 1, 7, 0)


def test_without_a_zone_quiet_time_does_not_apply() -> None:
    rules = SendingRules(quiet=QUIET, wait_for_quiet=False)
    assert verdict(datetime(2026, 6, 1, 3, tzinfo=UTC), None, rules).action == "send"


def test_drop_when_not_waiting_for_quiet_time() -> None:
    rules = SendingRules(quiet=QUIET, wait_for_quiet=False)
    dropped = verdict(at(NEW_YORK, 2026, 6, 1, 23, 30), NEW_YORK, rules)
    assert dropped.action == "drop" and dropped.reason == "QUIET_TIME"


def test_quiet_time_end_across_spring_forward() -> None:
    # Quiet until 02:30, on the night New York's clocks jump from 02:00 to 03:00 (2026-03-08).
    rules = SendingRules(quiet=Window(time(22), time(2, 30)), wait_for_quiet=True)
    held = verdict(at(NEW_YORK, 2026, 3, 7, 23, 0), NEW_YORK, rules)
    assert held.until is not None
    assert held.until.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 30)
    # Quiet until 07:00 the day after the change: 07:00 EDT is 11:00 UTC, not 12:00.
    held = verdict(at(NEW_YORK, 2026, 3, 7, 23, 0), NEW_YORK, SendingRules(quiet=QUIET, wait_for_quiet=True))
    assert held.until == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)


def test_quiet_time_end_across_fall_back() -> None:
    held = verdict(
        at(NEW_YORK, 2026, 10, 31, 23, 0), NEW_YORK, SendingRules(quiet=QUIET, wait_for_quiet=True)
    )
    assert held.until == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # 07:00 EST


def test_open_hours_hold_until_the_next_window() -> None:
    hours = open_hours_for(
        {
            "MONDAY": [
                {"StartTime": "09:00", "EndTime": "12:00"},
                {"StartTime": "14:00", "EndTime": "17:00"},
            ],
            "TUESDAY": [{"StartTime": "10:00", "EndTime": "16:00"}],
        }
    )
    rules = SendingRules(open_hours=hours, wait_for_quiet=True)
    monday_lunch = at(TOKYO, 2026, 11, 23, 12, 30)
    assert blocked_reason(monday_lunch, TOKYO, rules) == "CLOSED_HOURS"
    assert verdict(monday_lunch, TOKYO, rules).until == at(TOKYO, 2026, 11, 23, 14, 0)
    monday_evening = at(TOKYO, 2026, 11, 23, 18, 0)
    assert verdict(monday_evening, TOKYO, rules).until == at(TOKYO, 2026, 11, 24, 10, 0)
    # Tuesday after hours: the next open day is next Monday.
    assert next_allowed(at(TOKYO, 2026, 11, 24, 16, 0), TOKYO, rules) == at(TOKYO, 2026, 11, 30, 9, 0)


def test_closed_days_and_quiet_time_together() -> None:
    closed = closed_days_for(
        [{"Name": "xmas", "StartDateTime": "2026-12-25T00:00:00", "EndDateTime": "2026-12-26T00:00:00"}]
    )
    rules = SendingRules(quiet=QUIET, closed=closed, wait_for_quiet=True)
    eve = at(NEW_YORK, 2026, 12, 24, 23, 0)
    # Quiet until 07:00 on the 25th, which is closed all day, so the 26th at 07:00 (quiet again from 00:00).
    assert next_allowed(eve, NEW_YORK, rules) == at(NEW_YORK, 2026, 12, 26, 7, 0)
    assert verdict(eve, NEW_YORK, SendingRules(closed=closed)).action == "send"
    assert (
        verdict(at(NEW_YORK, 2026, 12, 25, 12), NEW_YORK, SendingRules(closed=closed)).reason == "CLOSED_DAY"
    )


def test_closed_days_with_offsets_are_instants() -> None:
    (period,) = closed_days_for(
        [{"StartDateTime": "2026-12-25T00:00:00Z", "EndDateTime": "2026-12-25T06:00:00Z"}]
    )
    assert period == ClosedPeriod(datetime(2026, 12, 25, tzinfo=UTC), datetime(2026, 12, 25, 6, tzinfo=UTC))
    with pytest.raises(ValueError, match="must be after"):
        closed_days_for([{"StartDateTime": "2026-12-25T00:00:00", "EndDateTime": "2026-12-24T00:00:00"}])
    with pytest.raises(ValueError, match="both bounds with an offset"):
        closed_days_for([{"StartDateTime": "2026-12-25T00:00:00Z", "EndDateTime": "2026-12-26T00:00:00"}])


def test_a_calendar_that_never_opens_drops() -> None:
    rules = SendingRules(open_hours={}, wait_for_quiet=True)
    assert verdict(datetime(2026, 1, 1, tzinfo=UTC), TOKYO, rules).action == "drop"


def test_open_hours_reject_unknown_days() -> None:
    with pytest.raises(ValueError, match="not a day of the week"):
        open_hours_for({"FUNDAY": []})


def test_rules_for_journey() -> None:
    definition = JourneyDefinition.model_validate(
        {
            "Name": "j",
            "QuietTime": {"Start": "21:00", "End": "08:00"},
            "WaitForQuietTime": True,
            "SendingSchedule": True,
            "OpenHours": {"EMAIL": {"MONDAY": [{"StartTime": "09:00", "EndTime": "17:00"}]}},
            "ClosedDays": {
                "SMS": [{"StartDateTime": "2026-12-25T00:00:00", "EndDateTime": "2026-12-26T00:00:00"}]
            },
            "Schedule": {"Timezone": "UTC+09:00"},
        }
    )
    email = rules_for_journey(definition, "EMAIL")
    assert email is not None and email.quiet == Window(time(21), time(8)) and email.wait_for_quiet
    assert email.open_hours == {0: (Window(time(9), time(17)),)} and email.closed == ()
    assert email.fallback_zone.utcoffset(None) == timedelta(hours=9)
    sms = rules_for_journey(definition, "SMS")
    assert sms is not None and sms.open_hours is None and len(sms.closed) == 1
    assert rules_for_journey(JourneyDefinition.model_validate({"Name": "plain"}), "EMAIL") is None
