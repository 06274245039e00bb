"""The unengaged rule and the policy/day checks of list hygiene."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sojourn.domain.hygiene import check_days, check_policy, is_unengaged

NOW = datetime(2026, 11, 23, tzinfo=UTC)
OLD = NOW - timedelta(days=200)


def _rule(created: datetime = OLD, sent: datetime | None = None, engaged: datetime | None = None) -> bool:
    return is_unengaged(created_at=created, last_sent_at=sent, last_engaged_at=engaged, now=NOW, days=90)


def test_mailed_and_silent_for_the_window_is_unengaged() -> None:
    assert _rule(sent=NOW - timedelta(days=10))
    assert _rule(sent=NOW - timedelta(days=10), engaged=NOW - timedelta(days=91))


def test_engaged_within_the_window_is_kept() -> None:
    assert not _rule(sent=NOW - timedelta(days=10), engaged=NOW - timedelta(days=89))


def test_never_mailed_in_the_window_is_kept() -> None:
    assert not _rule(sent=None)
    assert not _rule(sent=NOW - timedelta(days=91))


def test_new_endpoints_are_not_punished() -> None:
    assert not _rule(created=NOW - timedelta(days=30), sent=NOW - timedelta(days=1))


def test_days_and_policy_checks() -> None:
    assert check_days(30) == 30 and check_days(365) == 365
    for bad in (29, 366):
        with pytest.raises(ValueError, match="between 30 and 365"):
            check_days(bad)
    assert check_policy("segment") == "segment"
    with pytest.raises(ValueError, match="unsubscribe, segment, report"):
        check_policy("delete")
