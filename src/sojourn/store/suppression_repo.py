"""The account-level suppression list (SESv2 SuppressedDestination) and its SuppressedReasons setting."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.store.suppression_tables import account_suppression, suppressed_destinations

REASONS = ("BOUNCE", "COMPLAINT")
#: SES's default for accounts created after 2019-11-25: both reasons suppress.
DEFAULT_REASONS = REASONS

# The account's enabled reasons as a SQL array (the default when never configured).
ENABLED_REASONS_SQL = (
    "COALESCE((SELECT a.suppressed_reasons FROM account_suppression a WHERE a.id = 1), "
    "ARRAY['BOUNCE', 'COMPLAINT']::text[])"
)
#: sojourn's own reason: the address unsubscribed from all of a contact list (always enforced; SES has no such
#: reason, so PutSuppressedDestination does not take it, but listings show it and DeleteSuppressedDestination
#: lifts it).
UNSUBSCRIBE = "UNSUBSCRIBE"
# The reasons that stop a send: the enabled ones plus UNSUBSCRIBE.
ENFORCED_REASONS_SQL = f"array_append({ENABLED_REASONS_SQL}, '{UNSUBSCRIBE}')"


@dataclass(frozen=True)
class Suppressed:
    """One entry of the suppression list."""

    email_address: str
    reason: str
    last_update_time: datetime
    message_id: str | None = None
    feedback_id: str | None = None


def normalize_address(address: str) -> str:
    """The key an address is stored and looked up under (trimmed, lower-cased)."""
    return address.strip().lower()


async def put(
    conn: AsyncConnection,
    address: str,
    reason: str,
    *,
    at: datetime | None = None,
    message_id: str | None = None,
    feedback_id: str | None = None,
) -> None:
    """Add or update an entry (PutSuppressedDestination and bounce/complaint intake).

    Args:
        conn: A connection inside a transaction.
        address: The email address (normalised here).
        reason: BOUNCE or COMPLAINT.
        at: LastUpdateTime (default: the database's now()).
        message_id: The message that caused it, when known.
        feedback_id: The feedback notification that caused it, when known.
    """
    values: dict[str, object] = {
        "email_address": normalize_address(address),
        "reason": reason,
        "message_id": message_id,
        "feedback_id": feedback_id,
    }
    if at is not None:
        values["last_update_time"] = at
    stmt = pg_insert(suppressed_destinations).values(**values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[suppressed_destinations.c.email_address],
            set_={
                "reason": stmt.excluded.reason,
                "last_update_time": stmt.excluded.last_update_time,
                "message_id": stmt.excluded.message_id,
                "feedback_id": stmt.excluded.feedback_id,
            },
        )
    )


async def get(conn: AsyncConnection, address: str) -> Suppressed | None:
    """The entry for ``address``, or None."""
    row = (
        await conn.execute(
            suppressed_destinations.select().where(
                suppressed_destinations.c.email_address == normalize_address(address)
            )
        )
    ).first()
    return Suppressed(**row._mapping) if row is not None else None


async def delete(conn: AsyncConnection, address: str) -> bool:
    """Remove the entry; False when there was none."""
    result = await conn.execute(
        suppressed_destinations.delete().where(
            suppressed_destinations.c.email_address == normalize_address(address)
        )
    )
    return bool(result.rowcount)


def encode_page_token(last_update_time: datetime, address: str) -> str:
    """The NextToken after the entry (LastUpdateTime desc, address asc keyset)."""
    raw = json.dumps([last_update_time.isoformat(), address]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_page_token`.

    Raises:
        ValueError: the token was not made by :func:`encode_page_token`.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, address = json.loads(raw)
        return datetime.fromisoformat(when), str(address)
    except (ValueError, TypeError) as err:
        raise ValueError(f"NextToken {token!r} is not a token this API returned") from err


async def list_page(
    conn: AsyncConnection,
    *,
    reasons: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    page_size: int = 1000,
    after: tuple[datetime, str] | None = None,
) -> tuple[list[Suppressed], str | None]:
    """One page of the list, newest first, and the token of the next page (None at the end).

    Args:
        conn: A connection.
        reasons: Only these reasons (empty: all).
        start: Only entries updated at or after this time.
        end: Only entries updated before or at this time.
        page_size: Most entries returned.
        after: The keyset position a NextToken decoded to.
    """
    clauses = ["TRUE"]
    params: dict[str, object] = {"limit": page_size + 1}
    if reasons:
        clauses.append("reason = ANY(:reasons)")
        params["reasons"] = list(reasons)
    if start is not None:
        clauses.append("last_update_time >= :start")
        params["start"] = start
    if end is not None:
        clauses.append("last_update_time <= :end")
        params["end"] = end
    if after is not None:
        clauses.append(
            "(last_update_time < :after_t OR (last_update_time = :after_t AND email_address > :after_a))"
        )
        params["after_t"], params["after_a"] = after
    rows = (
        await conn.execute(
            text(
                "SELECT email_address, reason, last_update_time, message_id, feedback_id "
                f"FROM suppressed_destinations WHERE {' AND '.join(clauses)} "
                "ORDER BY last_update_time DESC, email_address ASC LIMIT :limit"
            ),
            params,
        )
    ).all()
    items = [Suppressed(**r._mapping) for r in rows[:page_size]]
    token = None
    if len(rows) > page_size:
        last = items[-1]
        token = encode_page_token(last.last_update_time, last.email_address)
    return items, token


async def enabled_reasons(conn: AsyncConnection) -> list[str]:
    """The account's SuppressedReasons (SES's default, both, until set)."""
    value = await conn.scalar(text(f"SELECT {ENABLED_REASONS_SQL}"))
    return list(value or [])


async def set_enabled_reasons(conn: AsyncConnection, reasons: Iterable[str]) -> None:
    """PutAccountSuppressionAttributes: replace the account's SuppressedReasons."""
    wanted = sorted(set(reasons))
    stmt = pg_insert(account_suppression).values(id=1, suppressed_reasons=wanted)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[account_suppression.c.id],
            set_={"suppressed_reasons": stmt.excluded.suppressed_reasons, "updated_at": text("now()")},
        )
    )


async def suppressed_addresses(conn: AsyncConnection, addresses: Iterable[str]) -> set[str]:
    """Which of ``addresses`` are on the suppression list for a reason the account has enabled.

    For senders that have raw addresses rather than endpoint rows (SendMessages to Addresses, SendEmail).

    Returns:
        The given addresses (as given, not normalised) that must not be sent to.
    """
    by_key: dict[str, list[str]] = {}
    for address in addresses:
        by_key.setdefault(normalize_address(address), []).append(address)
    if not by_key:
        return set()
    rows = await conn.execute(
        text(
            "SELECT email_address FROM suppressed_destinations "
            f"WHERE email_address = ANY(:keys) AND reason = ANY({ENFORCED_REASONS_SQL})"
        ),
        {"keys": list(by_key)},
    )
    return {original for (key,) in rows for original in by_key[key]}
