"""Contact lists and page links for the page tests (HTTP and browser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.channels.page_tokens import Purpose, make_page_token
from sojourn.settings import Settings
from tests.support.helpers import unique

TOPICS = [
    {
        "TopicName": "weekly",
        "DisplayName": "Weekly digest",
        "Description": "The week's best posts, every Monday",
        "DefaultSubscriptionStatus": "OPT_IN",
    },
    {"TopicName": "offers", "DisplayName": "Special offers", "DefaultSubscriptionStatus": "OPT_OUT"},
]


def make_list(sesv2: Any, email: str | None = None) -> str:
    """A list with TOPICS (and the contact ``email``, with no explicit preferences)."""
    name = unique("pages-")
    sesv2.create_contact_list(ContactListName=name, Topics=TOPICS, Description="News from Example Ltd")
    if email:
        sesv2.create_contact(ContactListName=name, EmailAddress=email)
    return name


def page_url(
    base: str,
    settings: Settings,
    purpose: Purpose,
    list_name: str,
    email: str,
    topic: str | None = None,
    *,
    issued: datetime | None = None,
) -> str:
    """The URL of a page for (list, contact), signed as sojourn signs them."""
    token = make_page_token(
        purpose=purpose,
        list_name=list_name,
        email_address=email,
        topic=topic,
        now=issued or datetime.now(UTC),
        ttl=timedelta(days=settings.page_token_ttl_days),
        secret=settings.page_key,
    )
    return f"{base}/{'u' if purpose == 'unsubscribe' else 'preferences'}/{token}"


async def stored_contact(db: AsyncEngine, list_name: str, email: str) -> Any:
    """The contact row as stored in Postgres, or None."""
    async with db.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM contacts WHERE list_name = :l AND email_address = :e"),
            {"l": list_name, "e": email},
        )
        return result.first()
