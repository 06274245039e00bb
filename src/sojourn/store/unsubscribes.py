"""What unsubscribing from all of a contact list does beyond the list: suppression and the consent ledger.

A contact who unsubscribes from all (the one-click link of list mail without a topic, "unsubscribe from all" on
the preference page, or UpdateContact/CreateContact with UnsubscribeAll) goes on the account suppression list
with sojourn's reason ``UNSUBSCRIBE``, so no journey, campaign or direct send reaches the address, and every
app's endpoints with that address get a ``withdrawn`` consent row saying why. Subscribing again lifts the
``UNSUBSCRIBE`` entry once no list still has the address unsubscribed (entries for bounces and complaints stay).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.store import consent_repo, suppression_repo


async def unsubscribed_from_all(
    conn: AsyncConnection,
    list_name: str,
    address: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> None:
    """Suppress ``address`` (unless already suppressed for a bounce or complaint) and record why, per app.

    Args:
        conn: A connection inside the transaction that unsubscribed the contact.
        list_name: The contact list.
        address: The contact's normalized email address.
        ip: The unsubscriber's IP (pages), if known.
        user_agent: Their user agent (pages), if known.
    """
    key = suppression_repo.normalize_address(address)
    await conn.execute(
        text(
            "INSERT INTO suppressed_destinations (email_address, reason) VALUES (:e, :r) "
            "ON CONFLICT (email_address) DO NOTHING"
        ),
        {"e": key, "r": suppression_repo.UNSUBSCRIBE},
    )
    endpoints = await conn.execute(
        text("SELECT app_id, id FROM endpoints WHERE lower(btrim(address)) = :e AND channel_type = 'EMAIL'"),
        {"e": key},
    )
    for app_id, endpoint_id in endpoints.all():
        await consent_repo.record(
            conn,
            consent_repo.ConsentEvent(
                app_id=app_id,
                endpoint_id=endpoint_id,
                address=key,
                channel="EMAIL",
                status="withdrawn",
                source="unsubscribe",
                ip=ip,
                user_agent=user_agent,
                reason=f"unsubscribed from all of contact list {list_name}",
            ),
            # The suppression entry holds the state; the endpoint's own permission is left as it is.
            update_permission=False,
        )


async def subscribed_again(conn: AsyncConnection, address: str) -> None:
    """Lift the ``UNSUBSCRIBE`` suppression of ``address`` when no contact list still has it unsubscribed."""
    key = suppression_repo.normalize_address(address)
    await conn.execute(
        text(
            "DELETE FROM suppressed_destinations WHERE email_address = :e AND reason = :r "
            "AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.email_address = :e AND c.unsubscribe_all)"
        ),
        {"e": key, "r": suppression_repo.UNSUBSCRIBE},
    )
