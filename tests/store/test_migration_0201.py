"""Migration 0201 (suppression, consent) downgrades and upgrades again on a scratch database."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import command

from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import asyncpg_dsn
from sojourn.store.migrate import alembic_config, upgrade_async

OURS = {
    "suppressed_destinations",
    "account_suppression",
    "channel_permissions",
    "consent",
    "consent_erasures",
    "app_privacy",
}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        functions = await conn.fetch("SELECT proname FROM pg_proc WHERE proname = 'sojourn_opt_out_consent'")
        return {r[0] for r in rows} | {r[0] for r in functions}
    finally:
        await conn.close()


async def test_downgrade_removes_everything_and_upgrade_restores_it(postgres: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute("DROP DATABASE IF EXISTS sojourn_migration_0201")
        await admin.execute("CREATE DATABASE sojourn_migration_0201")
    finally:
        await admin.close()
    url = postgres.url("sojourn_migration_0201")
    await upgrade_async(url)
    assert OURS | {"sojourn_opt_out_consent"} <= await _tables(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0001")
    left = await _tables(url)
    assert not (OURS | {"sojourn_opt_out_consent"}) & left and "endpoints" in left
    await upgrade_async(url)
    assert OURS <= await _tables(url)
