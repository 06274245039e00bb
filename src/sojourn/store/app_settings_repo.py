"""Where a project's ApplicationSettings live: the ``application`` member of ``apps.settings`` (JSONB).

``apps.settings`` also holds sojourn's own bookkeeping (``endpoint_attribute_keys``, the 250-key
registry); only the ``application`` member is written here, so the two never overwrite each other.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.app_settings import ApplicationSettings
from sojourn.store.apps_repo import require_app
from sojourn.store.endpoint_rows import iso_timestamp

SETTINGS_KEY = "application"


async def load_app_settings(conn: AsyncConnection, app_id: str) -> ApplicationSettings:
    """The project's settings (empty settings when none were ever written).

    Args:
        conn: Any connection.
        app_id: The application.

    Raises:
        NotFoundError: no such application.
    """
    row = await require_app(conn, app_id)
    stored = (row.settings or {}).get(SETTINGS_KEY) or {}
    return ApplicationSettings.model_validate(stored)


async def save_app_settings(
    conn: AsyncConnection, app_id: str, update: ApplicationSettings, *, now: datetime | None = None
) -> ApplicationSettings:
    """Apply ``update`` (members it sets replace the stored ones) and stamp LastModifiedDate.

    The row is locked first, so two concurrent updates of different members both survive.

    Args:
        conn: A connection inside a transaction.
        app_id: The application.
        update: The members to write.
        now: The modification time (default: now).

    Returns:
        The settings as stored.

    Raises:
        NotFoundError: no such application.
    """
    await conn.execute(text("SELECT 1 FROM apps WHERE id = :a FOR UPDATE"), {"a": app_id})
    current = await load_app_settings(conn, app_id)
    merged = current.merged(update)
    merged.LastModifiedDate = iso_timestamp(now or datetime.now(UTC))
    await conn.execute(
        text(
            "UPDATE apps SET settings = settings || jsonb_build_object(CAST(:key AS text), CAST(:value AS jsonb)) "
            "WHERE id = :a"
        ),
        {
            "a": app_id,
            "key": SETTINGS_KEY,
            "value": json.dumps(merged.model_dump(mode="json", exclude_none=True)),
        },
    )
    return merged
