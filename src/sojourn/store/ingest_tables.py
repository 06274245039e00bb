"""Tables of the event path, on the shared metadata (imported at the end of ``tables``).

- ``endpoint_activity``: when each endpoint was last active (an event), for Behavior.Recency segments. It is a
  narrow table of its own so that recording activity rewrites a three-column row instead of the wide endpoint
  row with its GIN indexes, and it is only rewritten once the stored time is more than
  ``endpoint_rows.ACTIVITY_GRANULARITY`` old (see ``touch_active``).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKeyConstraint, Index, PrimaryKeyConstraint, Table, Text

from sojourn.store.tables import metadata

endpoint_activity = Table(
    "endpoint_activity",
    metadata,
    Column("app_id", Text, nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("last_active_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("app_id", "endpoint_id"),
    # Deleting an endpoint (or its app) forgets its activity: a re-created endpoint starts never active.
    ForeignKeyConstraint(["app_id", "endpoint_id"], ["endpoints.app_id", "endpoints.id"], ondelete="CASCADE"),
    # Behavior.Recency reads the endpoints active since a time from this index, not by scanning every endpoint.
    Index("ix_endpoint_activity_recent", "app_id", "last_active_at", "endpoint_id"),
)
