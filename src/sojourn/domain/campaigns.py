"""The campaign definition: Pinpoint's ``WriteCampaignRequest`` as pydantic models, plus the campaign rules.

Field names are the API's own (PascalCase), so a request body validates into these models unchanged and
``wire()`` gives back the wire form; ``sojourn.dsl.Campaign`` builds the same models.

sojourn runs EMAIL campaigns (a template, ``TemplateConfiguration.EmailTemplate``, or an inline
``MessageConfiguration.EmailMessage``). A campaign that targets another channel is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from sojourn.domain.app_settings import CampaignHookSpec, CampaignLimitsSpec, check_hh_mm
from sojourn.domain.campaign_schedule import EVENT_FREQUENCIES, FREQUENCIES, RECURRING, ScheduleRule
from sojourn.domain.journeys import (
    EventDimensions,
    EventFilterSpec,
    QuietTimeSpec,
    WireModel,
    event_matches,
    parse_instant,
)
from sojourn.domain.local_time import wall_to_utc, zone_named

MAX_TREATMENTS = 5
IMMEDIATE = "IMMEDIATE"
_OTHER_CHANNEL_MESSAGES = (
    "SMSMessage",
    "APNSMessage",
    "GCMMessage",
    "ADMMessage",
    "BaiduMessage",
    "CustomMessage",
    "InAppMessage",
)
_OTHER_CHANNEL_TEMPLATES = ("SMSTemplate", "PushTemplate", "VoiceTemplate", "InAppTemplate")


class CampaignStatus(StrEnum):
    """Pinpoint's CampaignState.CampaignStatus."""

    SCHEDULED = "SCHEDULED"
    EXECUTING = "EXECUTING"
    PENDING_NEXT_RUN = "PENDING_NEXT_RUN"
    COMPLETED = "COMPLETED"
    PAUSED = "PAUSED"
    DELETED = "DELETED"
    INVALID = "INVALID"


class CampaignEventFilter(WireModel):
    """Which events trigger an EVENT campaign."""

    FilterType: Literal["SYSTEM", "ENDPOINT"] = "ENDPOINT"
    Dimensions: EventDimensions


class CampaignSchedule(WireModel):
    """Schedule: when (and how often) the campaign runs."""

    StartTime: str
    EndTime: str | None = None
    Frequency: str | None = None
    IsLocalTime: bool | None = None
    Timezone: str | None = None
    QuietTime: QuietTimeSpec | None = None
    EventFilter: CampaignEventFilter | None = None

    @property
    def frequency(self) -> str:
        """The frequency (ONCE when unset)."""
        return self.Frequency or "ONCE"


class Template(WireModel):
    """A template reference: name and optional version (the active one at send time when omitted)."""

    Name: str | None = None
    Version: str | None = None


class TemplateConfigurationSpec(WireModel):
    """Templates per channel."""

    EmailTemplate: Template | None = None
    PushTemplate: Template | None = None
    SMSTemplate: Template | None = None
    VoiceTemplate: Template | None = None
    InAppTemplate: Template | None = None


class CampaignEmailMessage(WireModel):
    """An inline email: ``Title`` (subject), ``HtmlBody``, ``Body`` (text), ``FromAddress``."""

    Body: str | None = None
    FromAddress: str | None = None
    Headers: list[dict[str, Any]] | None = None
    HtmlBody: str | None = None
    Title: str | None = None


class MessageConfigurationSpec(WireModel):
    """Messages per channel (only EMAIL and the default message are run by sojourn)."""

    DefaultMessage: dict[str, Any] | None = None
    EmailMessage: CampaignEmailMessage | None = None
    SMSMessage: dict[str, Any] | None = None
    APNSMessage: dict[str, Any] | None = None
    GCMMessage: dict[str, Any] | None = None
    ADMMessage: dict[str, Any] | None = None
    BaiduMessage: dict[str, Any] | None = None
    CustomMessage: dict[str, Any] | None = None
    InAppMessage: dict[str, Any] | None = None


class Treatment(WireModel):
    """WriteTreatmentResource: an A/B treatment besides the default one."""

    SizePercent: int
    MessageConfiguration: MessageConfigurationSpec | None = None
    TemplateConfiguration: TemplateConfigurationSpec | None = None
    Schedule: CampaignSchedule | None = None
    CustomDeliveryConfiguration: dict[str, Any] | None = None
    TreatmentName: str | None = None
    TreatmentDescription: str | None = None


