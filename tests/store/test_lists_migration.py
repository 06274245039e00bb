"""Migration 0101 creates exactly the tables ``lists_tables.py`` defines, and downgrades cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sojourn.stack import EmbeddedPostgres
from sojourn.store.db import asyncpg_dsn, create_engine
from sojourn.store.lists_tables import contact_lists, contacts
from sojourn.store.migrate import alembic_config
from sojourn.store.tables import metadata

LIST_TABLES = {contact_lists.name, contacts.name}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def _list_table_drift(url: str) -> list[Any]:
    """Differences between the migrated database and the metadata that concern the list tables."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    finally:
        await engine.dispose()
    return [d for d in diffs if any(f"'{name}'" in repr(d) for name in LIST_TABLES)]


async def test_migration_matches_tables_and_downgrades(postgres: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(postgres.url("postgres")))
    try:
        await admin.execute("DROP DATABASE IF EXISTS sojourn_lists_migration")
        await admin.execute("CREATE DATABASE sojourn_lists_migration")
    finally:
        await admin.close()
    url = postgres.url("sojourn_lists_migration")
    config = alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, "heads")
    assert LIST_TABLES <= await _tables(url)
    assert await _list_table_drift(url) == []

    # Below every branch (the merge revision joins them, so one branch alone cannot step down).
    await asyncio.to_thread(command.downgrade, config, "0001")
    assert not LIST_TABLES & await _tables(url)
    await asyncio.to_thread(command.upgrade, config, "heads")
    assert LIST_TABLES <= await _tables(url)
