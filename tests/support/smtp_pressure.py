"""aiosmtpd servers under pressure: one that answers 421 to the first N recipients, one that is slow."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.smtp import SmtpSink, _Handler


class _PressureHandler(_Handler):
    def __init__(self, sink: PressureSmtpSink) -> None:
        super().__init__(sink)
        self.pressure = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.pressure.lock:
            self.pressure.rcpt_seen += 1
            throttled = self.pressure.rcpt_seen <= self.pressure.throttle_first
        if throttled:
            return "421 4.7.0 Too many messages, slow down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.pressure.delay:
            await asyncio.sleep(self.pressure.delay)
        return await super().handle_DATA(server, session, envelope)


class PressureSmtpSink(SmtpSink):
    """An SmtpSink that throttles the first ``throttle_first`` RCPTs with 421 and waits ``delay`` s per DATA."""

    def __init__(self, *, throttle_first: int = 0, delay: float = 0.0) -> None:
        super().__init__()
        from aiosmtpd.controller import Controller

        self.throttle_first = throttle_first
        self.delay = delay
        self.rcpt_seen = 0
        self._controller = Controller(_PressureHandler(self), hostname="127.0.0.1", port=self.port)
