"""Email delivery over SMTP (aiosmtplib), with the ledger commit aligned to SMTP's own commit point.

SMTP has no idempotency key, so "exactly once" needs care. A message is accepted by the server only when it
receives the final ``.`` of DATA; a connection that drops before it discards the message. So for each batch we
(1) open one transaction per message up to the end of its body, (2) mark the batch ``sent`` in the ledger and
commit, (3) write the final dots and read the replies. A crash before (2) loses nothing and sends nothing: the
retry sends again. A crash after (2) leaves messages that the server has (or will have) accepted, and the ledger
already says so: the retry does not send them twice. The only window left is between the ledger commit and
the few bytes of the dots, microseconds per batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes

# The stdlib's own choice of transfer encoding for a text part, reused so that spliced messages match it.
from email.contentmanager import _encode_text  # type: ignore[attr-defined]
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formatdate
from typing import Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

log = logging.getLogger(__name__)

_LINE_ENDINGS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_LEADING_PERIOD = re.compile(rb"(?m)^\.")


@dataclass(frozen=True)
class OutgoingEmail:
    """One rendered email, addressed to one recipient (plus, for sesv2 SendEmail, more To, Cc and Bcc).

    ``headers`` replace any header of the same name (List-Unsubscribe must override what the content has).
    ``raw``, when set, is a complete RFC 5322 message sent as it is, but for its Message-ID (the ledger's)
    and ``headers``; ``subject``, ``html`` and ``text`` are then ignored.
    """

    message_id: str
    from_address: str
    to_address: str
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str] = field(default_factory=dict)
    also_to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    raw: bytes | None = None

    @property
    def recipients(self) -> list[str]:
        """Every envelope recipient (RCPT TO): To, Cc and Bcc."""
        return [self.to_address, *self.also_to, *self.cc, *self.bcc]

    def to_bytes(self, domain: str) -> bytes:
        """The RFC 5322 message, with the ledger's message id as its Message-ID."""
        if self.raw is None and (spliced := _spliced_mime(self, domain)) is not None:
            return spliced
        if self.raw is not None:
            parsed = message_from_bytes(self.raw, policy=SMTP_POLICY)
            del parsed["Message-ID"]
            parsed["Message-ID"] = f"<{self.message_id}@{domain}>"
            for name, value in self.headers.items():
                del parsed[name]
                parsed[name] = value
            return parsed.as_bytes()
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = self.from_address
        msg["To"] = ", ".join([self.to_address, *self.also_to])
        if self.cc:
            msg["Cc"] = ", ".join(self.cc)
        if self.reply_to:
            msg["Reply-To"] = ", ".join(self.reply_to)
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = f"<{self.message_id}@{domain}>"
        for name, value in self.headers.items():
            del msg[name]
            msg[name] = value
        if self.text is not None:
            msg.set_content(self.text)
        if self.html is not None:
            if self.text is not None:
                msg.add_alternative(self.html, subtype="html")
            else:
                msg.set_content(self.html, subtype="html")
        return msg.as_bytes()


# ---- the MIME message written directly ----
#
# ``email.message.EmailMessage`` parses every header it is given and builds a class per header: about 2 ms
# a message, more than everything else a send does. For the messages sojourn builds (plain addresses, text
# and/or HTML parts in UTF-8) the bytes are written directly here, in the layout EmailMessage produces:
# the same header order, folding and RFC 2047 encoding (headers that need either go through the policy's
# own folder), the same transfer-encoding choice (the stdlib's ``_encode_text``). Anything else (display
# names with specials, custom headers that replace standard ones, raw messages) takes EmailMessage's path.

_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_ADDRESS: Final = re.compile(
    rf"(?:[A-Za-z0-9]+(?: [A-Za-z0-9]+)* <{_DOT_ATOM}@{_DOT_ATOM}>|{_DOT_ATOM}@{_DOT_ATOM})"
)
_HEADER_NAME: Final = re.compile(r"[!-9;-~]+")
_PLAIN_VALUE: Final = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII words, single spaces
_OWN_HEADERS: Final = frozenset(
    "from to cc reply-to subject date message-id mime-version content-type content-transfer-encoding".split()
)
_MAX_LINE = SMTP_POLICY.max_line_length or 78
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))


def _header(name: str, value: str) -> str:
    """One header line as EmailMessage writes it: as is when short and plain, else the policy's folding."""
    if len(name) + 2 + len(value) <= _MAX_LINE and _PLAIN_VALUE.fullmatch(value) and "=?" not in value:
        return f"{name}: {value}\r\n"
    return str(SMTP_POLICY.header_factory(name, value).fold(policy=SMTP_POLICY))


