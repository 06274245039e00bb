"""Join the schema branches that landed together (address index, user participants, subscription events)

Revision ID: 0600
Revises: 0505, 0510, 0510lc
"""

from __future__ import annotations

revision = "0600"
down_revision = ("0505", "0510", "0510lc")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
