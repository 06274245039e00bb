"""List hygiene (sunset): which endpoints count as unengaged, and the policies applied to them."""

from __future__ import annotations

from datetime import datetime, timedelta

POLICIES = ("unsubscribe", "segment", "report")
DEFAULT_DAYS = 90
MIN_DAYS, MAX_DAYS = 30, 365
ENGAGEMENT_EVENTS = ("_email.open", "_email.click")
SUNSET_ATTRIBUTE = "sunset"
SUNSET_SEGMENT_ID = "sunset"


def check_days(days: int) -> int:
    """The unengaged window in days.

    Raises:
        ValueError: outside 30-365.
    """
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days must be between {MIN_DAYS} and {MAX_DAYS}, not {days}")
    return days


def check_policy(policy: str) -> str:
    """The policy name.

    Raises:
        ValueError: not unsubscribe, segment or report.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r} is not one of {', '.join(POLICIES)}")
    return policy


def is_unengaged(
    *,
    created_at: datetime,
    last_sent_at: datetime | None,
    last_engaged_at: datetime | None,
    now: datetime,
    days: int,
) -> bool:
    """Whether an endpoint is unengaged: mailed but silent for the whole window.

    The rule (the SQL in :mod:`sojourn.store.hygiene_repo` is the same rule):
    the endpoint is older than the window (new endpoints are never punished), it was sent at least one
    email within the window, and it has no open or click within the window.
    """
    since = now - timedelta(days=days)
    if created_at > since or last_sent_at is None or last_sent_at < since:
        return False
    return last_engaged_at is None or last_engaged_at < since
