"""Endpoint activity in its own narrow table (``endpoint_activity``), moved out of ``endpoints.last_active_at``

PutEvents recorded activity by rewriting the wide endpoint row (and all its indexes, two of them GIN) for every
event batch; the narrow table makes that a three-column upsert. Existing times move over; downgrade moves them
back.

Revision ID: 0610ing
Revises: 0600
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0610ing"
down_revision = "0600"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoint_activity",
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id", "endpoint_id"],
            ["endpoints.app_id", "endpoints.id"],
            name=op.f("fk_endpoint_activity_app_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", "endpoint_id", name=op.f("pk_endpoint_activity")),
    )
    op.execute(
        "INSERT INTO endpoint_activity (app_id, endpoint_id, last_active_at) "
        "SELECT app_id, id, last_active_at FROM endpoints WHERE last_active_at IS NOT NULL"
    )
    op.create_index(
        "ix_endpoint_activity_recent",
        "endpoint_activity",
        ["app_id", "last_active_at", "endpoint_id"],
        unique=False,
    )
    op.drop_index("ix_endpoints_last_active", table_name="endpoints")
    op.drop_column("endpoints", "last_active_at")


def downgrade() -> None:
    op.add_column("endpoints", sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE endpoints e SET last_active_at = a.last_active_at FROM endpoint_activity a "
        "WHERE a.app_id = e.app_id AND a.endpoint_id = e.id"
    )
    op.create_index("ix_endpoints_last_active", "endpoints", ["app_id", "last_active_at"], unique=False)
    op.drop_table("endpoint_activity")
