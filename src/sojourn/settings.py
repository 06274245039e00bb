"""All configuration in one place, read from ``SOJOURN_*`` environment variables."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_worker_processes(cpus: int | None) -> int:
    """Worker processes for a machine: half its cores (the other half runs PostgreSQL and Temporal)."""
    return max(1, (cpus or 1) // 2)


DEV_ACCESS_KEY_ID = "SOJOURNDEVACCESSKEY"
DEV_SECRET_ACCESS_KEY = "sojourn-dev-secret-access-key"


class Settings(BaseSettings):
    """sojourn settings.

    Every field can be set by an environment variable named ``SOJOURN_`` + the field name in upper case,
    e.g. ``SOJOURN_API_PORT=9090``.
    """

    model_config = SettingsConfigDict(env_prefix="SOJOURN_", env_ignore_empty=True, extra="ignore")

    data_dir: Path = Field(
        default=Path(".sojourn"), description="Where the embedded PostgreSQL and Temporal keep their data."
    )
    api_host: str = Field(default="127.0.0.1", description="Interface the API server binds to.")
    api_port: int = Field(default=8080, description="Port of the Pinpoint/SESv2-compatible API.")
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host/db). Set: use it and start no embedded PostgreSQL.",
    )
    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal frontend. Set: use it and start no dev server."
    )
    postgres_port: int = Field(default=5433, description="Port of the embedded PostgreSQL on 127.0.0.1.")
    temporal_namespace: str = Field(
        default="default", description="Temporal namespace of all sojourn workflows."
    )
    temporal_port: int = Field(default=7233, description="gRPC port of the embedded Temporal dev server.")
    temporal_ui_port: int = Field(default=8233, description="Port of the embedded Temporal UI.")
    task_queue: str = Field(default="sojourn", description="Temporal task queue of the sojourn worker.")
    smtp_url: str = Field(
        default="smtp://127.0.0.1:1025",
        description="SMTP relay for email, smtp://[user:pass@]host:port (smtps:// for implicit TLS); null:// discards mail but keeps the ledger.",
    )
    access_key_id: str = Field(
        default=DEV_ACCESS_KEY_ID, description="SigV4 access key id that API callers sign with."
    )
    secret_access_key: str = Field(
        default=DEV_SECRET_ACCESS_KEY, description="SigV4 secret key of that key pair."
    )
    region: str = Field(default="us-east-1", description="Region reported in ARNs.")
    public_url: str | None = Field(
        default=None,
        description="Base URL of tracking and unsubscribe links (default: http://<api_host>:<api_port>).",
    )
    page_token_ttl_days: int = Field(
        default=60, ge=1, le=3650, description="Days an unsubscribe or preference-page link stays valid."
    )
    list_unsubscribe_mailto: str | None = Field(
        default=None,
        description="Address for the mailto: part of List-Unsubscribe headers (none if unset).",
    )
    default_from_address: str | None = Field(
        default=None, description="From address of sesv2 SendEmail calls that give no FromEmailAddress."
    )
    temporal_search_attributes: bool = Field(
        default=True, description="Set search attributes on workflows (off only for servers without them)."
    )
    cohort_size: int = Field(
        default=1000, ge=1, le=20000, description="Most participants moved by one cohort workflow."
    )
    max_cohorts_in_flight: int = Field(
        default=200, ge=1, le=1000, description="Most cohorts of one journey running at once."
    )
    journey_history_limit: int = Field(
        default=5000, ge=50, description="History length at which a JourneyWorkflow continues as new."
    )
    retention_days: int = Field(default=30, ge=1, description="How long Temporal keeps closed workflow runs.")
    sms_provider_url: str = Field(
        default="",
        description="SMS provider: https:// webhook, file:// (JSON lines in the data dir) or empty (none).",
    )
    sms_provider_secret: str = Field(
        default="", description="HMAC secret of the SMS webhook and its callbacks."
    )
    push_provider_url: str = Field(
        default="", description="Push (APNs/FCM/Baidu/ADM) provider URL, as above."
    )
    push_provider_secret: str = Field(
        default="", description="HMAC secret of the push webhook and its callbacks."
    )
    voice_provider_url: str = Field(default="", description="Voice provider URL, as above.")
    voice_provider_secret: str = Field(
        default="", description="HMAC secret of the voice webhook and its callbacks."
    )
    custom_provider_url: str = Field(default="", description="CUSTOM channel provider URL, as above.")
    custom_provider_secret: str = Field(
        default="", description="HMAC secret of the custom webhook and its callbacks."
    )
    provider_max_rate: float = Field(
        default=200.0, gt=0, description="Messages/s per lane and provider before any throttling is seen."
    )
    smtp_max_rate: float = Field(
        default=1000.0, gt=0, description="Emails/s per lane before the SMTP relay throttles."
    )
    worker_processes: int = Field(
        default_factory=lambda: default_worker_processes(os.cpu_count()),
        ge=1,
        description="Worker processes `sojourn worker` and `sojourn up` run; a campaign run's audience is "
        "sent in as many parts, spread over them by the task queue.",
    )

    def provider_setting(self, channel: str) -> tuple[str, str]:
        """The (URL, secret) configured for a provider channel (SMS, PUSH, VOICE or CUSTOM)."""
        name = channel.lower()
        return str(getattr(self, f"{name}_provider_url", "")), str(
            getattr(self, f"{name}_provider_secret", "")
        )

    # --- suppression, feedback, consent (see the README's "Suppression and consent") ---
    feedback_secret: str | None = Field(
        default=None,
        description="HMAC-SHA256 secret of POST /notifications/webhook (X-Sojourn-Signature); when set, "
        "POST /notifications/ses also needs ?token=<this secret>.",
    )
    sns_verify_signatures: bool = Field(
        default=True,
        description="Verify the signature of every SNS message to POST /notifications/ses (SNS raw message "
        "delivery carries none: it is then accepted only with the ?token= of SOJOURN_FEEDBACK_SECRET).",
    )
    sns_cert_url_pattern: str | None = Field(
        default=None,
        description="Regex a whole SigningCertURL may match besides AWS's own (https://sns.<region>.amazonaws.com/...), "
        "for self-hosted SNS-compatible senders, e.g. ^https://sns\\.internal\\.example/.",
    )
    bounce_smtp_port: int | None = Field(
        default=None,
        description="Set: the API process also listens for DSN bounce emails over SMTP on this port.",
    )
    bounce_smtp_host: str = Field(default="127.0.0.1", description="Interface of the bounce SMTP listener.")
    bounce_mailbox: str | None = Field(
        default=None, description="The only recipient the bounce listener accepts (unset: any recipient)."
    )
    optin_confirm_days: int = Field(
        default=7, ge=1, le=30, description="How long a double opt-in confirmation link stays valid."
    )

    @property
    def effective_public_url(self) -> str:
        """The base URL under which tracking links are built."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        """SOJOURN_DATABASE_URL, else the embedded PostgreSQL that ``sojourn up`` runs."""
        return self.database_url or f"postgresql://postgres@127.0.0.1:{self.postgres_port}/sojourn"

    @property
    def tracking_key(self) -> bytes:
        """HMAC key of tracking links, derived from the API secret so one secret configures both."""
        return hashlib.sha256(b"sojourn-tracking:" + self.secret_access_key.encode()).digest()

    @property
    def page_key(self) -> bytes:
        """HMAC key of unsubscribe and preference-page links, derived from the API secret like tracking_key."""
        return hashlib.sha256(b"sojourn-pages:" + self.secret_access_key.encode()).digest()

    @property
    def consent_key(self) -> bytes:
        """HMAC key of opt-in form keys and confirmation tokens, derived from the API secret."""
        return hashlib.sha256(b"sojourn-consent:" + self.secret_access_key.encode()).digest()

    @property
    def effective_temporal_address(self) -> str:
        """The Temporal frontend address sojourn connects to."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
