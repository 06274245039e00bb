"""What every API handler can reach: the database, the settings and the Temporal client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from sojourn.channels.senders import SendLanes
from sojourn.settings import Settings


@dataclass
class AppState:
    """Shared, process-wide resources of the API server.

    Attributes:
        db: The async engine on sojourn's PostgreSQL.
        settings: The process settings.
    """

    db: AsyncEngine
    settings: Settings
    _temporal: Client | None = field(default=None, repr=False)
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _send_lanes: SendLanes | None = field(default=None, repr=False)

    @property
    def send_lanes(self) -> SendLanes:
        """This process's senders (direct sends take their transactional lane), built on first use."""
        if self._send_lanes is None:
            self._send_lanes = SendLanes(self.settings)
        return self._send_lanes

    def use_send_lanes(self, lanes: SendLanes) -> None:
        """Use prebuilt send lanes (tests, benchmarks, the embedded stack)."""
        self._send_lanes = lanes

    async def temporal(self) -> Client:
        """The Temporal client, connected on first use (the API starts even while Temporal is still coming up)."""
        if self._temporal is None:
            async with self._temporal_lock:
                if self._temporal is None:
                    from sojourn.engine.client import connect

                    self._temporal = await connect(self.settings)
        return self._temporal

    def use_temporal(self, client: Client) -> None:
        """Use an already connected client (tests, the embedded stack)."""
        self._temporal = client