class CampaignDefinition(WireModel):
    """A campaign as the API writes it (``WriteCampaignRequest`` without tags)."""

    Name: str | None = None
    Description: str | None = None
    SegmentId: str | None = None
    SegmentVersion: int | None = None
    MessageConfiguration: MessageConfigurationSpec | None = None
    TemplateConfiguration: TemplateConfigurationSpec | None = None
    CustomDeliveryConfiguration: dict[str, Any] | None = None
    Schedule: CampaignSchedule | None = None
    Limits: CampaignLimitsSpec | None = None
    HoldoutPercent: int | None = None
    AdditionalTreatments: list[Treatment] = Field(default_factory=list)
    TreatmentName: str | None = None
    TreatmentDescription: str | None = None
    Hook: CampaignHookSpec | None = None
    IsPaused: bool | None = None
    Priority: int | None = None

    def wire(self) -> dict[str, Any]:
        """The definition as stored and returned (JSON-ready, without unset fields)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False, exclude_unset=True)

    @property
    def is_event(self) -> bool:
        """Whether the campaign is event-triggered."""
        return self.Schedule is not None and self.Schedule.frequency in EVENT_FREQUENCIES

    def treatment_sizes(self) -> list[int]:
        """SizePercent of each additional treatment, in order (treatment ids 1, 2, ...)."""
        return [t.SizePercent for t in self.AdditionalTreatments]


def email_content(
    message: MessageConfigurationSpec | None, templates: TemplateConfigurationSpec | None
) -> tuple[Template | None, CampaignEmailMessage | None]:
    """What a treatment sends by email: its email template, else its inline EmailMessage."""
    template = templates.EmailTemplate if templates is not None else None
    inline = message.EmailMessage if message is not None else None
    return (template if template is not None and template.Name else None), inline


def _channel_problems(
    where: str, message: MessageConfigurationSpec | None, templates: TemplateConfigurationSpec | None
) -> list[str]:
    found: list[str] = []
    others = [n for n in _OTHER_CHANNEL_MESSAGES if message is not None and getattr(message, n) is not None]
    others += [
        n for n in _OTHER_CHANNEL_TEMPLATES if templates is not None and getattr(templates, n) is not None
    ]
    if others:
        found.append(
            f"{where}: {', '.join(others)}: only EMAIL campaigns are supported; "
            "SMS, push, voice, in-app and custom channel campaigns are not supported by sojourn yet"
        )
    template, inline = email_content(message, templates)
    if template is None and (inline is None or not (inline.HtmlBody or inline.Body)):
        found.append(
            f"{where}: give TemplateConfiguration.EmailTemplate.Name or "
            "MessageConfiguration.EmailMessage with HtmlBody or Body"
        )
    if template is None and inline is not None and not inline.Title and (inline.HtmlBody or inline.Body):
        found.append(f"{where}: MessageConfiguration.EmailMessage needs a Title (the subject)")
    if inline is not None and inline.Headers is not None and len(inline.Headers) > 15:
        found.append(f"{where}: an email has at most 15 Headers")
    return found


def schedule_problems(where: str, schedule: CampaignSchedule) -> list[str]:
    """What is wrong with a Schedule (empty when nothing)."""
    found: list[str] = []
    frequency = schedule.frequency
    if frequency not in FREQUENCIES:
        found.append(f"{where}.Frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    if frequency == "IN_APP_EVENT":
        found.append(f"{where}.Frequency IN_APP_EVENT: in-app campaigns are not supported by sojourn yet")
    start: datetime | None = None
    if schedule.StartTime == IMMEDIATE:
        if frequency != "ONCE":
            found.append(f"{where}.StartTime IMMEDIATE is only for Frequency ONCE; give an ISO-8601 time")
    else:
        try:
            start = parse_instant(schedule.StartTime)
        except ValueError as err:
            found.append(f"{where}.StartTime: {err} (or IMMEDIATE)")
    if schedule.EndTime is not None:
        try:
            end = parse_instant(schedule.EndTime)
            if start is not None and end <= start:
                found.append(f"{where}.EndTime must be after StartTime")
        except ValueError as err:
            found.append(f"{where}.EndTime: {err}")
    if schedule.Timezone is not None and zone_named(schedule.Timezone) is None:
        found.append(
            f"{where}.Timezone {schedule.Timezone!r} is not a time zone (an IANA name such as "
            "America/New_York, or UTC, UTC+05:30)"
        )
    quiet = schedule.QuietTime
    if quiet is not None:
        for name in ("Start", "End"):
            try:
                check_hh_mm(getattr(quiet, name), f"{where}.QuietTime.{name}")
            except ValueError as err:
                found.append(str(err))
        if bool(quiet.Start) != bool(quiet.End):
            found.append(f"{where}.QuietTime needs both Start and End (HH:MM), or neither")
    if frequency == "EVENT" and schedule.EventFilter is None:
        found.append(f"{where}: an EVENT campaign needs an EventFilter (Dimensions.EventType)")
    if frequency != "EVENT" and schedule.EventFilter is not None:
        found.append(f"{where}.EventFilter is only for Frequency EVENT")
    return found


def campaign_problems(definition: CampaignDefinition, *, creating: bool) -> list[str]:
    """Everything wrong with a campaign definition that needs no database (empty when it is valid)."""
    found: list[str] = []
    if creating and not definition.Name:
        found.append("Name is required")
    if creating and not definition.SegmentId:
        found.append("SegmentId is required (the segment the campaign sends to)")
    if definition.Schedule is None:
        if creating:
            found.append("Schedule is required (at least StartTime, e.g. IMMEDIATE)")
    else:
        found += schedule_problems("Schedule", definition.Schedule)
        if definition.Schedule.IsLocalTime and definition.is_event:
            found.append("Schedule.IsLocalTime does not apply to EVENT campaigns")
    if (
        definition.MessageConfiguration is not None
        or definition.TemplateConfiguration is not None
        or creating
    ):
        found += _channel_problems(
            "the default treatment", definition.MessageConfiguration, definition.TemplateConfiguration
        )
    if definition.CustomDeliveryConfiguration is not None:
        found.append("CustomDeliveryConfiguration: custom channel campaigns are not supported by sojourn yet")
    treatments = definition.AdditionalTreatments
    if len(treatments) + 1 > MAX_TREATMENTS:
        found.append(
            f"a campaign has at most {MAX_TREATMENTS} treatments including the default one "
            f"(AdditionalTreatments: at most {MAX_TREATMENTS - 1}, got {len(treatments)})"
        )
    holdout = definition.HoldoutPercent or 0
    if not 0 <= holdout <= 100:
        found.append(f"HoldoutPercent must be a whole number 0-100, not {holdout}")
    for i, treatment in enumerate(treatments):
        where = f"AdditionalTreatments[{i}]"
        if not 0 <= treatment.SizePercent <= 100:
            found.append(f"{where}.SizePercent must be a whole number 0-100, not {treatment.SizePercent}")
        found += _channel_problems(
            where,
            treatment.MessageConfiguration or definition.MessageConfiguration,
            treatment.TemplateConfiguration or definition.TemplateConfiguration,
        )
        if treatment.Schedule is not None:
            found += schedule_problems(f"{where}.Schedule", treatment.Schedule)
        if treatment.CustomDeliveryConfiguration is not None:
            found.append(
                f"{where}.CustomDeliveryConfiguration: custom channel campaigns are not supported yet"
            )
    total = holdout + sum(t.SizePercent for t in treatments)
    if total > 100:
        found.append(
            f"HoldoutPercent plus every AdditionalTreatments SizePercent must be at most 100 (got {total})"
        )
    hook = definition.Hook
    if hook is not None and hook.Mode == "FILTER" and not hook.LambdaFunctionName:
        found.append("Hook.Mode FILTER needs LambdaFunctionName (an https URL or a custom activity name)")
    if hook is not None and hook.Mode == "DELIVERY":
        found.append("Hook.Mode DELIVERY is deprecated by Pinpoint and not supported; use FILTER")
    if hook is not None and (hook.LambdaFunctionName or "").startswith("http://"):
        found.append("Hook.LambdaFunctionName must be an https:// URL or a custom activity name")
    return found


def schedule_rule(schedule: CampaignSchedule, written_at: datetime) -> ScheduleRule:
    """The schedule as a :class:`ScheduleRule` (``IMMEDIATE`` starts at ``written_at``).

    A StartTime without an offset is read on the schedule zone's wall clock.
    """
    zone = zone_named(schedule.Timezone) or UTC
    if schedule.StartTime == IMMEDIATE:
        start = written_at
    else:
        start = _instant_in(schedule.StartTime, zone)
    end = _instant_in(schedule.EndTime, zone) if schedule.EndTime else None
    return ScheduleRule(frequency=schedule.frequency, start=start, end=end, zone=zone)


def _instant_in(value: str, zone: Any) -> datetime:
    text = value.strip()
    naive = not (text.endswith("Z") or "+" in text[10:] or "-" in text[10:])
    parsed = parse_instant(text)
    if naive:
        return wall_to_utc(parsed.replace(tzinfo=None), zone)
    return parsed


def is_recurring(schedule: CampaignSchedule | None) -> bool:
    """Whether the schedule has more than one timed run."""
    return schedule is not None and schedule.frequency in RECURRING


def campaign_event_matches(
    definition: CampaignDefinition,
    event_type: str,
    attributes: dict[str, str],
    metrics: dict[str, float],
    *,
    at: datetime | None = None,
) -> bool:
    """Whether an event triggers an EVENT campaign: its Schedule.EventFilter, matched as journeys match events.

    Repeated attribute values are OR'ed (an attribute matches when its value is one of them). With ``at`` (the
    event's time), only events between the schedule's StartTime and EndTime trigger, as in Pinpoint.
    """
    schedule = definition.Schedule
    if schedule is None or schedule.frequency != "EVENT" or schedule.EventFilter is None:
        return False
    if at is not None:
        rule = schedule_rule(schedule, at)
        if at < rule.start or (rule.end is not None and at > rule.end):
            return False
    spec = EventFilterSpec.model_validate(schedule.EventFilter.model_dump(exclude_none=True))
    return event_matches(spec, event_type, attributes, metrics)
