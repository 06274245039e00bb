"""Tables of suppression, consent and list hygiene (on the shared ``metadata``).

- ``suppressed_destinations`` / ``account_suppression``: SES's account-level suppression list and its
  SuppressedReasons setting.
- ``channel_permissions``: an endpoint's current permission per channel (what the send path reads);
  ``consent``: the append-only ledger of every grant, withdrawal and pending or expired request behind it;
  ``consent_erasures``: markers of erased contacts (a hash, never the address).
- ``app_privacy``: per app, whether consent is required and the unengaged-removal (sunset) policy.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from sojourn.store.tables import EMPTY_OBJECT, NOW, metadata

suppressed_destinations = Table(
    "suppressed_destinations",
    metadata,
    # Lower-cased: SES treats addresses on the suppression list case-insensitively.
    Column("email_address", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("last_update_time", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("message_id", Text),
    Column("feedback_id", Text),
    # BOUNCE and COMPLAINT as in SES; UNSUBSCRIBE is sojourn's (unsubscribed from all of a contact list).
    CheckConstraint(
        "reason IN ('BOUNCE', 'COMPLAINT', 'UNSUBSCRIBE')", name="ck_suppressed_destinations_reason"
    ),
    Index("ix_suppressed_destinations_time", "last_update_time", "email_address"),
)

account_suppression = Table(
    "account_suppression",
    metadata,
    # One row (id = 1) for the account; absent means SES's default (BOUNCE and COMPLAINT).
    Column("id", Integer, primary_key=True, server_default=text("1")),
    Column("suppressed_reasons", ARRAY(Text), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint("id = 1", name="ck_account_suppression_single_row"),
)

channel_permissions = Table(
    "channel_permissions",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("endpoint_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    # granted | withdrawn | pending | expired
    Column("status", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("app_id", "endpoint_id", "channel"),
)

consent = Table(
    "consent",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("app_id", Text, nullable=False),
    Column("endpoint_id", Text),
    Column("address", Text),
    Column("channel", Text, nullable=False),
    # granted | withdrawn | pending | expired
    Column("status", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # form | import | api | confirmation | sunset | feedback
    Column("source", Text, nullable=False),
    # single_opt_in | double_opt_in
    Column("method", Text),
    Column("ip", Text),
    Column("user_agent", Text),
    Column("consent_text", Text),
    Column("reason", Text),
    Index("ix_consent_address", "app_id", "address"),
    Index("ix_consent_endpoint", "app_id", "endpoint_id"),
)

consent_erasures = Table(
    "consent_erasures",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("app_id", Text, nullable=False),
    # sha256 of the lower-cased address: proves an erasure happened without keeping the address.
    Column("address_sha256", Text, nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("counts", JSONB, nullable=False, server_default=EMPTY_OBJECT),
)

app_privacy = Table(
    "app_privacy",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
    # On: an endpoint needs a granted consent row for the channel (double opt-in apps).
    Column("require_consent", Boolean, nullable=False, server_default=text("false")),
    Column("sunset_enabled", Boolean, nullable=False, server_default=text("false")),
    Column("sunset_days", Integer, nullable=False, server_default=text("90")),
    # unsubscribe | segment | report
    Column("sunset_policy", Text, nullable=False, server_default=text("'report'")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)
