"""Migration 0510lc (subscription events) downgrades and upgrades again on a scratch database."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import command

from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import asyncpg_dsn
from sojourn.store.migrate import alembic_config, upgrade_async


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def test_downgrade_drops_subscription_events_and_upgrade_restores_it(
    postgres: EmbeddedPostgres,
) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute("DROP DATABASE IF EXISTS sojourn_migration_0510lc")
        await admin.execute("CREATE DATABASE sojourn_migration_0510lc")
    finally:
        await admin.close()
    url = postgres.url("sojourn_migration_0510lc")
    await upgrade_async(url)
    assert "subscription_events" in await _tables(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0510lc-1")
    left = await _tables(url)
    assert "subscription_events" not in left and "contacts" in left
    await upgrade_async(url)
    assert "subscription_events" in await _tables(url)
