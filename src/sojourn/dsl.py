"""Journeys and campaigns as Python code: small builders that produce the same definitions the API accepts.

Example::

    from sojourn.dsl import Journey, email, wait, split_on, holdout

    journey = Journey("welcome", segment="NEW_SIGNUPS", start="now")
    journey.then(
        email("welcome_email"),
        wait(days=2),
        split_on("opened", of="welcome_email", within=wait(days=3),
                 yes=[email("tips")],
                 no=[email("nudge"), holdout(10)]),
    )

Activity ids are derived from what each step does (``welcomeemail``, ``wait2d``, ...) and kept unique, so the
journey reads the same in GetJourney, in metrics and in the Temporal UI. ``journey.definition()`` returns a
:class:`sojourn.domain.journeys.JourneyDefinition`; ``sojourn deploy`` sends it to the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sojourn.domain.campaigns import CampaignDefinition
from sojourn.domain.durations import format_duration
from sojourn.domain.journeys import JourneyDefinition

EVENT_ALIASES = {"opened": "_email.open", "clicked": "_email.click", "delivered": "_email.delivered"}


@dataclass
class Step:
    """One activity of a journey, before ids are assigned."""

    kind: str
    hint: str
    body: dict[str, Any]
    branches: list[list[Step]] = field(default_factory=list)
    id: str = ""


def email(template: str, *, version: str | None = None, from_address: str | None = None) -> Step:
    """Send the email template ``template``."""
    body: dict[str, Any] = {"TemplateName": template}
    if version is not None:
        body["TemplateVersion"] = version
    if from_address is not None:
        body["MessageConfig"] = {"FromAddress": from_address}
    return Step("EMAIL", template, body)


def sms(
    template: str,
    *,
    version: str | None = None,
    message_type: str | None = None,
    origination_number: str | None = None,
    sender_id: str | None = None,
    entity_id: str | None = None,
    template_id: str | None = None,
) -> Step:
    """Send the SMS template ``template`` to the participant's SMS endpoint.

    Args:
        template: The SMS template's name.
        version: A template version (default: the active version at send time).
        message_type: TRANSACTIONAL (default) or PROMOTIONAL.
        origination_number: The number to send from (wins over ``sender_id``).
        sender_id: The alphanumeric sender id.
        entity_id: India (TRAI) entity id.
        template_id: India (TRAI) template id.
    """
    body: dict[str, Any] = {"TemplateName": template}
    if version is not None:
        body["TemplateVersion"] = version
    config = {
        k: v
        for k, v in (
            ("MessageType", message_type),
            ("OriginationNumber", origination_number),
            ("SenderId", sender_id),
            ("EntityId", entity_id),
            ("TemplateId", template_id),
        )
        if v is not None
    }
    if config:
        body["MessageConfig"] = config
    return Step("SMS", template, body)


def push(template: str, *, version: str | None = None, time_to_live: int | None = None) -> Step:
    """Send the push template ``template`` to the participant's push endpoint (GCM, APNS, ADM, BAIDU).

    Args:
        template: The push template's name.
        version: A template version (default: the active version at send time).
        time_to_live: Seconds the push service keeps an undelivered notification (0: deliver now or never).
    """
    body: dict[str, Any] = {"TemplateName": template}
    if version is not None:
        body["TemplateVersion"] = version
    if time_to_live is not None:
        body["MessageConfig"] = {"TimeToLive": str(time_to_live)}
    return Step("PUSH", template, body)


def custom(
    delivery_uri: str,
    *,
    data: str | None = None,
    endpoint_types: list[str] | None = None,
    name: str | None = None,
    template: str | None = None,
    template_version: str | None = None,
) -> Step:
    """Deliver the participant's endpoints to a webhook or a custom activity (CUSTOM activity).

    Args:
        delivery_uri: An ``https://`` webhook URL, or the name of a custom activity in ``activities/``.
        data: ``MessageConfig.Data``: the message the hook gets.
        endpoint_types: Endpoint channel types delivered to the hook (default CUSTOM); others pass through.
        name: The activity id to use (default: derived from the URI), to name it in a later ``split_on``.
        template: A message template of any type (push, SMS, voice, email) rendered for each endpoint into the
            call's ``Messages``.
        template_version: The template's version (default: its active version).
    """
    body: dict[str, Any] = {"DeliveryUri": delivery_uri}
    if template is not None:
        body["TemplateName"] = template
    if template_version is not None:
        body["TemplateVersion"] = template_version
    if endpoint_types is not None:
        body["EndpointTypes"] = list(endpoint_types)
    if data is not None:
        body["MessageConfig"] = {"Data": data}
    hint = name or re.sub(r"^https?://", "", delivery_uri)
    return Step("CUSTOM", hint, body)


def contact_center() -> Step:
    """Hand the participant to the journey's contact center (set ``Journey(contact_center=...)``).

    Just before the hand-off the entry segment and every earlier Yes/No and Multivariate split are evaluated
    again; participants who no longer qualify leave the journey.
    """
    return Step("ContactCenter", "contactcenter", {})


def wait(
    *,
    days: float = 0,
    hours: float = 0,
    minutes: float = 0,
    seconds: float = 0,
    until: datetime | None = None,
) -> Step:
    """Wait for a duration, or until a moment."""
    if until is not None:
        return Step("Wait", "waituntil", {"WaitTime": {"WaitUntil": until.astimezone(UTC).isoformat()}})
    delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    duration = format_duration(delta)
    return Step(
        "Wait",
        "wait" + duration.removeprefix("P").removeprefix("T").lower(),
        {"WaitTime": {"WaitFor": duration}},
    )


def holdout(percentage: int) -> Step:
    """End the journey for ``percentage`` % of participants (the control group)."""
    return Step("Holdout", f"holdout{percentage}", {"Percentage": percentage})


def _event_condition(event: str, of: str, attributes: dict[str, str] | None = None) -> dict[str, Any]:
    values = [EVENT_ALIASES.get(event, event)]
    dimensions: dict[str, Any] = {"EventType": {"DimensionType": "INCLUSIVE", "Values": values}}
    if attributes:
        dimensions["Attributes"] = {
            name: {"AttributeType": "INCLUSIVE", "Values": [value]} for name, value in attributes.items()
        }
    return {"EventCondition": {"MessageActivity": of, "Dimensions": dimensions}}


def multi_split(
    *branches: tuple[str, str, list[Step]], otherwise: list[Step] | None = None, within: Step | None = None
) -> Step:
    """Multivariate split: up to 4 (event, email, steps) branches; the first that matches wins, else ``otherwise``.

    Example: ``multi_split(("clicked", "welcome", [email("buyer")]), ("opened", "welcome", [email("reader")]),
    otherwise=[email("nudge")], within=wait(days=3))``.
    """
    body: dict[str, Any] = {
        "Branches": [{"Condition": _event_condition(event, of)} for event, of, _ in branches]
    }
    if within is not None:
        body["EvaluationWaitTime"] = within.body["WaitTime"]
    return Step(
        "MultiCondition", "multisplit", body, branches=[steps for _, _, steps in branches] + [otherwise or []]
    )


def split_on(
    event: str,
    *,
    of: str,
    within: Step | None = None,
    yes: list[Step] | None = None,
    no: list[Step] | None = None,
    attributes: dict[str, str] | None = None,
) -> Step:
    """Yes/No split: did the participant have ``event`` ("opened", "clicked" or an event type) for the message ``of``?

    Args:
        event: "opened", "clicked", "delivered" or a full event type such as ``_email.open``.
        of: The template name of an earlier ``email(...)``, ``sms(...)`` or ``push(...)`` step (or its activity id);
            for SMS and push give the event type, e.g. ``_SMS.SUCCESS`` or ``_push.FAILURE``.
        within: A ``wait(...)``: how long to wait before evaluating.
        yes: Steps for participants who did.
        no: Steps for participants who did not.
        attributes: Event attributes that must match too, e.g. ``{"answer": "yes"}`` on the
            ``_custom.response`` of a ``custom(...)`` step.
    """
    body: dict[str, Any] = {
        "Condition": {"Conditions": [_event_condition(event, of, attributes)], "Operator": "ALL"}
    }
    if within is not None:
        body["EvaluationWaitTime"] = within.body["WaitTime"]
    return Step("ConditionalSplit", f"{event}split", body, branches=[yes or [], no or []])


def wait_for_event(
    *events: str, timeout: Step, then: list[Step] | None = None, otherwise: list[Step] | None = None
) -> Step:
    """Wait for the participant's own event (sojourn's wait-for-event step): go on as soon as it arrives.

    Each participant moves down ``then`` the moment one of ``events`` (e.g. ``"purchase"``) is recorded for
    them after they reached this step, and down ``otherwise`` when ``timeout`` passes without one. In the API
    it is a ConditionalSplit whose EventCondition has no MessageActivity.

    Example: ``wait_for_event("purchase", timeout=wait(days=3), then=[email("thanks")], otherwise=[email("nudge")])``.
    """
    if not events:
        raise ValueError("wait_for_event needs at least one event type, e.g. wait_for_event('purchase', ...)")
    condition = {
        "EventCondition": {
            "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": list(events)}}
        }
    }
    body: dict[str, Any] = {
        "Condition": {"Conditions": [condition], "Operator": "ALL"},
        "EvaluationWaitTime": timeout.body["WaitTime"],
    }
    return Step("ConditionalSplit", "await", body, branches=[then or [], otherwise or []])


def random_split(*branches: tuple[int, list[Step]]) -> Step:
    """Send participants down 2-5 paths by whole percentages summing to 100."""
    return Step(
        "RandomSplit",
        "randomsplit",
        {"Branches": [{"Percentage": pct} for pct, _ in branches]},
        branches=[steps for _, steps in branches],
    )


class Journey:
    """A journey being built: entry, schedule, and a sequence of steps.

    Args:
        name: Journey name (no spaces).
        segment: Entry segment id (segment-triggered journey).
        event: Entry event type (event-triggered journey, "API-triggered journey start").
        start: "now", a datetime, or None for Pinpoint's 5-minute entry delay.
        end: Optional end time.
        active: Publish as ACTIVE (default) or keep as DRAFT.
        timezone: The journey's zone (``Schedule.Timezone``): ``UTC``, ``UTC+05:30`` or an IANA name; open hours
            and closed days are read in it for participants without a zone of their own.
        quiet_time: ``("22:00", "07:00")``: no message in that local window of each participant.
        wait_for_quiet_time: Hold messages until quiet time ends (default) instead of dropping them.
        open_hours: Per channel and weekday, the local windows in which messages go out, e.g.
            ``{"EMAIL": {"MONDAY": [("09:00", "17:00")]}}`` (turns on ``SendingSchedule``).
        closed_days: Per channel, ``(name, start, end)`` local blackouts, e.g.
            ``{"EMAIL": [("xmas", "2026-12-25T00:00:00", "2026-12-26T00:00:00")]}``.
        estimate_timezone_from: ``("PHONE_NUMBER", "POSTAL_CODE")`` for participants without a time zone.
        daily_cap: Messages this journey sends one participant in 24 hours.
        total_cap: Messages this journey sends one participant in all.
        timeframe_cap: ``(cap, days)``: messages all journeys send one participant within ``days``.
        reentry_cap: How many times a participant may enter (0: unlimited).
        reentry_interval: ISO-8601 duration a participant waits before entering again, e.g. ``"P7D"``.
    """

    def __init__(
        self,
        name: str,
        *,
        segment: str | None = None,
        event: str | None = None,
        start: str | datetime | None = "now",
        end: datetime | None = None,
        active: bool = True,
        timezone: str | None = None,
        quiet_time: tuple[str, str] | None = None,
        wait_for_quiet_time: bool = True,
        open_hours: dict[str, dict[str, list[tuple[str, str]]]] | None = None,
        closed_days: dict[str, list[tuple[str, str, str]]] | None = None,
        estimate_timezone_from: tuple[str, ...] = (),
        daily_cap: int | None = None,
        total_cap: int | None = None,
        timeframe_cap: tuple[int, int] | None = None,
        reentry_cap: int | None = None,
        reentry_interval: str | None = None,
        contact_center: str | None = None,
    ) -> None:
        if (segment is None) == (event is None):
            raise ValueError("a journey enters either by segment=... or by event=...")
        self.name = name
        self.segment = segment
        self.event = event
        self.start = start
        self.end = end
        self.active = active
        self.timezone = timezone
        self.quiet_time = quiet_time
        self.wait_for_quiet_time = wait_for_quiet_time
        self.open_hours = open_hours
        self.closed_days = closed_days
        self.estimate_timezone_from = estimate_timezone_from
        # Where contact_center() steps hand participants off: an https:// webhook or a custom activity name.
        self.contact_center = contact_center
        self.limits = {
            "DailyCap": daily_cap,
            "TotalCap": total_cap,
            "TimeframeCap": {"Cap": timeframe_cap[0], "Days": timeframe_cap[1]} if timeframe_cap else None,
            "EndpointReentryCap": reentry_cap,
            "EndpointReentryInterval": reentry_interval,
        }
        self.steps: list[Step] = []

    def then(self, *steps: Step) -> Journey:
        """Append steps to the journey's main path."""
        self.steps.extend(steps)
        return self

    def definition(self, *, now: datetime | None = None) -> JourneyDefinition:
        """The journey as the API's definition model."""
        ids: dict[str, str] = {}
        activities: dict[str, dict[str, Any]] = {}
        start = _link(self.steps, activities, ids)
        body: dict[str, Any] = {"Name": self.name, "Activities": activities, "StartActivity": start}
        if self.segment is not None:
            body["StartCondition"] = {"SegmentStartCondition": {"SegmentId": self.segment}}
        else:
            body["StartCondition"] = {
                "EventStartCondition": {
                    "EventFilter": {
                        "FilterType": "ENDPOINT",
                        "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [self.event]}},
                    }
                }
            }
        schedule: dict[str, Any] = {}
        if self.start == "now":
            schedule["StartTime"] = (now or datetime.now(UTC)).isoformat()
        elif isinstance(self.start, datetime):
            schedule["StartTime"] = self.start.astimezone(UTC).isoformat()
        if self.end is not None:
            schedule["EndTime"] = self.end.astimezone(UTC).isoformat()
        if self.timezone is not None:
            schedule["Timezone"] = self.timezone
        if schedule:
            body["Schedule"] = schedule
        body.update(self._delivery_settings())
        body["State"] = "ACTIVE" if self.active else "DRAFT"
        # Event conditions name the email by template; the API wants the activity id.
        for act in activities.values():
            conditions = (act.get("ConditionalSplit") or {}).get("Condition", {}).get("Conditions", [])
            conditions += [b["Condition"] for b in (act.get("MultiCondition") or {}).get("Branches", [])]
            for cond in conditions:
                ev = cond.get("EventCondition")
                if ev and ev.get("MessageActivity") in ids:
                    ev["MessageActivity"] = ids[ev["MessageActivity"]]
        return JourneyDefinition.model_validate(body)

    def _delivery_settings(self) -> dict[str, Any]:
        """QuietTime, SendingSchedule, OpenHours, ClosedDays, estimation methods and Limits, as the API spells them."""
        body: dict[str, Any] = {}
        if self.quiet_time is not None:
            body["QuietTime"] = {"Start": self.quiet_time[0], "End": self.quiet_time[1]}
        if self.quiet_time is not None or self.open_hours or self.closed_days:
            body["WaitForQuietTime"] = self.wait_for_quiet_time
        if self.open_hours or self.closed_days:
            body["SendingSchedule"] = True
        if self.open_hours:
            body["OpenHours"] = {
                channel: {
                    day: [{"StartTime": a, "EndTime": b} for a, b in ranges] for day, ranges in days.items()
                }
                for channel, days in self.open_hours.items()
            }
        if self.closed_days:
            body["ClosedDays"] = {
                channel: [{"Name": n, "StartDateTime": a, "EndDateTime": b} for n, a, b in rules]
                for channel, rules in self.closed_days.items()
            }
        if self.estimate_timezone_from:
            body["TimezoneEstimationMethods"] = list(self.estimate_timezone_from)
        if self.contact_center:
            body["JourneyChannelSettings"] = {"ConnectCampaignArn": self.contact_center}
        limits = {k: v for k, v in self.limits.items() if v is not None}
        if limits:
            body["Limits"] = limits
        return body

    def request(self, *, now: datetime | None = None) -> dict[str, Any]:
        """The WriteJourneyRequest body for the API (JSON-ready)."""
        return self.definition(now=now).model_dump(mode="json", exclude_none=True)


