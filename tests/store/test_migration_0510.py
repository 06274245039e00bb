"""Migration 0510 (participants.user_id) downgrades and upgrades again on a scratch database."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import command

from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import asyncpg_dsn
from sojourn.store.migrate import alembic_config, upgrade_async


async def _user_column_and_index(url: str) -> tuple[bool, bool]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        column = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'participants' AND column_name = 'user_id'"
        )
        index = await conn.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_participants_user'"
        )
        return bool(column), bool(index)
    finally:
        await conn.close()


async def test_downgrade_drops_the_user_column_and_upgrade_restores_it(postgres: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute("DROP DATABASE IF EXISTS sojourn_migration_0510")
        await admin.execute("CREATE DATABASE sojourn_migration_0510")
    finally:
        await admin.close()
    url = postgres.url("sojourn_migration_0510")
    await upgrade_async(url)
    assert await _user_column_and_index(url) == (True, True)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0500")
    assert await _user_column_and_index(url) == (False, False)
    await upgrade_async(url)
    assert await _user_column_and_index(url) == (True, True)
