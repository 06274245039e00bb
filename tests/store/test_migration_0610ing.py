"""Migration 0610ing moves endpoints.last_active_at into endpoint_activity, and its downgrade moves it back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
from alembic import command

from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import asyncpg_dsn
from sojourn.store.migrate import alembic_config, upgrade_async

SEEN = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


async def test_activity_moves_to_its_own_table_and_back(postgres: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute("DROP DATABASE IF EXISTS sojourn_migration_0610ing")
        await admin.execute("CREATE DATABASE sojourn_migration_0610ing")
    finally:
        await admin.close()
    url = postgres.url("sojourn_migration_0610ing")
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0600")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("INSERT INTO apps (id, name) VALUES ('app', 'migration')")
        await conn.execute(
            "INSERT INTO endpoints (app_id, id, cohort_id, last_active_at) VALUES "
            "('app', 'seen', 0, $1), ('app', 'never', 0, NULL)",
            SEEN,
        )
        await upgrade_async(url)
        moved = await conn.fetch("SELECT app_id, endpoint_id, last_active_at FROM endpoint_activity")
        assert [tuple(r) for r in moved] == [("app", "seen", SEEN)]
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'endpoints'"
        )
        assert "last_active_at" not in {r[0] for r in columns}

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0600")
        back = await conn.fetch("SELECT id, last_active_at FROM endpoints ORDER BY id")
        assert [tuple(r) for r in back] == [("never", None), ("seen", SEEN)]
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert "endpoint_activity" not in {r[0] for r in tables}
    finally:
        await conn.close()
