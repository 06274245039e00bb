"""When a journey may message a participant: quiet time, open hours and closed days, in the participant's zone.

Pure rules, no I/O. A journey's ``QuietTime`` is a daily local window in which nothing is sent (it may cross
midnight: 20:00-08:00); with ``SendingSchedule`` on, ``OpenHours`` give per-channel, per-weekday windows in
which sending is allowed and ``ClosedDays`` give dated blackouts. All of them are read in the participant's
own time zone, on the wall clock, so they stay right across DST changes.

Decisions (Pinpoint's semantics, §1.6 of the reference):

- Quiet time applies only to a participant whose time zone is known (``Demographic.Timezone`` or an
  estimate); otherwise the message is sent.
- Open hours and closed days are read in the participant's zone, or the journey's ``Schedule.Timezone``
  (else UTC) when the participant has none: a business calendar still means something without one.
- A blocked message is held until the first instant sending is allowed again when ``WaitForQuietTime`` is
  true, else dropped with the reason (``QUIET_TIME``, ``CLOSED_HOURS`` or ``CLOSED_DAY``).
- Window ends are exclusive: quiet time 22:00-07:00 lets a message go at 07:00.
- A channel with ``OpenHours`` but no rule for a weekday is closed that whole day.
- A local time skipped by a DST change (02:30 on the spring-forward night) is taken as the instant the clocks
  jump to; a repeated one (the fall-back hour) as its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
# Enough steps to walk past any sane calendar (a year of closed days is one step each at most).
_MAX_STEPS = 800


def parse_clock(value: str) -> time:
    """A wall-clock time ``HH:MM`` (Pinpoint's QuietTime and OpenHours format; ``24:00`` is end of day).

    Raises:
        ValueError: not ``HH:MM``.
    """
    text = value.strip()
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes[:2].isdigit() and len(minutes) >= 2):
        raise ValueError(f"{value!r} is not a time of day HH:MM such as 08:30")
    h, m = int(hours), int(minutes[:2])
    if (h, m) == (24, 0):
        return time.max
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{value!r} is not a time of day HH:MM such as 08:30")
    return time(h, m)


_UTC_OFFSET = re.compile(r"^UTC(?:([+-])(\d{1,2})(?::?(\d{2}))?)?$")


def zone_named(name: str | None) -> tzinfo | None:
    """The zone ``name`` stands for, or None when missing or unknown.

    Args:
        name: An IANA name (``Europe/Paris``, as in ``Demographic.Timezone``) or a UTC offset in Pinpoint's
            journey form (``UTC``, ``UTC+05:30``, ``UTC-09:30``).
    """
    if not name:
        return None
    text = name.strip()
    offset = _UTC_OFFSET.match(text)
    if offset is not None:
        sign, hours, minutes = offset.groups()
        if sign is None:
            return UTC
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return timezone(delta if sign == "+" else -delta, text) if delta <= timedelta(hours=14) else None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a naive local wall time stands for in ``zone`` (gap: shifted forward; overlap: first).

    With ``fold=0`` a wall time inside a spring-forward gap is read with the offset from before the change,
    which lands on the wall time as far after the jump as it was after the gap's start; a repeated wall time
    is read as its first occurrence.
    """
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """A daily wall-clock window [start, end); ``start > end`` crosses midnight."""

    start: time
    end: time

    def contains(self, at: time) -> bool:
        """Whether wall time ``at`` is inside the window."""
        if self.start <= self.end:
            return self.start <= at < self.end or (self.end == time.max and at >= self.start)
        return at >= self.start or at < self.end


@dataclass(frozen=True)
class ClosedPeriod:
    """A blackout. Naive bounds are local wall times of the participant; aware ones are instants."""

    start: datetime
    end: datetime

    def covers(self, instant: datetime, zone: tzinfo) -> bool:
        """Whether ``instant`` (aware) falls in the period, read in ``zone``."""
        if self.start.tzinfo is not None:
            return self.start <= instant < self.end
        wall = instant.astimezone(zone).replace(tzinfo=None)
        return self.start <= wall < self.end

    def end_instant(self, zone: tzinfo) -> datetime:
        """When the period ends, as an instant."""
        return self.end if self.end.tzinfo is not None else local_to_utc(self.end, zone)


@dataclass(frozen=True)
class SendingRules:
    """The sending constraints of one journey activity's channel.

    Attributes:
        quiet: Daily quiet time, or None.
        wait_for_quiet: Hold blocked messages until sending is allowed (else drop them).
        open_hours: Per weekday (0 = Monday) the windows in which sending is allowed; None: always open.
        closed: Dated blackouts.
        fallback_zone: Zone for open hours and closed days when the participant has none.
    """

    quiet: Window | None = None
    wait_for_quiet: bool = False
    open_hours: Mapping[int, tuple[Window, ...]] | None = None
    closed: tuple[ClosedPeriod, ...] = ()
    fallback_zone: tzinfo = UTC

    @property
    def unconstrained(self) -> bool:
        """True when nothing ever blocks a send."""
        return self.quiet is None and self.open_hours is None and not self.closed


Action = Literal["send", "hold", "drop"]


@dataclass(frozen=True)
class Verdict:
    """What to do with one participant's message now: send it, hold it until ``until``, or drop it."""

    action: Action
    until: datetime | None = None
    reason: str | None = None


SEND = Verdict("send")


def blocked_reason(instant: datetime, zone: tzinfo | None, rules: SendingRules) -> str | None:
    """Why nothing may be sent at ``instant`` to a participant in ``zone``; None when sending is allowed."""
    if zone is not None and rules.quiet is not None:
        if rules.quiet.contains(instant.astimezone(zone).time()):
            return "QUIET_TIME"
    calendar_zone = zone or rules.fallback_zone
    if any(period.covers(instant, calendar_zone) for period in rules.closed):
        return "CLOSED_DAY"
    if rules.open_hours is not None:
        wall = instant.astimezone(calendar_zone)
        windows = rules.open_hours.get(wall.weekday(), ())
        if not any(w.contains(wall.time()) for w in windows):
            return "CLOSED_HOURS"
    return None


def _next_wall(after: datetime, at: time) -> datetime:
    """The first naive wall datetime after ``after`` whose clock reads ``at``."""
    candidate = datetime.combine(after.date(), at)
    return candidate if candidate > after else candidate + timedelta(days=1)


def _release_candidate(instant: datetime, zone: tzinfo | None, rules: SendingRules, reason: str) -> datetime:
    """An instant after ``instant`` at which the block named ``reason`` is over (others may still hold)."""
    calendar_zone = zone or rules.fallback_zone
    if reason == "QUIET_TIME":
        assert zone is not None and rules.quiet is not None
        wall = instant.astimezone(zone).replace(tzinfo=None)
        return local_to_utc(_next_wall(wall, rules.quiet.end), zone)
    if reason == "CLOSED_DAY":
        ends = [p.end_instant(calendar_zone) for p in rules.closed if p.covers(instant, calendar_zone)]
        return max(max(ends), instant + timedelta(minutes=1))
    assert rules.open_hours is not None
    wall = instant.astimezone(calendar_zone).replace(tzinfo=None)
    for days in range(8):
        day = wall.date() + timedelta(days=days)
        starts = [
            datetime.combine(day, w.start)
            for w in rules.open_hours.get(day.weekday(), ())
            if datetime.combine(day, w.start) > wall
        ]
        if starts:
            return local_to_utc(min(starts), calendar_zone)
    return instant + timedelta(days=7)


def next_allowed(instant: datetime, zone: tzinfo | None, rules: SendingRules) -> datetime | None:
    """The first instant at or after ``instant`` when sending is allowed; None if the rules never allow it.

    Args:
        instant: An aware datetime.
        zone: The participant's zone, or None.
        rules: The constraints.
    """
    current = instant
    for _ in range(_MAX_STEPS):
        reason = blocked_reason(current, zone, rules)
        if reason is None:
            return current
        current = _release_candidate(current, zone, rules, reason)
    return None


def verdict(instant: datetime, zone: tzinfo | None, rules: SendingRules | None) -> Verdict:
    """Send, hold or drop a participant's message at ``instant`` (see the module docstring for the rules)."""
    if rules is None or rules.unconstrained:
        return SEND
    reason = blocked_reason(instant, zone, rules)
    if reason is None:
        return SEND
    if not rules.wait_for_quiet:
        return Verdict("drop", reason=reason)
    until = next_allowed(instant, zone, rules)
    if until is None:
        return Verdict("drop", reason="CLOSED_HOURS")
    return Verdict("hold", until=until, reason=reason)


def _parse_local_or_instant(value: str) -> datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 date and time such as 2026-12-25T00:00:00") from None


def open_hours_for(raw: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[int, tuple[Window, ...]]:
    """One channel's OpenHours (``{"MONDAY": [{"StartTime": "09:00", "EndTime": "17:00"}]}``) by weekday.

    Raises:
        ValueError: an unknown weekday or a malformed time.
    """
    hours: dict[int, tuple[Window, ...]] = {}
    for day, rules in raw.items():
        if day not in WEEKDAYS:
            raise ValueError(f"OpenHours: {day!r} is not a day of the week ({', '.join(WEEKDAYS)})")
        hours[WEEKDAYS.index(day)] = tuple(
            Window(parse_clock(str(r.get("StartTime", ""))), parse_clock(str(r.get("EndTime", ""))))
            for r in rules
        )
    return hours


def closed_days_for(raw: Sequence[Mapping[str, Any]]) -> tuple[ClosedPeriod, ...]:
    """One channel's ClosedDays rules as periods.

    Raises:
        ValueError: a malformed date, or an end not after its start.
    """
    periods: list[ClosedPeriod] = []
    for rule in raw:
        start = _parse_local_or_instant(str(rule.get("StartDateTime", "")))
        end = _parse_local_or_instant(str(rule.get("EndDateTime", "")))
        if (start.tzinfo is None) != (end.tzinfo is None):
            raise ValueError(
                f"ClosedDays {rule.get('Name') or ''!r}: give both bounds with an offset, or neither"
            )
        if end <= start:
            raise ValueError(
                f"ClosedDays {rule.get('Name') or ''!r}: EndDateTime must be after StartDateTime"
            )
        periods.append(ClosedPeriod(start, end))
    return tuple(periods)


def rules_for_journey(definition: Any, channel: str) -> SendingRules | None:
    """The sending rules a journey applies to messages of ``channel`` (EMAIL, SMS, PUSH, VOICE, CUSTOM).

    Args:
        definition: A :class:`~sojourn.domain.journeys.JourneyDefinition`.
        channel: The message channel.

    Returns:
        The rules, or None when the journey sets none.

    Raises:
        ValueError: malformed QuietTime, OpenHours or ClosedDays.
    """
    quiet = definition.QuietTime
    window = (
        Window(parse_clock(quiet.Start), parse_clock(quiet.End))
        if quiet is not None and quiet.Start and quiet.End
        else None
    )
    open_hours: dict[int, tuple[Window, ...]] | None = None
    closed: tuple[ClosedPeriod, ...] = ()
    if definition.SendingSchedule:
        hours = (definition.OpenHours or {}).get(channel)
        if hours:
            open_hours = open_hours_for(hours)
        days = (definition.ClosedDays or {}).get(channel)
        if days:
            closed = closed_days_for(days)
    schedule = definition.Schedule
    fallback = zone_named(schedule.Timezone if schedule else None) or UTC
    rules = SendingRules(
        quiet=window,
        wait_for_quiet=bool(definition.WaitForQuietTime),
        open_hours=open_hours,
        closed=closed,
        fallback_zone=fallback,
    )
    return None if rules.unconstrained else rules
