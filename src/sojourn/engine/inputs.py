"""Inputs and results of the engine's workflows and activities: one model per call, so fields can be added."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field


class JourneyInput(BaseModel):
    """Starts (or continues) the JourneyWorkflow of one journey."""

    app_id: str
    journey_id: str
    # Off on the time-skipping test server, which has no custom search attributes.
    observe: bool = True
    carried: JourneyCarry | None = None


class JourneyCarry(BaseModel):
    """What a JourneyWorkflow hands to itself across continue-as-new."""

    state: str
    active_cohorts: list[int] = Field(default_factory=list)
    enrolled: bool = False
    plan: JourneyPlan | None = None
    next_cohort_no: int = 0
    pending: list[CohortSpec] = Field(default_factory=list)


class JourneyPlan(BaseModel):
    """The current version of a journey and when it runs, as loaded from Postgres."""

    app_id: str
    journey_id: str
    version: int
    state: str
    definition: dict[str, Any]
    start_at: datetime
    end_at: datetime
    entry: str  # "segment" | "event" | "none"
    segment_id: str | None = None
    cohort_size: int = 1000
    # At most this many cohorts run at once; the rest wait their turn (a million entrants are 1,000 cohorts).
    max_cohorts_in_flight: int = 200
    # Continue-as-new once the JourneyWorkflow's history is this long.
    history_limit: int = 5000
    # Segment journeys: re-read the segment this often (RefreshFrequency), and when it is updated.
    refresh_every: timedelta | None = None
    refresh_on_update: bool = False


class JourneyRef(BaseModel):
    """Which journey an activity is about."""

    app_id: str
    journey_id: str


class EnrollInput(BaseModel):
    """Puts a segment's members into the journey, in cohorts."""

    app_id: str
    journey_id: str
    version: int
    segment_id: str
    start_activity: str
    cohort_size: int
    # Cohort numbers are allocated by the workflow, so a retried activity makes the same cohorts.
    first_cohort_no: int
    # A refresh: members who are new, or may enter again under the journey's re-entry limits, enter.
    refresh: bool = False
    # LocalTime: cohorts by time zone, each entering on its own clock.
    local_time: bool = False
    limits: dict[str, Any] = Field(default_factory=dict)
    # The journey's clock at enrollment (entry times and re-entry intervals are on it).
    now: datetime | None = None


class AdmitInput(BaseModel):
    """Moves waiting event-triggered entrants (intake rows) into one new cohort."""

    app_id: str
    journey_id: str
    version: int
    start_activity: str
    cohort_size: int
    cohort_no: int
    limits: dict[str, Any] = Field(default_factory=dict)
    # EventStartCondition.SegmentId: only its members enter.
    segment_id: str | None = None
    # The journey's clock at admission (re-entry intervals are measured on it, as every journey timer is).
    now: datetime | None = None


class CohortSpec(BaseModel):
    """A cohort that enrollment or intake made (``size`` participants entered; ``claimed`` intake rows used)."""

    cohort_no: int
    size: int
    claimed: int = 0
    # LocalTime journeys: the members' zone reaches the start (and the end) at these instants.
    not_before: datetime | None = None
    deadline: datetime | None = None


class CohortInput(BaseModel):
    """Starts a CohortWorkflow: a batch of participants that entered together."""

    app_id: str
    journey_id: str
    version: int
    cohort_no: int
    size: int
    definition: dict[str, Any]
    deadline: datetime
    # LocalTime journeys: the cohort waits until its members' clocks show the start.
    not_before: datetime | None = None


class StepInput(BaseModel):
    """Runs one activity of the journey graph for one lane (sub-cohort) of a cohort."""

    app_id: str
    journey_id: str
    version: int
    cohort_no: int
    lane: str
    activity_id: str | None
    activity: dict[str, Any] | None = None
    # Wait activities the lane passed since its last step (their completions are counted now).
    waited: list[str] = Field(default_factory=list)
    # Distinguishes visits of the same activity (loops), so message ids stay unique and deterministic.
    visit: str = ""
    # The journey's clock when the step starts (caps count back from it) and the journey's Limits.
    now: datetime | None = None
    limits: dict[str, Any] = Field(default_factory=dict)
    # The journey's sending-time settings (QuietTime, WaitForQuietTime, SendingSchedule, OpenHours, ClosedDays,
    # Schedule, TimezoneEstimationMethods), as in the definition; empty when it sets none.
    sending: dict[str, Any] = Field(default_factory=dict)
    # release_waiting: the lane that members whose event arrived move to.
    target_lane: str | None = None


class Branch(BaseModel):
    """Where part of a lane went after a step."""

    lane: str
    next_activity: str | None
    count: int
    # Held back (quiet time, closed hours): the lane runs ``next_activity`` at this time, not now.
    resume_at: datetime | None = None


class StepResult(BaseModel):
    """What a step did: the branches that go on, and counts for the UI."""

    branches: list[Branch] = Field(default_factory=list)
    processed: int = 0
    detail: str = ""


class LaneEnd(BaseModel):
    """Ends a lane: its members leave the journey with ``status``."""

    app_id: str
    journey_id: str
    cohort_no: int
    lane: str
    status: str
    waited: list[str] = Field(default_factory=list)


class CohortsCancel(BaseModel):
    """Releases the members of cohorts that never started (the journey was cancelled first)."""

    journey_id: str
    cohort_nos: list[int]


class JourneyFinish(BaseModel):
    """Records the final state of a journey."""

    app_id: str
    journey_id: str
    state: str


JourneyInput.model_rebuild()
JourneyCarry.model_rebuild()
