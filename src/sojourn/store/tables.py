"""The PostgreSQL schema, as SQLAlchemy Core tables.

Postgres is sojourn's system of record: everything the API acknowledged and every per-participant and
per-message fact lives here, so Temporal's history only ever carries counts and cohort references.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NOW = text("now()")
EMPTY_OBJECT = text("'{}'::jsonb")


def _ts(name: str, *, nullable: bool = False, default: bool = True) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable, server_default=NOW if default else None)


apps = Table(
    "apps",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("tags", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("settings", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    _ts("created_at"),
)

channels = Table(
    "channels",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("channel_type", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("settings", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("version", Integer, nullable=False, server_default=text("1")),
    _ts("created_at"),
    _ts("updated_at"),
    PrimaryKeyConstraint("app_id", "channel_type"),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("id", Text, nullable=False),
    Column("channel_type", Text),
    Column("address", Text),
    Column("endpoint_status", Text, nullable=False, server_default=text("'ACTIVE'")),
    Column("opt_out", Text, nullable=False, server_default=text("'NONE'")),
    Column("user_id", Text),
    # map<string, list<string>> as Pinpoint models them.
    Column("user_attributes", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("attributes", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("metrics", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("demographic", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("location", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("request_id", Text),
    Column("cohort_id", Integer, nullable=False),
    Column("effective_date", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("creation_date", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("app_id", "id"),
    Index("ix_endpoints_user", "app_id", "user_id", postgresql_where=text("user_id IS NOT NULL")),
    Index("ix_endpoints_address", "app_id", "address"),
    # Unsubscribes, bounces and consent find an address's endpoints in every app the way suppression compares it.
    Index("ix_endpoints_normalized_address", text("lower(btrim(address))")),
    Index(
        "ix_endpoints_attributes",
        "attributes",
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
    ),
    Index(
        "ix_endpoints_user_attributes",
        "user_attributes",
        postgresql_using="gin",
        postgresql_ops={"user_attributes": "jsonb_path_ops"},
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("app_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("attributes", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("metrics", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("session", JSONB),
    # Engagement events (_email.open, _email.click, ...) name the message they are about.
    Column("message_id", Text),
    Index("ix_events_endpoint_type", "app_id", "endpoint_id", "event_type", "occurred_at"),
    Index("ix_events_message", "message_id", "event_type", postgresql_where=text("message_id IS NOT NULL")),
)

templates = Table(
    "templates",
    metadata,
    Column("name", Text, nullable=False),
    Column("template_type", Text, nullable=False),
    Column("latest_version", Integer, nullable=False),
    Column("active_version", Integer, nullable=False),
    Column("description", Text),
    Column("tags", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    _ts("created_at"),
    _ts("updated_at"),
    PrimaryKeyConstraint("name", "template_type"),
)

template_versions = Table(
    "template_versions",
    metadata,
    Column("name", Text, nullable=False),
    Column("template_type", Text, nullable=False),
    Column("version", Integer, nullable=False),
    # The template request body as the API received it (Subject, HtmlPart, TextPart, DefaultSubstitutions, ...).
    Column("content", JSONB, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    PrimaryKeyConstraint("name", "template_type", "version"),
)

segments = Table(
    "segments",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("id", Text, nullable=False),
    Column("name", Text),
    Column("segment_type", Text, nullable=False, server_default=text("'DIMENSIONAL'")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("definition", JSONB, nullable=False),
    Column("tags", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    _ts("created_at"),
    _ts("updated_at"),
    PrimaryKeyConstraint("app_id", "id"),
)

segment_versions = Table(
    "segment_versions",
    metadata,
    Column("app_id", Text, nullable=False),
    Column("segment_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSONB, nullable=False),
    _ts("created_at"),
    PrimaryKeyConstraint("app_id", "segment_id", "version"),
)

journeys = Table(
    "journeys",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("id", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("state", Text, nullable=False),
    # Latest definition version; participants keep the version they entered with.
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("definition", JSONB, nullable=False),
    Column("tags", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("started_at", DateTime(timezone=True)),
    _ts("created_at"),
    _ts("updated_at"),
    PrimaryKeyConstraint("app_id", "id"),
)

journey_versions = Table(
    "journey_versions",
    metadata,
    Column("journey_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSONB, nullable=False),
    _ts("created_at"),
    PrimaryKeyConstraint("journey_id", "version"),
)

participants = Table(
    "participants",
    metadata,
    Column("journey_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("entry_no", Integer, nullable=False),
    Column("app_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("cohort_no", Integer, nullable=False),
    # Sub-cohort: splits give each branch its own lane ("0", "0.1", "0.2", ...) inside the cohort.
    Column("lane", Text, nullable=False, server_default=text("'0'")),
    # The activity the participant is at (waiting in, or about to run); NULL once it left.
    Column("position", Text),
    # active | completed | held_out | cancelled | ended
    Column("status", Text, nullable=False, server_default=text("'active'")),
    _ts("entered_at"),
    _ts("updated_at"),
    # User-level participants (Pinpoint §1.2): the endpoint's User.UserId at entry; the user's endpoints share
    # cohort, lane and entry number and move together. NULL: the endpoint is a participant on its own.
    Column("user_id", Text),
    PrimaryKeyConstraint("journey_id", "endpoint_id", "entry_no"),
    Index("ix_participants_user", "journey_id", "user_id", postgresql_where=text("user_id IS NOT NULL")),
    Index(
        "ix_participants_cohort_lane",
        "journey_id",
        "cohort_no",
        "lane",
        postgresql_where=text("status = 'active'"),
    ),
)

journey_cohorts = Table(
    "journey_cohorts",
    metadata,
    Column("journey_id", Text, nullable=False),
    Column("cohort_no", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    # What made it: "segment" (entry segment at start), "refresh" or "intake" (event-triggered entrants).
    Column("source", Text, nullable=False),
    # The journey run (GetJourneyRuns): the first cohort of its enrollment; 0 for event-triggered entrants.
    Column("run_no", Integer, nullable=False, server_default=text("0")),
    # LocalTime journeys: a cohort holds one time zone's members, who enter and leave on their own clock.
    Column("not_before", DateTime(timezone=True)),
    Column("deadline", DateTime(timezone=True)),
    _ts("created_at"),
    PrimaryKeyConstraint("journey_id", "cohort_no"),
)

journey_intake = Table(
    "journey_intake",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("journey_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("event_row_id", BigInteger),
    _ts("received_at"),
    Column("cohort_no", Integer),
    Index("ix_journey_intake_pending", "journey_id", "id", postgresql_where=text("cohort_no IS NULL")),
)

journey_counters = Table(
    "journey_counters",
    metadata,
    Column("journey_id", Text, nullable=False),
    # "" for journey-level metrics.
    Column("activity_id", Text, nullable=False),
    Column("metric", Text, nullable=False),
    # The cohort that counted (-1: the journey itself). Cohorts never wait on each other's counter rows.
    Column("shard", Integer, nullable=False),
    Column("value", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("journey_id", "activity_id", "metric", "shard"),
)

# MessagesPerSecond shared by every worker: when the paced sender's next message may go (store/send_pacing.py).
send_pacing = Table(
    "send_pacing",
    metadata,
    Column("key", Text, primary_key=True),
    Column("next_at", DateTime(timezone=True), nullable=False),
)

messages = Table(
    "messages",
    metadata,
    # Deterministic: md5 of (app, journey, version, activity, endpoint, entry, visit). Retries find the same row.
    Column("message_id", Text, primary_key=True),
    Column("app_id", Text, nullable=False),
    Column("journey_id", Text),
    Column("campaign_id", Text),
    Column("activity_id", Text),
    Column("endpoint_id", Text, nullable=False),
    Column("entry_no", Integer),
    Column("channel", Text, nullable=False),
    Column("address", Text),
    # pending -> sending -> sent | failed | skipped
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("status_message", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    _ts("created_at"),
    Column("sent_at", DateTime(timezone=True)),
    # One participant's message of one activity: the split conditions and the send loop look rows up this way.
    # Also serves the per-endpoint journey caps (journey_id, endpoint_id). Journey messages only: campaign and
    # direct messages do not pay for it when they are claimed or marked sent.
    Index(
        "ix_messages_participant",
        "journey_id",
        "endpoint_id",
        "activity_id",
        "entry_no",
        postgresql_where=text("journey_id IS NOT NULL"),
    ),
    # The caps shared across journeys and campaigns count an endpoint's recent messages (and deletes go by app).
    Index("ix_messages_endpoint_time", "app_id", "endpoint_id", "created_at"),
    # Room on every page for the row's next version: marking a claimed message sent is then a HOT update
    # (no new entry in any index), which takes a third of the database's CPU per message it took before.
    postgresql_with={"fillfactor": 50},
)

# Tables of other areas live in their own modules on the same metadata; importing them here lets Alembic see them.
from sojourn.store import campaigns_tables as campaigns_tables  # noqa: E402
from sojourn.store import direct_tables as direct_tables  # noqa: E402
from sojourn.store import ingest_tables as ingest_tables  # noqa: E402
from sojourn.store import lists_tables as lists_tables  # noqa: E402
from sojourn.store import subscription_tables as subscription_tables  # noqa: E402
from sojourn.store import suppression_tables as suppression_tables  # noqa: E402
