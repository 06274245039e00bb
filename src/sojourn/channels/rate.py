"""The send-rate controller: a token bucket whose rate follows AIMD (additive increase, multiplicative decrease).

Every transport and provider paces its sends through one :class:`AimdRate`. When the far side throttles
(SMTP 421/4xx, HTTP 429/503) the rate is cut by ``decrease`` (at most once per ``cooldown`` seconds, so a burst
of throttled replies to messages that were already in flight counts as one signal) and nothing is sent before
the ``Retry-After`` the server asked for. Every accepted message then adds ``increase / rate`` messages/s, so a
rate grows back by about ``increase`` messages/s per second of clean sending: it recovers by itself.

The class is pure: the caller passes the time (``time.monotonic()`` in production, a number in tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AimdRate:
    """Token bucket with an AIMD-controlled refill rate.

    Attributes:
        maximum: Highest rate, messages per second (also the starting rate).
        minimum: Lowest rate the decrease stops at (messages per second, > 0).
        increase: Messages/s regained per ``rate`` accepted messages (about one second of sending).
        decrease: Factor applied to the rate on a throttle signal (0 < decrease < 1).
        cooldown: Seconds after a decrease during which further throttle signals do not decrease again.
        burst: Most tokens the bucket holds (messages that may leave at once after an idle spell).
    """

    maximum: float
    minimum: float = 1.0
    increase: float = 5.0
    decrease: float = 0.5
    cooldown: float = 1.0
    burst: float = 10.0
    rate: float = field(init=False)
    _tokens: float = field(init=False)
    _updated: float | None = field(init=False, default=None)
    _blocked_until: float = field(init=False, default=0.0)
    _last_decrease: float | None = field(init=False, default=None)
    throttles: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.maximum:
            raise ValueError(f"need 0 < minimum <= maximum, got {self.minimum} and {self.maximum}")
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {self.decrease}")
        self.rate = float(self.maximum)
        self._tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        if self._updated is None or now > self._updated:
            self._updated = now

    def reserve(self, now: float, n: int = 1) -> float:
        """Take ``n`` tokens and say how long to wait before sending them.

        Args:
            now: The current time in seconds (monotonic).
            n: Messages about to be sent.

        Returns:
            Seconds to wait (0 when the tokens are there and no Retry-After is pending).
        """
        self._refill(now)
        self._tokens -= n
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        return max(wait, self._blocked_until - now, 0.0)

    def on_success(self, now: float, n: int = 1) -> None:
        """``n`` messages were accepted: grow the rate additively (up to ``maximum``)."""
        self._refill(now)
        self.rate = min(self.maximum, self.rate + self.increase * n / self.rate)

    def on_throttle(self, now: float, retry_after: float | None = None) -> None:
        """The far side throttled: cut the rate (once per cooldown) and hold sends until ``retry_after`` passed.

        Args:
            now: The current time in seconds (monotonic).
            retry_after: Seconds the server asked us to wait (``Retry-After``), if it said.
        """
        self._refill(now)
        self.throttles += 1
        if self._last_decrease is None or now - self._last_decrease >= self.cooldown:
            self.rate = max(self.minimum, self.rate * self.decrease)
            self._last_decrease = now
            # Tokens saved up at the old rate must not be spent in a burst now.
            self._tokens = min(self._tokens, 0.0)
        if retry_after is not None and retry_after > 0:
            self._blocked_until = max(self._blocked_until, now + retry_after)

    def blocked_for(self, now: float) -> float:
        """Seconds left of the last Retry-After (0 when none is pending)."""
        return max(0.0, self._blocked_until - now)
