"""The send path: journey-only participant index on messages, room for HOT updates of ledger rows

Revision ID: 0610snd
Revises: 0600

Campaign and direct messages (journey_id NULL) no longer get an ``ix_messages_participant`` entry, and the
``messages`` table leaves half of each new page free, so marking a claimed message sent is a HOT update. Pages
written before keep their layout; the index is rebuilt (a short lock on ``messages`` while it builds).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0610snd"
down_revision = "0600"
branch_labels = None
depends_on = None

_COLUMNS = ["journey_id", "endpoint_id", "activity_id", "entry_no"]


def upgrade() -> None:
    op.drop_index("ix_messages_participant", table_name="messages")
    op.create_index(
        "ix_messages_participant",
        "messages",
        _COLUMNS,
        postgresql_where=sa.text("journey_id IS NOT NULL"),
    )
    op.execute("ALTER TABLE messages SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE messages RESET (fillfactor)")
    op.drop_index("ix_messages_participant", table_name="messages")
    op.create_index("ix_messages_participant", "messages", _COLUMNS)
