"""The AIMD rate controller, with the time passed in."""

from __future__ import annotations

import pytest

from sojourn.channels.rate import AimdRate


def test_starts_at_the_maximum_and_spends_its_burst_first() -> None:
    rate = AimdRate(maximum=10, burst=2)
    assert rate.rate == 10
    assert rate.reserve(0.0) == 0 and rate.reserve(0.0) == 0
    # The bucket is empty: the third message waits one token at 10/s.
    assert rate.reserve(0.0) == pytest.approx(0.1)


def test_tokens_refill_at_the_rate() -> None:
    rate = AimdRate(maximum=10, burst=1)
    rate.reserve(0.0)
    assert rate.reserve(0.1) == pytest.approx(0.0)
    assert rate.reserve(0.1) == pytest.approx(0.1)


def test_throttle_halves_the_rate_once_per_cooldown() -> None:
    rate = AimdRate(maximum=100, minimum=1, decrease=0.5, cooldown=1.0)
    rate.on_throttle(10.0)
    assert rate.rate == 50
    # Replies to messages already in flight: the same congestion, no second cut.
    rate.on_throttle(10.5)
    assert rate.rate == 50 and rate.throttles == 2
    rate.on_throttle(11.0)
    assert rate.rate == 25


def test_rate_never_drops_below_the_minimum() -> None:
    rate = AimdRate(maximum=8, minimum=2, cooldown=0)
    for t in range(10):
        rate.on_throttle(float(t))
    assert rate.rate == 2


def test_retry_after_holds_every_send_until_it_passed() -> None:
    rate = AimdRate(maximum=100, burst=10)
    rate.on_throttle(5.0, retry_after=3.0)
    assert rate.blocked_for(5.0) == 3.0
    assert rate.reserve(6.0) == pytest.approx(2.0)
    assert rate.blocked_for(8.5) == 0


def test_rate_recovers_additively_after_throttling() -> None:
    rate = AimdRate(maximum=100, minimum=1, increase=10, decrease=0.5, cooldown=0)
    rate.on_throttle(0.0)
    assert rate.rate == 50
    # About one second of clean sending at the current rate adds `increase` messages/s.
    rate.on_success(1.0, n=50)
    assert rate.rate == pytest.approx(60)
    for t in range(2, 200):
        rate.on_success(float(t), n=int(rate.rate))
    assert rate.rate == 100


def test_throttle_drops_saved_tokens() -> None:
    rate = AimdRate(maximum=100, burst=50)
    rate.on_throttle(0.0)
    assert rate.reserve(0.0) > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"maximum": 0}, "minimum <= maximum"),
    ({"maximum": 5, "minimum": 6}, "minimum <= maximum"),
    ({"maximum": 5, "decrease": 1.5}, "decrease must be between 0 and 1"),
])  # fmt: skip
def test_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AimdRate(**kwargs)
