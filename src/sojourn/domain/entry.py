"""Who may enter a journey again: Pinpoint's re-entry rules as a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class EntryHistory:
    """An endpoint's past in one journey."""

    entries: int
    active: bool
    last_entered_at: datetime | None


def entry_verdict(
    history: EntryHistory | None, *, in_segment: bool, cap: int, interval: timedelta | None, now: datetime
) -> str | None:
    """Whether an endpoint may enter the journey now.

    Args:
        history: Its earlier entries (None: never entered).
        in_segment: Whether it is in the segment that restricts entry (True when none does).
        cap: EndpointReentryCap, how many entries in all (0: unlimited).
        interval: EndpointReentryInterval, the least time between two entries.
        now: The moment of entry.

    Returns:
        None when it may enter, else the metric that counts why not.
    """
    if not in_segment:
        return "FILTERED_OUT_BY_SEGMENT"
    if history is None:
        return None
    if history.active:
        return "ACTIVE_ENDPOINT_REJECTED"
    if cap and history.entries >= cap:
        return "REENTRY_CAP_EXCEEDED"
    if interval and history.last_entered_at is not None and now - history.last_entered_at < interval:
        return "REENTRY_INTERVAL_NOT_ELAPSED"
    return None
