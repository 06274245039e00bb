"""ISO-8601 durations (``PT10S``, ``P2D``, ``P1DT12H``), as Pinpoint's WaitFor and RefreshFrequency use them."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration into a ``timedelta``.

    Years and months are not accepted: their length depends on the calendar (Pinpoint's waits use days).

    Raises:
        ValueError: ``text`` is not a duration of weeks, days, hours, minutes and seconds.
    """
    match = _DURATION.match(text.strip().upper())
    if match is None or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as PT10S, PT1H or P2D")
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    return timedelta(**parts)


def format_duration(delta: timedelta) -> str:
    """Format a ``timedelta`` as an ISO-8601 duration (``P2DT3H``, ``PT10S``)."""
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time = (
        (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{seconds}S" if seconds else "")
    )
    return out + ("T" + time if time else ("" if days else "T0S"))
