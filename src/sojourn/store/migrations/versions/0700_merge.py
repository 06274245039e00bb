"""Join the schema branches that landed together (endpoint activity table, send-path ledger storage)

Revision ID: 0700
Revises: 0610ing, 0610snd
"""

from __future__ import annotations

revision = "0700"
down_revision = ("0610ing", "0610snd")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
