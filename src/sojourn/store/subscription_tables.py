"""The contact-list subscription event log (on the shared ``metadata``).

``subscription_events``: one row per change of a contact's subscription to a list (SES's ``Subscription``
event), whether or not any app has an endpoint with the address; ``subscription`` holds SES's
``subscription`` object (contactList, timestamp, source, newTopicPreferences, oldTopicPreferences).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from sojourn.store.tables import NOW, metadata

subscription_events = Table(
    "subscription_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("list_name", Text, nullable=False),
    Column("email_address", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("source", Text, nullable=False),
    Column("subscription", JSONB, nullable=False),
    Index("ix_subscription_events_list", "list_name", "occurred_at"),
    Index("ix_subscription_events_address", "email_address", "occurred_at"),
)
