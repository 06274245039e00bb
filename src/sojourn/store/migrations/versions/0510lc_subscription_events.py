"""The contact-list subscription event log (SES Subscription events)

Revision ID: 0510lc
Revises: 0500
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0510lc"
down_revision = "0500"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("list_name", sa.Text(), nullable=False),
        sa.Column("email_address", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("subscription", postgresql.JSONB(), nullable=False),
    )
    op.create_index("ix_subscription_events_list", "subscription_events", ["list_name", "occurred_at"])
    op.create_index("ix_subscription_events_address", "subscription_events", ["email_address", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_subscription_events_address", table_name="subscription_events")
    op.drop_index("ix_subscription_events_list", table_name="subscription_events")
    op.drop_table("subscription_events")
