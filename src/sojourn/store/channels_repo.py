"""The ``channels`` rows of SMS, voice and push channels (any channel type), merged on update, never echoing secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection


async def channel_row(
    conn: AsyncConnection, app_id: str, channel_type: str, *, lock: bool = False
) -> Row[Any] | None:
    """The app's channel row of ``channel_type``, or None (``lock``: FOR UPDATE)."""
    return (
        await conn.execute(
            text(
                "SELECT * FROM channels WHERE app_id = :a AND channel_type = :t"
                + (" FOR UPDATE" if lock else "")
            ),
            {"a": app_id, "t": channel_type},
        )
    ).first()


async def put_channel(
    conn: AsyncConnection,
    app_id: str,
    channel_type: str,
    settings: Mapping[str, Any],
    *,
    enabled: bool | None,
) -> Row[Any]:
    """Create or replace the channel's settings (the caller merged them); each update bumps its version.

    Args:
        conn: A connection inside a transaction.
        app_id: The application (must exist).
        channel_type: SMS, VOICE, GCM, APNS, APNS_SANDBOX, APNS_VOIP, APNS_VOIP_SANDBOX, BAIDU or ADM.
        settings: The channel's full settings.
        enabled: Enabled as requested; None keeps the current value (true for a new channel).
    """
    return (
        await conn.execute(
            text(
                """
                INSERT INTO channels (app_id, channel_type, enabled, settings)
                VALUES (:a, :t, COALESCE(:e, true), CAST(:s AS jsonb))
                ON CONFLICT (app_id, channel_type) DO UPDATE
                SET enabled = COALESCE(:e, channels.enabled), settings = excluded.settings,
                    version = channels.version + 1, updated_at = now()
                RETURNING *
                """
            ),
            {"a": app_id, "t": channel_type, "e": enabled, "s": json.dumps(dict(settings))},
        )
    ).one()


async def delete_channel(conn: AsyncConnection, app_id: str, channel_type: str) -> Row[Any] | None:
    """Remove the channel; returns its row, or None if there was none."""
    return (
        await conn.execute(
            text("DELETE FROM channels WHERE app_id = :a AND channel_type = :t RETURNING *"),
            {"a": app_id, "t": channel_type},
        )
    ).first()


async def all_channels(conn: AsyncConnection, app_id: str) -> list[Row[Any]]:
    """Every channel row of the app."""
    rows = await conn.execute(
        text("SELECT * FROM channels WHERE app_id = :a ORDER BY channel_type"), {"a": app_id}
    )
    return list(rows)
