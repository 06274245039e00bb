"""User-level journey participants: participants.user_id and its index

Revision ID: 0510
Revises: 0500
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0510"
down_revision = "0500"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("participants", sa.Column("user_id", sa.Text(), nullable=True))
    op.create_index(
        "ix_participants_user",
        "participants",
        ["journey_id", "user_id"],
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_participants_user", table_name="participants")
    op.drop_column("participants", "user_id")
