"""SES-style list management tables: contact lists (with their topics) and their contacts.

Defined on the shared :data:`sojourn.store.tables.metadata` so Alembic sees them; created by migration 0101.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

from sojourn.store.tables import EMPTY_OBJECT, NOW, metadata

EMPTY_ARRAY = text("'[]'::jsonb")

contact_lists = Table(
    "contact_lists",
    metadata,
    # sojourn has one account, so the name alone is the key (SES: per account and region).
    Column("name", Text, primary_key=True),
    Column("description", Text),
    # [{TopicName, DisplayName, Description, DefaultSubscriptionStatus}] in the order the caller gave them.
    Column("topics", JSONB, nullable=False, server_default=EMPTY_ARRAY),
    # [{Key, Value}] as SESv2 models tags.
    Column("tags", JSONB, nullable=False, server_default=EMPTY_ARRAY),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

contacts = Table(
    "contacts",
    metadata,
    Column(
        "list_name",
        Text,
        ForeignKey("contact_lists.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("email_address", Text, nullable=False),
    # Explicit preferences only, {TopicName: "OPT_IN" | "OPT_OUT"}: the topic default applies to the rest.
    Column("topic_preferences", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("unsubscribe_all", Boolean, nullable=False, server_default=text("false")),
    Column("attributes_data", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # The primary key is also ListContacts' keyset: (list_name, email_address > :after) ORDER BY email_address.
    PrimaryKeyConstraint("list_name", "email_address"),
)
