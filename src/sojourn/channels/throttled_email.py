"""An email transport paced by an AIMD rate, that backs off and resends when the relay throttles.

A relay that throttles answers 421 or another 4xx before it accepted the message (at MAIL, RCPT or DATA), so
resending that message is safe; after the final dot a 4xx means the relay did not take it either. Accepted
messages are never resent: the inner transport's two-phase commit has already marked them ``sent``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sojourn.channels.email import CommitFn, EmailTransport, OutgoingEmail, SendResult
from sojourn.channels.priority import LaneGate
from sojourn.channels.rate import AimdRate

log = logging.getLogger(__name__)


def is_smtp_throttle(result: SendResult) -> bool:
    """A 4xx reply: the relay is busy or rate limiting (421 service not available, 450/451/452)."""
    return not result.ok and 400 <= result.code < 500


class ThrottledEmailTransport:
    """Wraps an email transport with pacing, throttle back-off and resends of throttled messages.

    Args:
        inner: The transport that talks SMTP.
        rate: The lane's rate controller.
        gate: When set, this is the bulk lane: each round first waits for its turn.
        round_size: Messages handed to ``inner`` at a time (its connection count).
        max_attempts: Sends per message before a throttled one is reported as failed.
        backoff_cap: Longest pause between attempts, in seconds.
    """

    def __init__(
        self,
        inner: EmailTransport,
        rate: AimdRate,
        *,
        gate: LaneGate | None = None,
        round_size: int = 8,
        max_attempts: int = 6,
        backoff_cap: float = 5.0,
    ) -> None:
        self.inner = inner
        self.rate = rate
        self.gate = gate
        self.round_size = round_size
        self.max_attempts = max_attempts
        self.backoff_cap = backoff_cap

    async def send_batch(self, messages: Sequence[OutgoingEmail], commit: CommitFn) -> dict[str, SendResult]:
        """Send in paced rounds; resend the throttled ones after a back-off, up to ``max_attempts``."""
        results: dict[str, SendResult] = {}
        pending = list(messages)
        for attempt in range(self.max_attempts):
            throttled: list[OutgoingEmail] = []
            for start in range(0, len(pending), self.round_size):
                round_ = pending[start : start + self.round_size]
                if self.gate is not None:
                    await self.gate.bulk_turn()
                wait = self.rate.reserve(time.monotonic(), len(round_))
                if wait > 0:
                    await asyncio.sleep(wait)
                got = await self.inner.send_batch(round_, commit)
                results.update(got)
                again = [m for m in round_ if is_smtp_throttle(got[m.message_id])]
                accepted = sum(1 for m in round_ if got[m.message_id].ok)
                if accepted:
                    self.rate.on_success(time.monotonic(), accepted)
                if again:
                    self.rate.on_throttle(time.monotonic())
                    throttled += again
            if not throttled or attempt == self.max_attempts - 1:
                break
            log.info("SMTP relay throttled %d messages; resending at %.1f/s", len(throttled), self.rate.rate)
            pending = throttled
            await asyncio.sleep(min(self.backoff_cap, 0.1 * 2**attempt))
        return results

    async def close(self) -> None:
        """Close the inner transport."""
        await self.inner.close()
