"""Inputs and results of the double opt-in and sunset (unengaged removal) workflows and activities."""

from __future__ import annotations

from pydantic import BaseModel


class OptInInput(BaseModel):
    """Starts a DoubleOptInWorkflow for one address of one app."""

    app_id: str
    endpoint_id: str
    address: str
    consent_text: str
    confirm_days: int = 7


class Confirmation(BaseModel):
    """The ``confirm`` signal: who confirmed, from where."""

    ip: str | None = None
    user_agent: str | None = None


class ConfirmationEmail(BaseModel):
    """The one confirmation email of an opt-in run (its ledger id is derived from the run)."""

    app_id: str
    endpoint_id: str
    address: str
    consent_text: str
    message_id: str
    expires_at: int  # unix seconds: the link's expiry
    confirm_days: int = 7


class OptInOutcome(BaseModel):
    """How an opt-in ended: ``granted`` (confirmed) or ``expired``."""

    app_id: str
    endpoint_id: str
    address: str
    consent_text: str
    status: str
    confirm_days: int
    confirmation: Confirmation | None = None


class SunsetInput(BaseModel):
    """Starts (or continues) the SunsetWorkflow of an app."""

    app_id: str
    passes: int = 0


class SunsetResult(BaseModel):
    """One pass of unengaged removal."""

    enabled: bool
    policy: str = "report"
    days: int = 90
    found: int = 0
    applied: int = 0