def _unique_id(hint: str, activities: dict[str, dict[str, Any]]) -> str:
    base = re.sub(r"[^A-Za-z0-9]", "", hint)[:90] or "step"
    candidate, n = base, 2
    while candidate in activities:
        candidate, n = f"{base}{n}", n + 1
    return candidate


def _link(steps: list[Step], activities: dict[str, dict[str, Any]], ids: dict[str, str]) -> str | None:
    """Assign ids, wire NextActivity links, return the first step's id."""
    first: str | None = None
    previous: dict[str, Any] | None = None
    for index, step in enumerate(steps):
        if step.branches and index != len(steps) - 1:
            raise ValueError(
                f"{step.kind} must be the last step of its path: put what follows inside its branches"
            )
        step.id = _unique_id(step.hint, activities)
        if step.kind in ("EMAIL", "SMS", "PUSH", "CUSTOM"):
            ids.setdefault(step.hint, step.id)
        body = dict(step.body)
        activities[step.id] = {step.kind: body}
        if previous is not None:
            previous["NextActivity"] = step.id
        first = first or step.id
        if step.kind == "ConditionalSplit":
            body["TrueActivity"] = _link(step.branches[0], activities, ids)
            body["FalseActivity"] = _link(step.branches[1], activities, ids)
            body = {k: v for k, v in body.items() if v is not None}
            activities[step.id] = {step.kind: body}
            previous = None
            break
        if step.kind == "MultiCondition":
            for entry, branch in zip(body["Branches"], step.branches[:-1], strict=True):
                target = _link(branch, activities, ids)
                if target is not None:
                    entry["NextActivity"] = target
            default = _link(step.branches[-1], activities, ids)
            if default is not None:
                body["DefaultActivity"] = default
            previous = None
            break
        if step.kind == "RandomSplit":
            for entry, branch in zip(body["Branches"], step.branches, strict=True):
                target = _link(branch, activities, ids)
                if target is not None:
                    entry["NextActivity"] = target
            previous = None
            break
        previous = body
    return first


