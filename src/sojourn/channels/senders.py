"""Per-process send lanes: for each lane, an email transport and a provider per channel, with their own rates.

One :class:`SendLanes` per process (the API server's :class:`~sojourn.api.state.AppState` and the worker each
build one). ``lanes.email(Lane.TRANSACTIONAL)`` and ``lanes.provider("SMS", Lane.BULK)`` hand out the
transport or provider of a lane, built on first use from the settings. Each lane has its own SMTP connection
pool / HTTP client and its own :class:`~sojourn.channels.rate.AimdRate`; the bulk lane also waits at the shared
:class:`~sojourn.channels.priority.LaneGate` whenever a transactional send is in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sojourn.channels.email import EmailTransport, NullTransport, SmtpConfig, SmtpTransport
from sojourn.channels.priority import Lane, LaneGate
from sojourn.channels.providers import ChannelProvider, provider_from_url
from sojourn.channels.rate import AimdRate
from sojourn.channels.throttled_email import ThrottledEmailTransport
from sojourn.settings import Settings

#: SMTP connections per lane (each lane has its own pool: a blast never holds a transactional connection).
SMTP_CONNECTIONS = {Lane.TRANSACTIONAL: 8, Lane.BULK: 8}
PROVIDER_CONCURRENCY = {Lane.TRANSACTIONAL: 8, Lane.BULK: 16}


class SendLanes:
    """The process's senders, by lane and channel.

    Args:
        settings: SMTP URL, provider URLs and secrets, rate ceilings.
        email_transports: Prebuilt email transports per lane (tests, benchmarks); others come from settings.
    """

    def __init__(
        self, settings: Settings, *, email_transports: dict[Lane, EmailTransport] | None = None
    ) -> None:
        self.settings = settings
        self.gate = LaneGate()
        self._email: dict[Lane, EmailTransport] = {}
        self._inner_email = dict(email_transports or {})
        self._providers: dict[tuple[str, Lane], ChannelProvider] = {}
        self.rates: dict[tuple[str, Lane], AimdRate] = {}

    def rate(self, channel: str, lane: Lane) -> AimdRate:
        """The rate controller of a channel's lane."""
        key = (channel, lane)
        if key not in self.rates:
            ceiling = self.settings.smtp_max_rate if channel == "EMAIL" else self.settings.provider_max_rate
            self.rates[key] = AimdRate(
                maximum=ceiling, minimum=min(1.0, ceiling), increase=max(1.0, ceiling / 20)
            )
        return self.rates[key]

    def email(self, lane: Lane) -> EmailTransport:
        """The email transport of ``lane`` (paced and throttle-aware)."""
        if lane not in self._email:
            inner = self._inner_email.get(lane)
            if inner is None:
                url = self.settings.smtp_url
                inner = (
                    NullTransport()
                    if url.startswith("null:")
                    else SmtpTransport(SmtpConfig.from_url(url), connections=SMTP_CONNECTIONS[lane])
                )
            if isinstance(inner, NullTransport):
                # Nothing to throttle or to share: benchmarks measure the engine, not the pacing.
                self._email[lane] = inner
                return inner
            self._email[lane] = ThrottledEmailTransport(
                inner,
                self.rate("EMAIL", lane),
                gate=self.gate if lane is Lane.BULK else None,
                round_size=getattr(inner, "connections", SMTP_CONNECTIONS[lane]),
            )
        return self._email[lane]

    def provider(self, channel: str, lane: Lane) -> ChannelProvider:
        """The provider of ``channel`` (SMS, PUSH, VOICE, CUSTOM) for ``lane``.

        Raises:
            ProviderNotConfiguredError: The channel's provider URL is not set (or not usable).
        """
        key = (channel, lane)
        if key not in self._providers:
            url, secret = self.settings.provider_setting(channel)
            self._providers[key] = provider_from_url(
                url,
                secret,
                channel=channel,
                data_dir=self.settings.data_dir,
                rate=self.rate(channel, lane),
                gate=self.gate if lane is Lane.BULK else None,
                concurrency=PROVIDER_CONCURRENCY[lane],
            )
        return self._providers[key]

    @asynccontextmanager
    async def transactional(self) -> AsyncIterator[None]:
        """Hold the bulk lane back while the block sends transactional messages."""
        async with self.gate.transactional():
            yield

    async def close(self) -> None:
        """Close every transport and provider built so far."""
        for transport in self._email.values():
            await transport.close()
        for provider in self._providers.values():
            await provider.close()
        self._email.clear()
        self._providers.clear()
