"""Local-time helpers shared by campaigns (and, later, journeys): wall times in a zone, quiet time.

Pure functions, no I/O. Wall times are naive datetimes read on a zone's clock; instants are aware UTC
datetimes. DST policy (the same as :mod:`sojourn.domain.sending_window`): a wall time skipped by a
spring-forward change is shifted forward by the gap (02:30 becomes 03:30), a repeated one (the fall-back hour)
is its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, tzinfo

from sojourn.domain.sending_window import local_to_utc, parse_clock, zone_named

__all__ = ["in_quiet_time", "parse_clock", "utc_to_wall", "wall_to_utc", "zone_named", "zone_or_utc"]


def wall_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of the naive wall time ``wall`` on ``zone``'s clock (DST gap: shifted forward).

    Args:
        wall: A naive datetime (an aware one is first read on its own clock, then its wall time is taken).
        zone: The zone.

    Returns:
        An aware UTC datetime.
    """
    return local_to_utc(wall.replace(tzinfo=None), zone)


def utc_to_wall(instant: datetime, zone: tzinfo) -> datetime:
    """The naive wall time that ``zone``'s clocks show at ``instant`` (aware)."""
    return instant.astimezone(zone).replace(tzinfo=None)


def zone_or_utc(name: str | None) -> tzinfo:
    """The zone ``name`` stands for (IANA name or ``UTC±hh[:mm]``), UTC when missing or unknown."""
    return zone_named(name) or UTC


def in_quiet_time(local: datetime | time, start: time, end: time) -> bool:
    """Whether a local wall time falls in the daily quiet time [start, end).

    The window may wrap midnight (22:00-07:00). The end is exclusive (a message at 07:00 goes), the start
    inclusive. ``start == end`` is an empty window.

    Args:
        local: The recipient's local wall time (a datetime's time of day is used).
        start: Quiet time start (``QuietTime.Start``).
        end: Quiet time end (``QuietTime.End``).
    """
    at = local.time() if isinstance(local, datetime) else local
    if start == end:
        return False
    if start < end:
        return start <= at < end
    return at >= start or at < end
