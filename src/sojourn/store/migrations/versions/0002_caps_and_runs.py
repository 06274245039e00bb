"""Messages indexed by (app, endpoint, time) for shared caps; journey runs; LocalTime cohorts; send pacing

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_endpoint_time", "messages", ["app_id", "endpoint_id", "created_at"])
    op.drop_index("ix_messages_app", table_name="messages")
    op.add_column(
        "journey_cohorts", sa.Column("run_no", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("journey_cohorts", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column("journey_cohorts", sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "send_pacing",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("send_pacing")
    op.drop_column("journey_cohorts", "deadline")
    op.drop_column("journey_cohorts", "not_before")
    op.drop_column("journey_cohorts", "run_no")
    op.create_index("ix_messages_app", "messages", ["app_id"])
    op.drop_index("ix_messages_endpoint_time", table_name="messages")
