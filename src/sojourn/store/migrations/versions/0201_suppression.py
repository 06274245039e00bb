"""Suppression list, consent ledger, channel permissions, app privacy settings

Revision ID: 0201
Revises: 0001
Create Date: 2026-11-23 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0201"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressed_destinations",
        sa.Column("email_address", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "last_update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("feedback_id", sa.Text(), nullable=True),
        sa.CheckConstraint("reason IN ('BOUNCE', 'COMPLAINT')", name="ck_suppressed_destinations_reason"),
        sa.PrimaryKeyConstraint("email_address", name=op.f("pk_suppressed_destinations")),
    )
    op.create_index(
        "ix_suppressed_destinations_time",
        "suppressed_destinations",
        ["last_update_time", "email_address"],
    )
    op.create_table(
        "account_suppression",
        sa.Column("id", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("suppressed_reasons", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_account_suppression_single_row"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_suppression")),
    )
    op.create_table(
        "channel_permissions",
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_channel_permissions_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", "endpoint_id", "channel", name=op.f("pk_channel_permissions")),
    )
    op.create_table(
        "consent",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("endpoint_id", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    op.create_index("ix_consent_address", "consent", ["app_id", "address"])
    op.create_index("ix_consent_endpoint", "consent", ["app_id", "endpoint_id"])
    op.create_table(
        "consent_erasures",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("address_sha256", sa.Text(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "counts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_erasures")),
    )
    op.create_table(
        "app_privacy",
        sa.Column("app_id", sa.Text(), nullable=False),
        sa.Column("require_consent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("sunset_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("sunset_days", sa.Integer(), server_default=sa.text("90"), nullable=False),
        sa.Column("sunset_policy", sa.Text(), server_default=sa.text("'report'"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_privacy_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_app_privacy")),
    )

    op.execute(OPT_OUT_FUNCTION)
    op.execute(
        "CREATE TRIGGER endpoints_opt_out_consent AFTER UPDATE OF opt_out ON endpoints FOR EACH ROW "
        "WHEN (OLD.opt_out IS DISTINCT FROM NEW.opt_out) EXECUTE FUNCTION sojourn_opt_out_consent()"
    )
    op.execute(
        "CREATE TRIGGER endpoints_opt_out_consent_insert AFTER INSERT ON endpoints FOR EACH ROW "
        "WHEN (NEW.opt_out = 'ALL') EXECUTE FUNCTION sojourn_opt_out_consent()"
    )


# Every OptOut change of an endpoint, whoever makes it (UpdateEndpoint, batches, PutEvents, pages), lands in
# the consent ledger and sets the channel's permission (ALL: withdrawn; NONE: granted, single opt-in). A writer
# that records its own, richer row names its source with set_config('sojourn.consent_source', ..., true);
# 'none' skips the automatic row and permission.
OPT_OUT_FUNCTION = """
CREATE FUNCTION sojourn_opt_out_consent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  source text := COALESCE(NULLIF(current_setting('sojourn.consent_source', true), ''), 'api');
BEGIN
  IF source = 'none' THEN
    RETURN NEW;
  END IF;
  INSERT INTO consent (app_id, endpoint_id, address, channel, status, source, method, reason)
  VALUES (
    NEW.app_id, NEW.id, lower(btrim(NEW.address)), COALESCE(NEW.channel_type, 'ALL'),
    CASE WHEN NEW.opt_out = 'ALL' THEN 'withdrawn' ELSE 'granted' END,
    source,
    CASE WHEN NEW.opt_out = 'ALL' THEN NULL ELSE 'single_opt_in' END,
    'OptOut set to ' || NEW.opt_out
  );
  IF NEW.channel_type IS NOT NULL THEN
    INSERT INTO channel_permissions (app_id, endpoint_id, channel, status)
    VALUES (NEW.app_id, NEW.id, NEW.channel_type, CASE WHEN NEW.opt_out = 'ALL' THEN 'withdrawn' ELSE 'granted' END)
    ON CONFLICT (app_id, endpoint_id, channel) DO UPDATE SET status = EXCLUDED.status, updated_at = now();
  END IF;
  RETURN NEW;
END
$$
"""


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS endpoints_opt_out_consent_insert ON endpoints")
    op.execute("DROP TRIGGER IF EXISTS endpoints_opt_out_consent ON endpoints")
    op.execute("DROP FUNCTION IF EXISTS sojourn_opt_out_consent()")
    op.drop_table("app_privacy")
    op.drop_table("consent_erasures")
    op.drop_index("ix_consent_endpoint", table_name="consent")
    op.drop_index("ix_consent_address", table_name="consent")
    op.drop_table("consent")
    op.drop_table("channel_permissions")
    op.drop_table("account_suppression")
    op.drop_index("ix_suppressed_destinations_time", table_name="suppressed_destinations")
    op.drop_table("suppressed_destinations")
