"""Contact lists and contacts in PostgreSQL (tables in ``lists_tables.py``; rules in ``domain/lists.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.lists import ContactFilter, Topic, filter_sql


def _topics_json(topics: Sequence[Topic]) -> str:
    return json.dumps([t.to_api() for t in topics])


async def create_list(
    conn: AsyncConnection,
    name: str,
    *,
    description: str | None,
    topics: Sequence[Topic],
    tags: Sequence[Mapping[str, str]],
) -> bool:
    """Insert a contact list. Returns False when one of that name exists (nothing changes then)."""
    created = await conn.scalar(
        text(
            "INSERT INTO contact_lists (name, description, topics, tags) "
            "VALUES (:n, :d, CAST(:t AS jsonb), CAST(:g AS jsonb)) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {"n": name, "d": description, "t": _topics_json(topics), "g": json.dumps(list(tags))},
    )
    return created is not None


async def get_list(conn: AsyncConnection, name: str, *, for_update: bool = False) -> Row[Any] | None:
    """A contact list row (``name, description, topics, tags, created_at, updated_at``), or None."""
    lock = " FOR UPDATE" if for_update else ""
    result = await conn.execute(text(f"SELECT * FROM contact_lists WHERE name = :n{lock}"), {"n": name})
    return result.first()


async def update_list(
    conn: AsyncConnection, name: str, *, description: str | None, topics: Sequence[Topic] | None
) -> bool:
    """Replace a list's topics and description; either one is kept when None. False when there is no such list."""
    result = await conn.execute(
        text(
            "UPDATE contact_lists SET description = COALESCE(CAST(:d AS text), description), "
            "topics = COALESCE(CAST(:t AS jsonb), topics), updated_at = now() WHERE name = :n"
        ),
        {"n": name, "d": description, "t": None if topics is None else _topics_json(topics)},
    )
    return bool(result.rowcount)


async def delete_list(conn: AsyncConnection, name: str) -> bool:
    """Delete a list and (by the foreign key's cascade) all its contacts. False when there is no such list."""
    result = await conn.execute(text("DELETE FROM contact_lists WHERE name = :n"), {"n": name})
    return bool(result.rowcount)


async def list_lists(conn: AsyncConnection, *, after: str | None, limit: int) -> list[Row[Any]]:
    """Up to ``limit`` lists (``name, updated_at``) whose name sorts after ``after``, by name."""
    result = await conn.execute(
        text(
            "SELECT name, updated_at FROM contact_lists WHERE CAST(:a AS text) IS NULL OR name > :a "
            "ORDER BY name LIMIT :l"
        ),
        {"a": after, "l": limit},
    )
    return list(result)


async def create_contact(
    conn: AsyncConnection,
    list_name: str,
    email: str,
    *,
    preferences: Mapping[str, str],
    unsubscribe_all: bool,
    attributes_data: str | None,
) -> bool:
    """Insert a contact. Returns False when the list already has that address."""
    created = await conn.scalar(
        text(
            "INSERT INTO contacts (list_name, email_address, topic_preferences, unsubscribe_all, attributes_data) "
            "VALUES (:l, :e, CAST(:p AS jsonb), :u, :a) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {
            "l": list_name,
            "e": email,
            "p": json.dumps(dict(preferences)),
            "u": unsubscribe_all,
            "a": attributes_data,
        },
    )
    return created is not None


async def get_contact(conn: AsyncConnection, list_name: str, email: str) -> Row[Any] | None:
    """A contact row, or None."""
    result = await conn.execute(
        text("SELECT * FROM contacts WHERE list_name = :l AND email_address = :e"),
        {"l": list_name, "e": email},
    )
    return result.first()


async def contacts_by_address(
    conn: AsyncConnection, list_name: str, emails: Iterable[str]
) -> dict[str, Row[Any]]:
    """The list's contacts among ``emails`` (normalized addresses), by address."""
    result = await conn.execute(
        text("SELECT * FROM contacts WHERE list_name = :l AND email_address = ANY(:e)"),
        {"l": list_name, "e": list(emails)},
    )
    return {row.email_address: row for row in result}


