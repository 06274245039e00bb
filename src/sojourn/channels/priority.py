"""The priority lane: transactional sends never wait behind a bulk (campaign) blast in the same process.

Each lane has its own connections (SMTP pool, HTTP client and concurrency slots), so a transactional message
never queues for a connection a blast holds. On top of that the :class:`LaneGate` gives the transactional lane
strict priority: while any transactional send is in flight, bulk senders hold back before their next round or
request, leaving the relay's or provider's capacity (and its rate limit) to the transactional message.

Across processes (API replicas send SendMessages; workers send journeys and campaigns) each process has its own
lanes and gates: processes do not coordinate, and each process's rate controller backs off on its own when the
provider throttles (AIMD converges to a fair share, as TCP flows do).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Lane(enum.StrEnum):
    """Which lane a send takes."""

    TRANSACTIONAL = "transactional"
    BULK = "bulk"


class LaneGate:
    """Bulk senders wait at :meth:`bulk_turn` while any transactional send is in flight."""

    def __init__(self) -> None:
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def transactional_in_flight(self) -> int:
        """Transactional sends running now."""
        return self._active

    @asynccontextmanager
    async def transactional(self) -> AsyncIterator[None]:
        """Mark a transactional send in flight for the duration of the block."""
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def bulk_turn(self) -> None:
        """Return once no transactional send is in flight."""
        await self._idle.wait()
