"""Tables of direct sends and channel providers, on the shared metadata (imported at the end of ``tables``).

- ``message_deliveries``: per message sent through a provider (or a direct send), what the provider said and
  its own message id, so delivery callbacks find the ledger row by either id.
- ``address_opt_outs``: addresses that opted out (an SMS STOP) that have no endpoint row to carry OptOut.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB

from sojourn.store.tables import EMPTY_OBJECT, NOW, metadata

message_deliveries = Table(
    "message_deliveries",
    metadata,
    Column("message_id", Text, primary_key=True),
    # SMS | PUSH | VOICE | CUSTOM | EMAIL
    Column("channel", Text, nullable=False),
    Column("provider_message_id", Text),
    # Pinpoint's DeliveryStatus at send time; then the last callback's status (DELIVERED, FAILED, OPTOUT...).
    Column("delivery_status", Text),
    Column("status_code", Integer),
    Column("status_message", Text),
    Column("request_id", Text),
    Column("trace_id", Text),
    # The request's Context map, copied into delivery events.
    Column("context", JSONB, nullable=False, server_default=EMPTY_OBJECT),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index(
        "ix_message_deliveries_provider",
        "channel",
        "provider_message_id",
        postgresql_where=text("provider_message_id IS NOT NULL"),
    ),
)

address_opt_outs = Table(
    "address_opt_outs",
    metadata,
    Column("app_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("app_id", "channel", "address"),
)