# ---------------------------------------------------------------------------------------------------------
# Campaigns


def _message_parts(
    template: str | None,
    version: str | None,
    subject: str | None,
    html: str | None,
    text: str | None,
    channels: dict[str, Any],
) -> dict[str, Any]:
    """A treatment's TemplateConfiguration and MessageConfiguration, as the API spells them.

    Args:
        template, version, subject, html, text: The email (a template, or an inline message); none of them: no
            email.
        channels: The other channels' keyword arguments of :class:`Campaign`: ``sms_template``,
            ``push_template``, ``voice_template``, ``in_app_template`` (template names), ``sms`` (an inline SMS
            body) and
            ``custom`` (``(delivery_uri, data)``: a webhook or custom activity and the message it gets).
    """
    templates: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    out: dict[str, Any] = {}
    if template is not None:
        ref: dict[str, Any] = {"Name": template}
        if version is not None:
            ref["Version"] = version
        templates["EmailTemplate"] = ref
    elif any(v is not None for v in (subject, html, text)):
        email = {"Title": subject, "HtmlBody": html, "Body": text}
        messages["EmailMessage"] = {k: v for k, v in email.items() if v is not None}
    for key, api_name in (
        ("sms_template", "SMSTemplate"),
        ("push_template", "PushTemplate"),
        ("voice_template", "VoiceTemplate"),
        ("in_app_template", "InAppTemplate"),
    ):
        if channels.get(key) is not None:
            templates[api_name] = {"Name": channels[key]}
    if channels.get("sms") is not None:
        messages["SMSMessage"] = {"Body": channels["sms"]}
    if channels.get("custom") is not None:
        uri, data = channels["custom"]
        messages["CustomMessage"] = {"Data": data}
        out["CustomDeliveryConfiguration"] = {"DeliveryUri": uri}
    if templates:
        out["TemplateConfiguration"] = templates
    if messages:
        out["MessageConfiguration"] = messages
    return out


