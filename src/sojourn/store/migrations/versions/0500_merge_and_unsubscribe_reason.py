"""Join the schema branches that landed together; suppression takes sojourn's UNSUBSCRIBE reason

Revision ID: 0500
Revises: 0002, 0101, 0201, 0301, 0401
"""

from __future__ import annotations

from alembic import op

revision = "0500"
down_revision = ("0002", "0101", "0201", "0301", "0401")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("ck_suppressed_destinations_reason", "suppressed_destinations", type_="check")
    op.create_check_constraint(
        "ck_suppressed_destinations_reason",
        "suppressed_destinations",
        "reason IN ('BOUNCE', 'COMPLAINT', 'UNSUBSCRIBE')",
    )


def downgrade() -> None:
    op.execute("DELETE FROM suppressed_destinations WHERE reason = 'UNSUBSCRIBE'")
    op.drop_constraint("ck_suppressed_destinations_reason", "suppressed_destinations", type_="check")
    op.create_check_constraint(
        "ck_suppressed_destinations_reason", "suppressed_destinations", "reason IN ('BOUNCE', 'COMPLAINT')"
    )
