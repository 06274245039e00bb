"""Campaigns: campaigns, campaign_versions, campaign_runs, campaign_intake; messages by campaign run

Revision ID: 0301
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0301"
down_revision = "0001"
branch_labels = None
depends_on = None

_EMPTY = sa.text("'{}'::jsonb")
_NOW = sa.text("now()")


def _jsonb(name: str) -> sa.Column[object]:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), server_default=_EMPTY, nullable=False)


def _ts(name: str, *, nullable: bool = False, default: bool = True) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=_NOW if default else None, nullable=nullable
    )


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'SCHEDULED'"), nullable=False),
        _jsonb("tags"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_campaigns_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", "id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("id", name=op.f("uq_campaigns_id")),
    )
    op.create_table(
        "campaign_versions",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("campaign_id", "version", name=op.f("pk_campaign_versions")),
    )
    op.create_table(
        "campaign_runs",
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("run_key", sa.Text(), nullable=False),
        sa.Column("treatment_id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'PENDING'"), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        _ts("scheduled_start", default=False),
        _ts("started_at", nullable=True, default=False),
        _ts("ended_at", nullable=True, default=False),
        sa.Column("targeted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("sent", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _jsonb("metrics"),
        sa.Column("timezones_total", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("timezones_completed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("campaign_id", "run_key", "treatment_id", name=op.f("pk_campaign_runs")),
    )
    op.create_table(
        "campaign_intake",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("campaign_id", sa.Text(), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("event_row_id", sa.BigInteger(), nullable=True),
        _ts("occurred_at", default=False),
        _ts("received_at"),
        sa.Column("batch_no", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_intake")),
    )
    op.create_index(
        "ix_campaign_intake_pending",
        "campaign_intake",
        ["campaign_id", "id"],
        unique=False,
        postgresql_where=sa.text("batch_no IS NULL"),
    )
    op.create_index(
        "ix_messages_campaign",
        "messages",
        ["campaign_id", "activity_id"],
        unique=False,
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_campaign", table_name="messages")
    op.drop_index("ix_campaign_intake_pending", table_name="campaign_intake")
    op.drop_table("campaign_intake")
    op.drop_table("campaign_runs")
    op.drop_table("campaign_versions")
    op.drop_table("campaigns")
