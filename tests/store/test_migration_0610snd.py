"""Migration 0610snd (journey-only participant index, fillfactor of messages) downgrades and upgrades again."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import command

from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import asyncpg_dsn
from sojourn.store.migrate import alembic_config, upgrade_async


async def _layout(url: str) -> tuple[str, list[str] | None]:
    """The participant index's definition and the messages table's storage options."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_participant'"
        )
        options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'messages'")
        return str(index), options
    finally:
        await conn.close()


async def test_downgrade_restores_the_full_index_and_upgrade_the_partial_one(
    postgres: EmbeddedPostgres,
) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute("DROP DATABASE IF EXISTS sojourn_migration_0610snd")
        await admin.execute("CREATE DATABASE sojourn_migration_0610snd")
    finally:
        await admin.close()
    url = postgres.url("sojourn_migration_0610snd")
    await upgrade_async(url)
    index, options = await _layout(url)
    assert index.endswith("WHERE (journey_id IS NOT NULL)") and options == ["fillfactor=50"]
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0600")
    index, options = await _layout(url)
    assert "WHERE" not in index and "(journey_id, endpoint_id, activity_id, entry_no)" in index
    assert options is None
    await upgrade_async(url)
    index, options = await _layout(url)
    assert index.endswith("WHERE (journey_id IS NOT NULL)") and options == ["fillfactor=50"]