def _list_unsubscribe_header(value: str) -> str:
    """List-Unsubscribe as its URLs need it: folded between them, never RFC 2047-encoded (a mail client must read
    the URLs; RFC 2369 allows no encoded words, and a line may be up to 998 characters)."""
    return "List-Unsubscribe: " + ",\r\n ".join(part.strip() for part in value.split(",")) + "\r\n"


def _part(content: str) -> tuple[str, bytes]:
    """A text part's transfer encoding and body bytes (CRLF line ends), as ``set_content`` chooses them."""
    cte, payload = _encode_text(content, "utf-8", None, SMTP_POLICY)
    return cte, _LINE_ENDINGS.sub(b"\r\n", payload.encode("ascii", "surrogateescape"))


def _spliced_mime(email: OutgoingEmail, domain: str) -> bytes | None:
    """The message's bytes, or None when it needs EmailMessage's general path."""
    addresses = [email.from_address, email.to_address, *email.also_to, *email.cc, *email.reply_to]
    if not all(_ADDRESS.fullmatch(a) for a in addresses):
        return None
    if not all(_HEADER_NAME.fullmatch(n) and n.lower() not in _OWN_HEADERS for n in email.headers):
        return None
    if (email.text is None and email.html is None) or "\r" in email.subject or "\n" in email.subject:
        return None
    head = [
        _header("From", email.from_address),
        _header("To", ", ".join([email.to_address, *email.also_to])),
    ]
    if email.cc:
        head.append(_header("Cc", ", ".join(email.cc)))
    if email.reply_to:
        head.append(_header("Reply-To", ", ".join(email.reply_to)))
    head.append(_header("Subject", email.subject))
    head.append(f"Date: {format_datetime(datetime.now(UTC))}\r\n")
    head.append(_header("Message-ID", f"<{email.message_id}@{domain}>"))
    for name, value in email.headers.items():
        if "\r" in value or "\n" in value:
            return None
        head.append(
            _list_unsubscribe_header(value) if name.lower() == "list-unsubscribe" else _header(name, value)
        )
    if email.text is None or email.html is None:
        subtype, content = ("plain", email.text) if email.html is None else ("html", email.html)
        assert content is not None
        cte, body = _part(content)
        head.append(
            f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
            "MIME-Version: 1.0\r\n\r\n"
        )
        return "".join(head).encode("ascii") + body
    text_cte, text_body = _part(email.text)
    html_cte, html_body = _part(email.html)
    while True:
        boundary = f"==============={random.randrange(sys.maxsize):0{_BOUNDARY_WIDTH}d}=="
        if boundary.encode() not in text_body and boundary.encode() not in html_body:
            break
    head.append(
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
        f'--{boundary}\r\nContent-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {text_cte}\r\n\r\n'
    )
    middle = (
        f'\r\n--{boundary}\r\nContent-Type: text/html; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {html_cte}\r\nMIME-Version: 1.0\r\n\r\n"
    )
    return b"".join(
        [
            "".join(head).encode("ascii"),
            text_body,
            middle.encode(),
            html_body,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )


@dataclass(frozen=True)
class SendResult:
    """What the server said about one message."""

    ok: bool
    code: int
    message: str

    @property
    def permanent(self) -> bool:
        """A 5xx refusal: sending again will not help."""
        return not self.ok and self.code >= 500


CommitFn = Callable[[Sequence[str]], Awaitable[None]]


class EmailTransport(Protocol):
    """Delivers a batch of emails; calls ``commit`` with their ids at the point of no return."""

    async def send_batch(self, messages: Sequence[OutgoingEmail], commit: CommitFn) -> dict[str, SendResult]:
        """Send ``messages``; return a result per message id."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class NullTransport:
    """Discards mail but goes through the same commit point (benchmarks, dry runs)."""

    async def send_batch(self, messages: Sequence[OutgoingEmail], commit: CommitFn) -> dict[str, SendResult]:
        """Commit every message and report it accepted."""
        await commit([m.message_id for m in messages])
        return {m.message_id: SendResult(True, 250, "discarded by the null transport") for m in messages}

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP relay, parsed from ``SOJOURN_SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    start_tls: bool = False
    # Envelope sender (MAIL FROM): where receiving servers send DSN bounces, e.g. sojourn's bounce mailbox.
    return_path: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Parse ``smtp://[user:pass@]host:port`` (``smtps://`` implicit TLS, ``?starttls=true``,
        ``?return_path=bounces@example.com`` for the envelope sender)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP URL must start with smtp:// or smtps://, got {url!r}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=parts.scheme == "smtps",
            start_tls="starttls=true" in (parts.query or "").lower(),
            return_path=next(iter(parse_qs(parts.query or "").get("return_path", [])), None),
        )


class SmtpTransport:
    """Sends through an SMTP relay on a small pool of connections, one message per connection per round.

    Args:
        config: The relay.
        connections: How many messages are in flight at once (and so the batch round size).
        timeout: Seconds to wait for any server reply.
    """

    def __init__(self, config: SmtpConfig, *, connections: int = 8, timeout: float = 30.0) -> None:
        self.config = config
        self.connections = connections
        self.timeout = timeout
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connect(self) -> aiosmtplib.SMTP:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
        cfg = self.config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            timeout=self.timeout,
            use_tls=cfg.implicit_tls,
            start_tls=cfg.start_tls,
            tls_context=ssl.create_default_context() if (cfg.implicit_tls or cfg.start_tls) else None,
        )
        await client.connect()
        if cfg.username and cfg.password:
            await client.login(cfg.username, cfg.password)
        return client

    async def _prepare(self, client: aiosmtplib.SMTP, email: OutgoingEmail, domain: str) -> None:
        """Phase 1: envelope and body, everything but the final dot."""
        await client.mail(self.config.return_path or email.from_address)
        for recipient in email.recipients:
            await client.rcpt(recipient)
        reply = await client.execute_command(b"DATA")
        if reply.code != 354:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        body = _LINE_ENDINGS.sub(b"\r\n", email.to_bytes(domain))
        body = _LEADING_PERIOD.sub(b"..", body)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        assert client.protocol is not None
        client.protocol.write(body)

    async def _finish(self, client: aiosmtplib.SMTP) -> SendResult:
        """Phase 2: the final dot, and the server's verdict."""
        assert client.protocol is not None
        client.protocol.write(b".\r\n")
        reply = await client.protocol.read_response(timeout=self.timeout)
        return SendResult(reply.code == 250, reply.code, reply.message)

    async def send_batch(self, messages: Sequence[OutgoingEmail], commit: CommitFn) -> dict[str, SendResult]:
        """Send ``messages`` in rounds of ``connections``; see the module docstring for the commit point."""
        results: dict[str, SendResult] = {}
        for start in range(0, len(messages), self.connections):
            results.update(await self._send_round(messages[start : start + self.connections], commit))
        return results

    async def _send_round(self, round_: Sequence[OutgoingEmail], commit: CommitFn) -> dict[str, SendResult]:
        clients = await asyncio.gather(*(self._connect() for _ in round_))
        domain = _domain_of(round_[0].from_address)
        prepared = await asyncio.gather(
            *(self._prepare(c, m, domain) for c, m in zip(clients, round_, strict=True)),
            return_exceptions=True,
        )
        failed = {
            m.message_id: p for m, p in zip(round_, prepared, strict=True) if isinstance(p, BaseException)
        }
        results: dict[str, SendResult] = {}
        for message_id, err in failed.items():
            if isinstance(err, aiosmtplib.SMTPResponseException):
                results[message_id] = SendResult(False, err.code, err.message)
            else:
                # The relay is unreachable or broke mid-way: nothing was accepted, let the activity retry.
                for client in clients:
                    client.close()
                raise err
        ready = [(c, m) for c, m in zip(clients, round_, strict=True) if m.message_id not in failed]
        await commit([m.message_id for _, m in ready])
        finals = await asyncio.gather(*(self._finish(c) for c, _ in ready), return_exceptions=True)
        for (client, message), final in zip(ready, finals, strict=True):
            if isinstance(final, BaseException):
                # The ledger already says sent: the server may have accepted it, so it is not sent again.
                log.warning("no reply after DATA for message %s: %s", message.message_id, final)
                results[message.message_id] = SendResult(True, 0, f"no reply after DATA: {final}")
                client.close()
            else:
                results[message.message_id] = final
                self._idle.append(client)
        for client, message in zip(clients, round_, strict=True):
            if message.message_id in failed:
                await _reset(client)
                self._idle.append(client)
        return results

    async def close(self) -> None:
        """Quit every idle connection."""
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except aiosmtplib.SMTPException:
        client.close()


def _domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip(">") or "sojourn.local"


def transport_from_url(url: str) -> EmailTransport:
    """The transport ``SOJOURN_SMTP_URL`` asks for: ``null://`` or an SMTP relay."""
    if url.startswith("null:"):
        return NullTransport()
    return SmtpTransport(SmtpConfig.from_url(url))
