"""Inputs and results of the CampaignWorkflow and its activities: one model per call, so fields can be added."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from sojourn.domain.campaign_schedule import ScheduleRule
from sojourn.domain.local_time import zone_or_utc


class CampaignRef(BaseModel):
    """Which campaign an activity is about."""

    app_id: str
    campaign_id: str


class CampaignCarry(BaseModel):
    """What a CampaignWorkflow hands to itself across continue-as-new."""

    last_done: datetime | None = None
    ran: bool = False
    next_event_batch: int = 0


class CampaignInput(BaseModel):
    """Starts (or continues) the CampaignWorkflow of one campaign."""

    app_id: str
    campaign_id: str
    # Off on the time-skipping test server, which has no custom search attributes.
    observe: bool = True
    carried: CampaignCarry | None = None


class CampaignPlan(BaseModel):
    """The campaign's current version, with the project's defaults applied, as the workflow runs it."""

    app_id: str
    campaign_id: str
    version: int
    paused: bool
    # The campaign row is gone (DeleteCampaign) or its segment is.
    deleted: bool = False
    frequency: str = "ONCE"
    start: datetime
    end: datetime | None = None
    zone: str | None = None
    local_time: bool = False
    holdout: int = 0
    sizes: list[int] = Field(default_factory=list)
    # Effective CampaignLimits (the campaign's own, else the project's) and the project-wide daily cap.
    limits: dict[str, int] = Field(default_factory=dict)
    all_daily: int = 0
    quiet_start: str | None = None
    quiet_end: str | None = None
    hook: str | None = None
    # Continue-as-new after this many runs or event batches.
    runs_per_history: int = 20
    # Why the campaign cannot run now (INVALID: a template it uses is gone, its channel is disabled); None: it can.
    invalid: str | None = None
    # Seconds after each run at which each treatment sends (its own Schedule.StartTime); empty: all at the run.
    treatment_delays: list[int] = Field(default_factory=list)
    # Parts each run's audience is sent in, as concurrent activities (one per worker process).
    parts: int = 1

    def rule(self) -> ScheduleRule:
        """The schedule as a pure-function rule."""
        return ScheduleRule(
            frequency=self.frequency, start=self.start, end=self.end, zone=zone_or_utc(self.zone)
        )

    @property
    def treatments(self) -> list[int]:
        """Treatment ids: 0 (default) and one per additional treatment."""
        return list(range(len(self.sizes) + 1))


class RunStart(BaseModel):
    """Records the start of a run."""

    plan: CampaignPlan
    run_key: str
    scheduled_at: datetime
    started_at: datetime
    timezones_total: int = 1
    missed: int = 0


class SliceInput(BaseModel):
    """Sends one run (or one time-zone slice of a local-time run) to the segment's members."""

    plan: CampaignPlan
    run_key: str
    scheduled_at: datetime
    # The instant this slice is sent at (quiet time and caps are judged at it).
    send_at: datetime
    # Demographic.Timezone values of this slice ("" for none); None: every member.
    zones: list[str] | None = None
    # Only these treatments' members (a treatment with its own schedule sends at its own time); None: all.
    treatments: list[int] | None = None
    # Whether this slice counts the holdout (once per zone slice when treatments send at different times).
    count_holdout: bool = True
    # This activity sends the members whose CohortId % parts == part.
    part: int = 0
    parts: int = 1


class SliceResult(BaseModel):
    """What a slice did."""

    targeted: int = 0
    sent: int = 0
    holdout: int = 0
    stopped: bool = False
    segment_missing: bool = False

    def plus(self, other: SliceResult) -> SliceResult:
        """The result of two parts of one slice."""
        return SliceResult(
            targeted=self.targeted + other.targeted,
            sent=self.sent + other.sent,
            holdout=self.holdout + other.holdout,
            stopped=self.stopped or other.stopped,
            segment_missing=self.segment_missing or other.segment_missing,
        )


class RunFinish(BaseModel):
    """Closes a run with the counts the ledger does not hold."""

    plan: CampaignPlan
    run_key: str
    ended_at: datetime
    timezones_completed: int = 1
    extra: dict[str, int] = Field(default_factory=dict)
    result: str = "SUCCESS"


class CampaignStateChange(BaseModel):
    """Records the campaign's status."""

    app_id: str
    campaign_id: str
    state: str


class EventBatchInput(BaseModel):
    """Sends to the endpoints whose events triggered the campaign (one batch of intake rows)."""

    plan: CampaignPlan
    batch_no: int
    now: datetime
    batch_size: int = 500


class EventBatchResult(BaseModel):
    """What an event batch did (``claimed`` intake rows; fewer than the batch size: nothing else waits)."""

    claimed: int = 0
    sent: int = 0
    expired: int = 0
    holdout: int = 0
    segment_missing: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)


CampaignInput.model_rebuild()
