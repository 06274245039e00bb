"""The migrations build exactly the schema the table definitions describe (hand-written migrations drift)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store.tables import metadata


async def test_migrated_schema_matches_the_table_definitions(db: AsyncEngine) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with db.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == [], f"run autogenerate: the migrations and sojourn.store.tables differ: {diff}"