class Campaign:
    """A campaign being built: segment, messages per channel, schedule, A/B treatments, holdout and limits.

    Example::

        spring = Campaign("spring-sale", segment="NEWSLETTER", template="spring", frequency="WEEKLY",
                          start=datetime(2027, 3, 1, 9), end=datetime(2027, 5, 31), timezone="Europe/Paris",
                          local_time=True, quiet_time=("21:00", "08:00"), holdout=10, daily_cap=1)
        spring.treatment(30, template="spring_b", name="B")
        reminder = Campaign("reminder", segment="MEMBERS", sms_template="reminder_sms", push_template="nudge")
        banner = Campaign("level-up", segment="PLAYERS", in_app_template="level_up_banner", event="level.up")

    Args:
        name: Campaign name (``sojourn deploy`` matches campaigns by it).
        segment: Segment id.
        template: Email template of the default treatment (or give ``subject`` plus ``html``/``text``).
        sms_template, push_template, voice_template: Templates for the segment's SMS, push (GCM, APNS, ...) and
            voice endpoints: each member gets the message of its own channel.
        sms: An inline SMS body (instead of ``sms_template``).
        in_app_template: An in-app template: the campaign becomes an in-app campaign (Frequency IN_APP_EVENT, shown
            by the app's SDK on ``event``; apps fetch it with GetInAppMessages) and sends nothing itself.
        custom: ``(delivery_uri, data)``: deliver the segment's CUSTOM endpoints to an https webhook or a custom
            activity, 50 per call, with ``data`` as the message.
        start: ``"now"`` (IMMEDIATE for a one-off campaign), a datetime, or an ISO-8601 string. A naive
            datetime is read on ``timezone``'s clock.
        end: Optional end (for recurring and event campaigns).
        frequency: ONCE, HOURLY, DAILY, WEEKLY, MONTHLY or EVENT.
        event: Event type that triggers an EVENT campaign (sets ``frequency="EVENT"``).
        timezone: The schedule's zone (IANA name or ``UTC±hh:mm``).
        local_time: Deliver at the scheduled wall time in each endpoint's own zone.
        quiet_time: ``("22:00", "07:00")``: messages whose local send time falls inside are dropped.
        holdout: Percent of the segment that gets nothing (control group).
        daily_cap, total_cap, messages_per_second, maximum_duration: ``Limits``.
        hook: FILTER hook: an https URL or a custom activity function's name.
        paused: Create the campaign paused.
    """

    def __init__(
        self,
        name: str,
        *,
        segment: str,
        template: str | None = None,
        template_version: str | None = None,
        subject: str | None = None,
        html: str | None = None,
        text: str | None = None,
        sms_template: str | None = None,
        push_template: str | None = None,
        voice_template: str | None = None,
        in_app_template: str | None = None,
        sms: str | None = None,
        custom: tuple[str, str] | None = None,
        from_address: str | None = None,
        start: str | datetime = "now",
        end: str | datetime | None = None,
        frequency: str = "ONCE",
        event: str | None = None,
        timezone: str | None = None,
        local_time: bool = False,
        quiet_time: tuple[str, str] | None = None,
        holdout: int = 0,
        treatment_name: str | None = None,
        description: str | None = None,
        daily_cap: int | None = None,
        total_cap: int | None = None,
        messages_per_second: int | None = None,
        maximum_duration: int | None = None,
        hook: str | None = None,
        paused: bool = False,
    ) -> None:
        self.name = name
        self.segment = segment
        self.message = _message_parts(
            template,
            template_version,
            subject,
            html,
            text,
            {
                "sms_template": sms_template,
                "push_template": push_template,
                "voice_template": voice_template,
                "in_app_template": in_app_template,
                "sms": sms,
                "custom": custom,
            },
        )
        if from_address is not None:
            email_message = self.message.setdefault("MessageConfiguration", {}).setdefault("EmailMessage", {})
            email_message["FromAddress"] = from_address
        self.start = start
        self.end = end
        if in_app_template is not None and event is None:
            raise ValueError("an in-app campaign needs the event that shows it: give event=")
        self.frequency = (
            "IN_APP_EVENT" if in_app_template is not None else "EVENT" if event is not None else frequency
        )
        self.event = event
        self.timezone = timezone
        self.local_time = local_time
        self.quiet_time = quiet_time
        self.holdout = holdout
        self.treatment_name = treatment_name
        self.description = description
        self.limits = {
            "Daily": daily_cap,
            "Total": total_cap,
            "MessagesPerSecond": messages_per_second,
            "MaximumDuration": maximum_duration,
        }
        self.hook = hook
        self.paused = paused
        self.treatments: list[dict[str, Any]] = []

    def treatment(
        self,
        share: int,
        *,
        template: str | None = None,
        template_version: str | None = None,
        subject: str | None = None,
        html: str | None = None,
        text: str | None = None,
        name: str | None = None,
        description: str | None = None,
        **channels: Any,
    ) -> Campaign:
        """Add an A/B treatment that gets ``share`` percent of the segment (up to 4 besides the default).

        ``channels`` takes the same other-channel arguments as :class:`Campaign` (``sms_template``, ``sms``,
        ``push_template``, ``voice_template``, ``custom``).
        """
        unknown = set(channels) - {
            "sms_template",
            "push_template",
            "voice_template",
            "in_app_template",
            "sms",
            "custom",
        }
        if unknown:
            raise TypeError(f"treatment() got unexpected arguments {sorted(unknown)}")
        body: dict[str, Any] = {
            "SizePercent": share,
            **_message_parts(template, template_version, subject, html, text, channels),
        }
        if name is not None:
            body["TreatmentName"] = name
        if description is not None:
            body["TreatmentDescription"] = description
        self.treatments.append(body)
        return self

    def _instant(self, value: str | datetime, now: datetime) -> str:
        if value == "now":
            return "IMMEDIATE" if self.frequency == "ONCE" else now.astimezone(UTC).isoformat()
        if isinstance(value, datetime):
            return value.isoformat() if value.tzinfo is None else value.astimezone(UTC).isoformat()
        return value

    def definition(self, *, now: datetime | None = None) -> CampaignDefinition:
        """The campaign as the API's definition model (``WriteCampaignRequest``)."""
        moment = now or datetime.now(UTC)
        schedule: dict[str, Any] = {
            "StartTime": self._instant(self.start, moment),
            "Frequency": self.frequency,
        }
        if self.end is not None:
            schedule["EndTime"] = self._instant(self.end, moment)
        if self.timezone is not None:
            schedule["Timezone"] = self.timezone
        if self.local_time:
            schedule["IsLocalTime"] = True
        if self.quiet_time is not None:
            schedule["QuietTime"] = {"Start": self.quiet_time[0], "End": self.quiet_time[1]}
        if self.event is not None:
            schedule["EventFilter"] = {
                "FilterType": "ENDPOINT",
                "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [self.event]}},
            }
        body: dict[str, Any] = {
            "Name": self.name,
            "SegmentId": self.segment,
            "Schedule": schedule,
            **self.message,
        }
        limits = {k: v for k, v in self.limits.items() if v is not None}
        if limits:
            body["Limits"] = limits
        if self.holdout:
            body["HoldoutPercent"] = self.holdout
        if self.treatments:
            body["AdditionalTreatments"] = self.treatments
        if self.treatment_name is not None:
            body["TreatmentName"] = self.treatment_name
        if self.description is not None:
            body["Description"] = self.description
        if self.hook is not None:
            body["Hook"] = {"Mode": "FILTER", "LambdaFunctionName": self.hook}
        if self.paused:
            body["IsPaused"] = True
        return CampaignDefinition.model_validate(body)

    def request(self, *, now: datetime | None = None) -> dict[str, Any]:
        """The WriteCampaignRequest to send (JSON-ready)."""
        return self.definition(now=now).wire()
