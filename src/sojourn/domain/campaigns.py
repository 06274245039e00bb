"""The campaign definition: Pinpoint's ``WriteCampaignRequest`` as pydantic models, plus the campaign rules.

Field names are the API's own (PascalCase), so a request body validates into these models unchanged and
``wire()`` gives back the wire form; ``sojourn.dsl.Campaign`` builds the same models.

A treatment sends on every channel it has content for (:func:`treatment_channels`): EMAIL (EmailTemplate or
EmailMessage), SMS (SMSTemplate or SMSMessage), PUSH (PushTemplate or APNSMessage/GCMMessage/ADMMessage/
BaiduMessage, over DefaultMessage), VOICE (VoiceTemplate; beyond Pinpoint, whose campaigns have no voice) and
CUSTOM (CustomMessage with CustomDeliveryConfiguration). Each segment member gets the message of its own
channel (:func:`endpoint_channel`); members on other channels are skipped as ENDPOINT_MISSING_CHANNEL.
In-app campaigns (Frequency IN_APP_EVENT, an InAppTemplate or an inline InAppMessage) send nothing: apps fetch
their messages with GetInAppMessages (:func:`in_app_template`, :func:`in_app_message`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from sojourn.channels.providers import provider_channel
from sojourn.domain.app_settings import CampaignHookSpec, CampaignLimitsSpec, check_hh_mm
from sojourn.domain.campaign_schedule import (
    EVENT_FREQUENCIES,
    FREQUENCIES,
    RECURRING,
    RUN_PERIOD,
    ScheduleRule,
)
from sojourn.domain.custom_activity import ENDPOINT_TYPES, MAX_DATA_CHARS, delivery_target
from sojourn.domain.journeys import (
    EventDimensions,
    EventFilterSpec,
    QuietTimeSpec,
    WireModel,
    event_matches,
    parse_instant,
)
from sojourn.domain.local_time import wall_to_utc, zone_named
from sojourn.domain.message_templates import in_app_content_problems

MAX_TREATMENTS = 5
IMMEDIATE = "IMMEDIATE"
#: MessageConfiguration's push messages and the PushNotificationTemplate block each one fills.
PUSH_MESSAGES = {"APNSMessage": "APNS", "GCMMessage": "GCM", "ADMMessage": "ADM", "BaiduMessage": "Baidu"}


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

    @property
    def is_in_app(self) -> bool:
        """Whether this is an in-app campaign (Schedule.Frequency IN_APP_EVENT)."""
        return self.Schedule is not None and self.Schedule.frequency == "IN_APP_EVENT"

    def treatment_content(
        self, treatment_id: int
    ) -> tuple[MessageConfigurationSpec | None, TemplateConfigurationSpec | None, dict[str, Any] | None]:
        """A treatment's MessageConfiguration, TemplateConfiguration and CustomDeliveryConfiguration.

        An additional treatment that leaves one out uses the default treatment's (the custom delivery only
        when its message has a CustomMessage to deliver).
        """
        own = (self.MessageConfiguration, self.TemplateConfiguration, self.CustomDeliveryConfiguration)
        if treatment_id == 0:
            return own
        t = self.AdditionalTreatments[treatment_id - 1]
        message = t.MessageConfiguration or own[0]
        custom = t.CustomDeliveryConfiguration
        if custom is None and message is not None and message.CustomMessage is not None:
            custom = own[2]
        return message, t.TemplateConfiguration or own[1], custom

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


@dataclass(frozen=True)
class ChannelSource:
    """Where one channel's message of a treatment comes from.

    Attributes:
        channel: EMAIL, SMS, PUSH, VOICE or CUSTOM.
        template: The channel's template (TemplateConfiguration), which wins over an inline message.
        inline: The inline message shaped as the channel's stored template is (SMS/VOICE ``{"Body"}``, PUSH
            ``{"Default", "APNS", "GCM", "ADM", "Baidu"}``, CUSTOM ``{"Data"}``); None with a template.
        settings: Per-message fields that are not content (SMSMessage's MessageType, OriginationNumber, ...).
        endpoint_types: CUSTOM: the endpoint ChannelTypes delivered to DeliveryUri.
        delivery_uri: CUSTOM: the webhook URL or custom activity name.
    """

    channel: str
    template: Template | None = None
    inline: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    endpoint_types: tuple[str, ...] = ()
    delivery_uri: str = ""


def _named(template: Template | None) -> Template | None:
    return template if template is not None and template.Name else None


def treatment_channels(
    message: MessageConfigurationSpec | None,
    templates: TemplateConfigurationSpec | None,
    custom: Mapping[str, Any] | None,
) -> dict[str, ChannelSource]:
    """The channels a treatment sends on, each with where its message comes from (a pure rule).

    A channel's template wins over its inline message; ``DefaultMessage`` fills the Body (and push fields) of
    the SMS and push messages that are given but names no channel by itself. CUSTOM needs both
    ``CustomDeliveryConfiguration`` and ``CustomMessage``.
    """
    found: dict[str, ChannelSource] = {}
    default = dict((message.DefaultMessage if message is not None else None) or {})
    email_template, inline_email = email_content(message, templates)
    if email_template is not None or inline_email is not None:
        found["EMAIL"] = ChannelSource("EMAIL", template=email_template)
    sms = dict((message.SMSMessage if message is not None else None) or {})
    sms_template = _named(templates.SMSTemplate if templates is not None else None)
    if sms_template is not None or sms:
        body = sms.pop("Body", None) or default.get("Body")
        found["SMS"] = ChannelSource(
            "SMS",
            template=sms_template,
            inline=None if sms_template is not None else {"Body": body},
            settings=sms,
        )
    push = {
        block: dict(getattr(message, name) or {})
        for name, block in PUSH_MESSAGES.items()
        if message is not None and getattr(message, name) is not None
    }
    push_template = _named(templates.PushTemplate if templates is not None else None)
    if push_template is not None or push:
        found["PUSH"] = ChannelSource(
            "PUSH",
            template=push_template,
            inline=None if push_template is not None else {"Default": default, **push},
        )
    voice_template = _named(templates.VoiceTemplate if templates is not None else None)
    if voice_template is not None:
        found["VOICE"] = ChannelSource("VOICE", template=voice_template)
    data = (message.CustomMessage if message is not None else None) or None
    if custom is not None and data is not None:
        found["CUSTOM"] = ChannelSource(
            "CUSTOM",
            inline={"Data": str(data.get("Data") or "")},
            endpoint_types=tuple(custom.get("EndpointTypes") or ("CUSTOM",)),
            delivery_uri=str(custom.get("DeliveryUri") or ""),
        )
    return found


def endpoint_channel(channel_type: str | None, sources: Mapping[str, ChannelSource]) -> str | None:
    """The channel a treatment uses for an endpoint of ``channel_type``, or None (ENDPOINT_MISSING_CHANNEL).

    An endpoint whose type the CUSTOM delivery lists goes to CUSTOM; any other gets its own channel's message
    (GCM, APNS, ... are PUSH) when the treatment has one.
    """
    kind = channel_type or ""
    custom = sources.get("CUSTOM")
    if custom is not None and kind in custom.endpoint_types:
        return "CUSTOM"
    channel = provider_channel(kind)
    return channel if channel is not None and channel != "CUSTOM" and channel in sources else None


def _email_problems(where: str, message: MessageConfigurationSpec | None, templates: Any) -> list[str]:
    found: list[str] = []
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


def _custom_problems(
    where: str, message: MessageConfigurationSpec | None, custom: Mapping[str, Any] | None
) -> list[str]:
    found: list[str] = []
    data = message.CustomMessage if message is not None else None
    if custom is None:
        if data is not None:
            found.append(
                f"{where}: MessageConfiguration.CustomMessage needs CustomDeliveryConfiguration "
                "(DeliveryUri: an https:// webhook or a custom activity name)"
            )
        return found
    if data is None:
        found.append(f"{where}: CustomDeliveryConfiguration needs MessageConfiguration.CustomMessage (Data)")
    elif len(str(data.get("Data") or "")) > MAX_DATA_CHARS:
        found.append(f"{where}: CustomMessage.Data has at most {MAX_DATA_CHARS} characters")
    uri = custom.get("DeliveryUri")
    if not uri:
        found.append(f"{where}: CustomDeliveryConfiguration.DeliveryUri is required")
    else:
        try:
            delivery_target(str(uri))
        except ValueError as err:
            found.append(f"{where}: CustomDeliveryConfiguration.{err}")
    unknown = sorted(set(custom.get("EndpointTypes") or ()) - set(ENDPOINT_TYPES))
    if unknown:
        found.append(
            f"{where}: CustomDeliveryConfiguration.EndpointTypes: {', '.join(unknown)} is not an endpoint "
            f"channel type (one of {', '.join(ENDPOINT_TYPES)})"
        )
    return found


def in_app_problems(
    where: str, message: MessageConfigurationSpec | None, templates: TemplateConfigurationSpec | None = None
) -> list[str]:
    """What is wrong with an in-app treatment: a ``TemplateConfiguration.InAppTemplate`` or an inline
    ``MessageConfiguration.InAppMessage`` (the template wins), and nothing for other channels (empty when fine)."""
    found: list[str] = []
    template = templates.InAppTemplate if templates is not None else None
    if template is not None and not template.Name:
        found.append(f"{where}: TemplateConfiguration.InAppTemplate needs a Name")
    elif template is None:
        in_app = (message.InAppMessage if message is not None else None) or {}
        if not in_app.get("Content"):
            found.append(
                f"{where}: an IN_APP_EVENT campaign needs TemplateConfiguration.InAppTemplate or "
                "MessageConfiguration.InAppMessage.Content"
            )
        else:
            found += in_app_content_problems(f"{where}: InAppMessage", in_app)
    others = [
        name
        for name in ("EmailMessage", "SMSMessage", *PUSH_MESSAGES, "CustomMessage")
        if message is not None and getattr(message, name) is not None
    ]
    others += [
        name
        for name in ("EmailTemplate", "SMSTemplate", "PushTemplate", "VoiceTemplate")
        if templates is not None and getattr(templates, name) is not None
    ]
    if others:
        found.append(
            f"{where}: an IN_APP_EVENT campaign sends only an in-app message, not {', '.join(others)}"
        )
    return found


def _channel_problems(
    where: str,
    message: MessageConfigurationSpec | None,
    templates: TemplateConfigurationSpec | None,
    custom: Mapping[str, Any] | None = None,
    *,
    in_app: bool = False,
) -> list[str]:
    found: list[str] = []
    if in_app:
        return in_app_problems(where, message, templates)
    if templates is not None and templates.InAppTemplate is not None:
        found.append(
            f"{where}: TemplateConfiguration.InAppTemplate is only for Schedule.Frequency IN_APP_EVENT"
        )
    if message is not None and message.InAppMessage is not None:
        found.append(
            f"{where}: MessageConfiguration.InAppMessage is only for Schedule.Frequency IN_APP_EVENT"
        )
    sources = treatment_channels(message, templates, custom)
    if not sources:
        found.append(
            f"{where}: give a message for at least one channel: TemplateConfiguration.EmailTemplate.Name or "
            "MessageConfiguration.EmailMessage with HtmlBody or Body; SMSTemplate or SMSMessage; PushTemplate "
            "or APNSMessage/GCMMessage/ADMMessage/BaiduMessage; VoiceTemplate; or CustomMessage with "
            "CustomDeliveryConfiguration (DefaultMessage alone names no channel)"
        )
        return found + _custom_problems(where, message, custom)
    if "EMAIL" in sources:
        found += _email_problems(where, message, templates)
    sms = sources.get("SMS")
    if sms is not None and sms.template is None and not (sms.inline or {}).get("Body"):
        found.append(f"{where}: MessageConfiguration.SMSMessage needs a Body (or DefaultMessage.Body)")
    if sms is not None and sms.settings.get("MessageType") not in (None, "TRANSACTIONAL", "PROMOTIONAL"):
        found.append(f"{where}: SMSMessage.MessageType must be TRANSACTIONAL or PROMOTIONAL")
    push = sources.get("PUSH")
    if push is not None and push.template is None:
        blocks = (push.inline or {}).values()
        if not any(b.get(f) for b in blocks for f in ("Body", "Title", "RawContent", "SilentPush")):
            found.append(
                f"{where}: the push message needs a Body, Title or RawContent (in APNSMessage, GCMMessage, "
                "ADMMessage, BaiduMessage or DefaultMessage)"
            )
    found += _custom_problems(where, message, custom)
    return found


def schedule_problems(where: str, schedule: CampaignSchedule) -> list[str]:
    """What is wrong with a Schedule (empty when nothing)."""
    found: list[str] = []
    frequency = schedule.frequency
    if frequency not in FREQUENCIES:
        found.append(f"{where}.Frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
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
    if frequency in EVENT_FREQUENCIES and schedule.EventFilter is None:
        found.append(f"{where}: an {frequency} campaign needs an EventFilter (Dimensions.EventType)")
    if frequency not in EVENT_FREQUENCIES and schedule.EventFilter is not None:
        found.append(f"{where}.EventFilter is only for Frequency EVENT or IN_APP_EVENT")
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
            "the default treatment",
            definition.MessageConfiguration,
            definition.TemplateConfiguration,
            definition.CustomDeliveryConfiguration,
            in_app=definition.is_in_app,
        )
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
        message, templates, custom = definition.treatment_content(i + 1)
        found += _channel_problems(where, message, templates, custom, in_app=definition.is_in_app)
        if treatment.Schedule is not None:
            found += schedule_problems(f"{where}.Schedule", treatment.Schedule)
            found += _treatment_schedule_problems(where, definition.Schedule, treatment.Schedule)
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


def _treatment_schedule_problems(
    where: str, campaign: CampaignSchedule | None, own: CampaignSchedule
) -> list[str]:
    """A treatment's Schedule may only move its start later than the campaign's; the rest must agree."""
    if campaign is None:
        return []
    found: list[str] = []
    if campaign.frequency in EVENT_FREQUENCIES:
        return [f"{where}.Schedule: an EVENT campaign's treatments cannot have their own schedule"]
    if own.Frequency is not None and own.frequency != campaign.frequency:
        found.append(
            f"{where}.Schedule.Frequency must be the campaign's ({campaign.frequency}) or left out: a treatment's "
            "schedule sets only when its share of each run goes out"
        )
    for name in ("IsLocalTime", "Timezone", "EndTime", "QuietTime"):
        value = getattr(own, name)
        if value is not None and value != getattr(campaign, name):
            found.append(f"{where}.Schedule.{name} must be the campaign's or left out")
    if found or own.StartTime == IMMEDIATE:
        return found
    try:
        delay = treatment_delay(campaign, own, datetime.now(UTC))
    except ValueError as err:
        return [f"{where}.Schedule: {err}"]
    if delay < timedelta(0):
        found.append(f"{where}.Schedule.StartTime must not be before the campaign's Schedule.StartTime")
    period = RUN_PERIOD.get(campaign.frequency)
    if period is not None and delay >= period:
        found.append(
            f"{where}.Schedule.StartTime must be less than one {campaign.frequency} period after the "
            "campaign's StartTime (it sends the treatment's share of each run that long after the run)"
        )
    return found


def treatment_delay(
    campaign: CampaignSchedule, own: CampaignSchedule | None, written_at: datetime
) -> timedelta:
    """How long after each run a treatment with its own Schedule sends its share (its start minus the campaign's).

    Raises:
        ValueError: a StartTime does not parse.
    """
    if own is None or own.StartTime == IMMEDIATE:
        return timedelta(0)
    zone = zone_named(campaign.Timezone) or UTC
    ours = schedule_rule(campaign, written_at).start
    return _instant_in(own.StartTime, zone) - ours


def treatment_delays(definition: CampaignDefinition, written_at: datetime) -> list[int]:
    """Seconds after each run at which each treatment (0 = default, always 0) sends; empty when all are 0."""
    if definition.Schedule is None or definition.is_event:
        return []
    delays = [0] + [
        max(0, int(treatment_delay(definition.Schedule, t.Schedule, written_at).total_seconds()))
        for t in definition.AdditionalTreatments
    ]
    return delays if any(delays) else []


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


def in_app_message(definition: CampaignDefinition, treatment_id: int) -> dict[str, Any] | None:
    """A treatment's inline in-app message as GetInAppMessages returns it (``Content``, ``CustomConfig``,
    ``Layout``); None when it has none (see :func:`in_app_template` for a template)."""
    message, _, _ = definition.treatment_content(treatment_id)
    raw = (message.InAppMessage if message is not None else None) or None
    if raw is None:
        return None
    return in_app_fields(raw)


def in_app_fields(source: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Content``, ``CustomConfig`` and ``Layout`` of an inline in-app message or an in-app template."""
    return {k: source[k] for k in ("Content", "CustomConfig", "Layout") if source.get(k) is not None}


def in_app_template(definition: CampaignDefinition, treatment_id: int) -> Template | None:
    """A treatment's ``TemplateConfiguration.InAppTemplate`` (it wins over an inline message), or None."""
    _, templates, _ = definition.treatment_content(treatment_id)
    template = templates.InAppTemplate if templates is not None else None
    return template if template is not None and template.Name else None
