"""Project-level settings (Pinpoint's ApplicationSettingsResource): defaults for campaigns and journeys.

``UpdateApplicationSettings`` writes them, ``GetApplicationSettings`` reads them. They are defaults: a
campaign's or journey's own value wins where it has one (``effective_*`` below say how). The
``CampaignLimits.Daily`` of the project is, as in Pinpoint, the 24-hour cap across all campaigns *and*
journeys; ``JourneyLimits.TimeframeCap`` caps what all journeys together send to an endpoint in N days.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from sojourn.domain.journeys import JourneyTimeframeCap, QuietTimeSpec, WireModel

_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def check_hh_mm(value: str | None, field: str) -> str | None:
    """A quiet-time bound in Pinpoint's ``HH:MM`` (24-hour) form.

    Raises:
        ValueError: saying what the value should look like.
    """
    if value is None or _HH_MM.match(value):
        return value
    raise ValueError(f"{field} must be a 24-hour time HH:MM such as 22:00, not {value!r}")


class CampaignLimitsSpec(WireModel):
    """CampaignLimits: per-endpoint caps and the send rate of a campaign (or the project's defaults)."""

    Daily: int | None = Field(default=None, ge=0, le=100)
    MaximumDuration: int | None = Field(default=None, ge=60)
    MessagesPerSecond: int | None = Field(default=None, ge=1, le=20000)
    Total: int | None = Field(default=None, ge=0, le=100)
    Session: int | None = Field(default=None, ge=0)


class AppJourneyLimits(WireModel):
    """ApplicationSettingsJourneyLimits: the journey caps every journey of the project shares."""

    DailyCap: int | None = Field(default=None, ge=0, le=100)
    TimeframeCap: JourneyTimeframeCap | None = None
    TotalCap: int | None = Field(default=None, ge=0, le=100)


class CampaignHookSpec(WireModel):
    """CampaignHook: a function (sojourn: an https URL or a custom activity name) called before sending."""

    LambdaFunctionName: str | None = None
    Mode: Literal["DELIVERY", "FILTER"] | None = None
    WebUrl: str | None = None


class QuietTimeSetting(QuietTimeSpec):
    """QuietTime with its bounds checked (both or neither)."""

    @field_validator("Start", "End")
    @classmethod
    def _hh_mm(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_hh_mm(value, f"QuietTime.{info.field_name}")


class ApplicationSettings(WireModel):
    """The project's settings as stored and returned (without ApplicationId, added on the way out)."""

    CampaignHook: CampaignHookSpec | None = None
    Limits: CampaignLimitsSpec | None = None
    QuietTime: QuietTimeSetting | None = None
    JourneyLimits: AppJourneyLimits | None = None
    CloudWatchMetricsEnabled: bool | None = None
    EventTaggingEnabled: bool | None = None
    LastModifiedDate: str | None = None

    def merged(self, update: ApplicationSettings) -> ApplicationSettings:
        """These settings with every member ``update`` sets replacing ours (members it omits stay)."""
        return self.model_copy(update={name: getattr(update, name) for name in update.model_fields_set})

    @property
    def daily_cap_all(self) -> int:
        """Messages an endpoint may get from all campaigns and journeys in 24 hours (0: no cap)."""
        return (self.Limits.Daily or 0) if self.Limits else 0

    @property
    def timeframe_cap(self) -> tuple[int, int]:
        """(Cap, Days) over all journeys; (0, 0) when unset."""
        cap = self.JourneyLimits.TimeframeCap if self.JourneyLimits else None
        if cap is None or not cap.Cap or not cap.Days:
            return 0, 0
        return cap.Cap, cap.Days

    def wire(self, app_id: str) -> dict[str, Any]:
        """The ApplicationSettingsResource for ``app_id``."""
        body = self.model_dump(
            mode="json", exclude_none=True, exclude={"CloudWatchMetricsEnabled", "EventTaggingEnabled"}
        )
        return {"ApplicationId": app_id, **body}


def problems_of_settings(settings: ApplicationSettings) -> list[str]:
    """What makes settings unusable beyond field ranges (which the model checks)."""
    found: list[str] = []
    quiet = settings.QuietTime
    if quiet is not None and bool(quiet.Start) != bool(quiet.End):
        found.append("QuietTime needs both Start and End (HH:MM), or neither")
    hook = settings.CampaignHook
    if hook is not None and hook.Mode == "FILTER" and not hook.LambdaFunctionName:
        found.append(
            "CampaignHook.Mode FILTER needs LambdaFunctionName (an https URL or a custom activity name)"
        )
    if hook is not None and hook.LambdaFunctionName and hook.LambdaFunctionName.startswith("http://"):
        found.append("CampaignHook.LambdaFunctionName must be an https:// URL or a custom activity name")
    return found
