"""Index endpoints by normalised address (unsubscribe-all, bounces and consent look addresses up across apps)

Revision ID: 0505
Revises: 0500
"""

from __future__ import annotations

from alembic import op

revision = "0505"
down_revision = "0500"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_endpoints_normalized_address ON endpoints (lower(btrim(address)))")


def downgrade() -> None:
    op.drop_index("ix_endpoints_normalized_address", table_name="endpoints")