async def update_contact(
    conn: AsyncConnection,
    list_name: str,
    email: str,
    *,
    preferences: Mapping[str, str],
    unsubscribe_all: bool | None,
    attributes_data: str | None,
) -> bool:
    """Replace a contact's explicit preferences; UnsubscribeAll and AttributesData change only when given.

    Returns:
        False when there is no such contact.
    """
    result = await conn.execute(
        text(
            "UPDATE contacts SET topic_preferences = CAST(:p AS jsonb), "
            "unsubscribe_all = COALESCE(CAST(:u AS boolean), unsubscribe_all), "
            "attributes_data = COALESCE(CAST(:a AS text), attributes_data), updated_at = now() "
            "WHERE list_name = :l AND email_address = :e"
        ),
        {
            "l": list_name,
            "e": email,
            "p": json.dumps(dict(preferences)),
            "u": unsubscribe_all,
            "a": attributes_data,
        },
    )
    return bool(result.rowcount)


async def delete_contact(conn: AsyncConnection, list_name: str, email: str) -> bool:
    """Delete a contact. False when there is no such contact."""
    result = await conn.execute(
        text("DELETE FROM contacts WHERE list_name = :l AND email_address = :e"), {"l": list_name, "e": email}
    )
    return bool(result.rowcount)


async def list_contacts(
    conn: AsyncConnection, list_name: str, contact_filter: ContactFilter, *, after: str | None, limit: int
) -> list[Row[Any]]:
    """One page of a list's contacts in address order, filtered in SQL.

    Keyset paging on the primary key (list_name, email_address): each page is an index range scan from
    ``after``, so the cost of a page does not grow with its position in the list.
    """
    condition, params = filter_sql(contact_filter)
    # Two spellings rather than "(:a IS NULL OR address > :a)", which hides the range from the planner.
    resume = "AND c.email_address > :a " if after is not None else ""
    result = await conn.execute(
        text(
            "SELECT c.email_address, c.topic_preferences, c.unsubscribe_all, c.updated_at FROM contacts c "
            f"WHERE c.list_name = :l {resume}AND ({condition}) "
            "ORDER BY c.list_name, c.email_address LIMIT :lim"
        ),
        {"l": list_name, "a": after, "lim": limit, **params},
    )
    return list(result)


async def unsubscribe(conn: AsyncConnection, list_name: str, email: str, topic: str | None) -> None:
    """Opt a recipient out of ``topic`` (or, with no topic, out of the whole list), creating the contact if needed.

    Idempotent: doing it twice leaves the same state.
    """
    if topic is None:
        await conn.execute(
            text(
                "INSERT INTO contacts (list_name, email_address, unsubscribe_all) VALUES (:l, :e, true) "
                "ON CONFLICT (list_name, email_address) DO UPDATE SET unsubscribe_all = true, updated_at = now()"
            ),
            {"l": list_name, "e": email},
        )
        return
    await conn.execute(
        text(
            "INSERT INTO contacts (list_name, email_address, topic_preferences) "
            "VALUES (:l, :e, jsonb_build_object(CAST(:t AS text), 'OPT_OUT')) "
            "ON CONFLICT (list_name, email_address) DO UPDATE SET "
            "topic_preferences = contacts.topic_preferences || jsonb_build_object(CAST(:t AS text), 'OPT_OUT'), "
            "updated_at = now()"
        ),
        {"l": list_name, "e": email, "t": topic},
    )


async def save_preferences(
    conn: AsyncConnection,
    list_name: str,
    email: str,
    *,
    preferences: Mapping[str, str],
    unsubscribe_all: bool,
) -> None:
    """Store what a contact chose on the preference page (every topic explicit), creating the contact if needed."""
    await conn.execute(
        text(
            "INSERT INTO contacts (list_name, email_address, topic_preferences, unsubscribe_all) "
            "VALUES (:l, :e, CAST(:p AS jsonb), :u) "
            "ON CONFLICT (list_name, email_address) DO UPDATE SET topic_preferences = EXCLUDED.topic_preferences, "
            "unsubscribe_all = EXCLUDED.unsubscribe_all, updated_at = now()"
        ),
        {"l": list_name, "e": email, "p": json.dumps(dict(preferences)), "u": unsubscribe_all},
    )
