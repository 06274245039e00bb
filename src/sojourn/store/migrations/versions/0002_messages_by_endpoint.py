"""Messages indexed by (app, endpoint, time) for the caps shared across journeys and campaigns

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_endpoint_time", "messages", ["app_id", "endpoint_id", "created_at"])
    op.drop_index("ix_messages_app", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_app", "messages", ["app_id"])
    op.drop_index("ix_messages_endpoint_time", table_name="messages")
