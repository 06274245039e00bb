"""The paced email transport against a real SMTP server that answers 421 to the first recipients."""

from __future__ import annotations

from collections.abc import Sequence

from sojourn.channels.email import OutgoingEmail, SendResult, SmtpConfig, SmtpTransport
from sojourn.channels.rate import AimdRate
from sojourn.channels.throttled_email import ThrottledEmailTransport, is_smtp_throttle
from tests.support.smtp_pressure import PressureSmtpSink


def email(i: int) -> OutgoingEmail:
    return OutgoingEmail(
        message_id=f"e{i:04d}",
        from_address="hello@sojourn.test",
        to_address=f"person{i}@example.com",
        subject=f"message {i}",
        html=None,
        text="hi",
    )


def test_is_smtp_throttle() -> None:
    assert is_smtp_throttle(SendResult(False, 421, "slow down"))
    assert is_smtp_throttle(SendResult(False, 451, "try later"))
    assert not is_smtp_throttle(SendResult(False, 550, "no such user"))
    assert not is_smtp_throttle(SendResult(True, 250, "ok"))


async def test_421_backs_off_and_every_message_arrives_exactly_once() -> None:
    sink = PressureSmtpSink(throttle_first=10)
    sink.start()
    rate = AimdRate(maximum=200, minimum=1, cooldown=0.05)
    transport = ThrottledEmailTransport(SmtpTransport(SmtpConfig.from_url(sink.url), connections=4), rate)
    committed: list[str] = []

    async def commit(ids: Sequence[str]) -> None:
        committed.extend(ids)

    try:
        results = await transport.send_batch([email(i) for i in range(30)], commit)
    finally:
        await transport.close()
        sink.stop()

    assert all(r.ok for r in results.values()) and len(results) == 30
    assert rate.throttles >= 1 and rate.rate < 200
    # 10 refused recipients were resent; the 30 accepted ones were never sent again.
    assert sink.rcpt_seen == 40
    recipients = [m.to for m in sink.messages]
    assert sorted(recipients) == sorted(f"person{i}@example.com" for i in range(30))
    assert len(set(committed)) == 30 and len(committed) == 30
