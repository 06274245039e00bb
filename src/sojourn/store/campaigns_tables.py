"""The campaign tables, on the shared ``metadata`` of :mod:`sojourn.store.tables` (migration 0301).

- ``campaigns``: the current definition and state of each campaign;
- ``campaign_versions``: every definition the campaign ever had (each UpdateCampaign is a new version);
- ``campaign_runs``: one row per run and treatment (Pinpoint's campaign "activities"), with its counts;
- ``campaign_intake``: endpoints whose events triggered an EVENT campaign, waiting for the campaign workflow.

Sent messages live in the shared ``messages`` ledger with ``campaign_id`` set.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from sojourn.store.tables import EMPTY_OBJECT, NOW, messages, metadata

campaigns = Table(
    "campaigns",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("id", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("definition", JSONB, nullable=False),
    # SCHEDULED | EXECUTING | PENDING_NEXT_RUN | COMPLETED | PAUSED | DELETED | INVALID
    Column("state", Text, nullable=False, server_default=text("'SCHEDULED'")),
    Column("tags", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("app_id", "id"),
)

campaign_versions = Table(
    "campaign_versions",
    metadata,
    Column("campaign_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("campaign_id", "version"),
)

campaign_runs = Table(
    "campaign_runs",
    metadata,
    Column("campaign_id", Text, nullable=False),
    # "v{version}-{run number}" for scheduled runs, "v{version}-e{batch}" for event batches.
    Column("run_key", Text, nullable=False),
    Column("treatment_id", Integer, nullable=False),
    Column("app_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    # PENDING | RUNNING | COMPLETED | CANCELLED
    Column("state", Text, nullable=False, server_default=text("'PENDING'")),
    # SUCCESS | FAIL, once finished.
    Column("result", Text),
    Column("scheduled_start", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("targeted", BigInteger, nullable=False, server_default=text("0")),
    Column("sent", BigInteger, nullable=False, server_default=text("0")),
    # Per reason: ENDPOINT_OPT_OUT, QUIET_TIME, DAILY_CAP, HOLDOUT, ... as Pinpoint's ExecutionMetrics.
    Column("metrics", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("timezones_total", Integer, nullable=False, server_default=text("1")),
    Column("timezones_completed", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("campaign_id", "run_key", "treatment_id"),
)

campaign_intake = Table(
    "campaign_intake",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("campaign_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("event_row_id", BigInteger),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # The event batch that took the row (NULL while it waits).
    Column("batch_no", Integer),
    Index("ix_campaign_intake_pending", "campaign_id", "id", postgresql_where=text("batch_no IS NULL")),
)

# A campaign run's messages (the send loop and the run counts look them up this way); journey and direct
# messages (no campaign) stay out of it, so their inserts do not pay for it.
Index(
    "ix_messages_campaign",
    messages.c.campaign_id,
    messages.c.activity_id,
    postgresql_where=messages.c.campaign_id.is_not(None),
)

__all__ = ["campaign_intake", "campaign_runs", "campaign_versions", "campaigns"]
