"""The journey definition: Pinpoint's ``WriteJourneyRequest`` as pydantic models, plus the graph rules.

Field names are the API's own (PascalCase), so a request body validates into these models unchanged and
``model_dump(exclude_none=True)`` gives back the wire form. The DSL in ``sojourn.dsl`` builds the same models.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sojourn.domain.custom_activity import custom_problems, delivery_target
from sojourn.domain.durations import parse_duration
from sojourn.domain.sending_window import local_to_utc, rules_for_journey, zone_named

MAX_JOURNEY_DAYS = 540
ENTRY_DELAY = timedelta(minutes=5)
MAX_ACTIVITIES = 40
_ACTIVITY_ID = re.compile(r"^[A-Za-z0-9]{1,100}$")
_JOURNEY_NAME = re.compile(r"^[^\s]{1,150}$")


class JourneyState(StrEnum):
    """Pinpoint journey states."""

    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    CLOSED = "CLOSED"


class WireModel(BaseModel):
    """Base of the wire-shaped models: unknown fields are refused (the API layer already checked types)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WaitTimeSpec(WireModel):
    """Either a duration (``WaitFor``, ISO-8601 e.g. ``PT10S``) or an instant (``WaitUntil``)."""

    WaitFor: str | None = None
    WaitUntil: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> WaitTimeSpec:
        if (self.WaitFor is None) == (self.WaitUntil is None):
            raise ValueError(
                "WaitTime needs exactly one of WaitFor (an ISO-8601 duration) or WaitUntil (an ISO-8601 time)"
            )
        if self.WaitFor is not None:
            parse_duration(self.WaitFor)
        if self.WaitUntil is not None:
            parse_instant(self.WaitUntil)
        return self

    def delay(self, now: datetime) -> timedelta:
        """How long to wait from ``now`` (zero when a WaitUntil time has already passed)."""
        if self.WaitFor is not None:
            return parse_duration(self.WaitFor)
        assert self.WaitUntil is not None
        return max(timedelta(0), parse_instant(self.WaitUntil) - now)


class SetDimension(WireModel):
    """A value set, included or excluded."""

    DimensionType: Literal["INCLUSIVE", "EXCLUSIVE"] = "INCLUSIVE"
    Values: list[str]


class EventDimensions(WireModel):
    """Which events match: the event type plus attribute and metric filters."""

    EventType: SetDimension | None = None
    Attributes: dict[str, Any] | None = None
    Metrics: dict[str, Any] | None = None


class EventConditionSpec(WireModel):
    """An engagement event tied to an earlier message activity of the journey.

    sojourn extension (wait for event): without ``MessageActivity``, the condition is an event of the
    participant's own (``Dimensions.EventType``, e.g. ``purchase``) recorded after they reached the split, and
    a ConditionalSplit holding such a condition moves each participant down ``TrueActivity`` as soon as it
    holds for them, instead of at the end of ``EvaluationWaitTime`` (the rest go on when it ends).
    """

    Dimensions: EventDimensions | None = None
    MessageActivity: str | None = None

    @property
    def own_event(self) -> bool:
        """Whether this is the participant's own event (the wait-for-event extension), not a message's."""
        return not self.MessageActivity

    def own_event_types(self) -> list[str]:
        """The event types that meet an own-event condition."""
        dims = self.Dimensions
        return list(dims.EventType.Values) if dims is not None and dims.EventType is not None else []


class SegmentConditionSpec(WireModel):
    """Membership of a segment."""

    SegmentId: str


class SimpleCondition(WireModel):
    """Exactly one of an event condition, a segment condition or inline segment dimensions."""

    EventCondition: EventConditionSpec | None = None
    SegmentCondition: SegmentConditionSpec | None = None
    SegmentDimensions: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SimpleCondition:
        given = [
            n
            for n in ("EventCondition", "SegmentCondition", "SegmentDimensions")
            if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"a condition needs exactly one of EventCondition, SegmentCondition, SegmentDimensions (got {given or 'none'})"
            )
        return self


class ConditionSpec(WireModel):
    """Conditions combined with ALL or ANY."""

    Conditions: list[SimpleCondition] = Field(default_factory=list)
    Operator: Literal["ALL", "ANY"] = "ALL"


class JourneyEmailMessage(WireModel):
    """Per-activity email settings."""

    FromAddress: str | None = None


class EmailMessageActivity(WireModel):
    """Send an email from a template, then go on."""

    MessageConfig: JourneyEmailMessage | None = None
    NextActivity: str | None = None
    TemplateName: str | None = None
    TemplateVersion: str | None = None


class WaitActivity(WireModel):
    """Wait for a duration or until a time, then go on."""

    NextActivity: str | None = None
    WaitTime: WaitTimeSpec | None = None


class ConditionalSplitActivity(WireModel):
    """Yes/No split, evaluated after ``EvaluationWaitTime``."""

    Condition: ConditionSpec | None = None
    EvaluationWaitTime: WaitTimeSpec | None = None
    FalseActivity: str | None = None
    TrueActivity: str | None = None


class HoldoutActivity(WireModel):
    """End the journey for ``Percentage`` % of participants (the control group)."""

    NextActivity: str | None = None
    Percentage: int = Field(ge=0, le=100)


class RandomSplitEntry(WireModel):
    """One path of a random split."""

    NextActivity: str | None = None
    Percentage: int | None = Field(default=None, ge=0, le=100)


class RandomSplitActivity(WireModel):
    """Send participants down 2-5 paths at random, in whole percentages summing to 100."""

    Branches: list[RandomSplitEntry] = Field(default_factory=list)


class MultiConditionalBranch(WireModel):
    """One path of a multivariate split: a single condition and where it leads."""

    Condition: SimpleCondition | None = None
    NextActivity: str | None = None


class MultiConditionalSplitActivity(WireModel):
    """Up to 4 condition branches plus the default path; the first branch that matches wins."""

    Branches: list[MultiConditionalBranch] = Field(default_factory=list)
    DefaultActivity: str | None = None
    EvaluationWaitTime: WaitTimeSpec | None = None

    def conditions(self) -> list[ConditionSpec]:
        """Each branch's condition, as a one-condition Condition."""
        return [
            ConditionSpec(Conditions=[b.Condition] if b.Condition else [], Operator="ALL")
            for b in self.Branches
        ]


class Activity(WireModel):
    """One node of the journey graph: exactly one activity type member, plus an optional description."""

    Description: str | None = None
    EMAIL: EmailMessageActivity | None = None
    Wait: WaitActivity | None = None
    ConditionalSplit: ConditionalSplitActivity | None = None
    Holdout: HoldoutActivity | None = None
    RandomSplit: RandomSplitActivity | None = None
    # Accepted by the wire model, refused by validation until the engine runs them.
    SMS: dict[str, Any] | None = None
    PUSH: dict[str, Any] | None = None
    CUSTOM: dict[str, Any] | None = None
    ContactCenter: dict[str, Any] | None = None
    MultiCondition: MultiConditionalSplitActivity | None = None

    @property
    def kind(self) -> str:
        """The activity type member that is set (``EMAIL``, ``Wait``, ...)."""
        kinds = self.kinds()
        return kinds[0] if kinds else ""

    def kinds(self) -> list[str]:
        """Every activity type member that is set (exactly one in a valid activity)."""
        names = (
            "EMAIL",
            "Wait",
            "ConditionalSplit",
            "Holdout",
            "RandomSplit",
            "SMS",
            "PUSH",
            "CUSTOM",
            "ContactCenter",
            "MultiCondition",
        )
        return [n for n in names if getattr(self, n) is not None]

    def next_ids(self) -> list[str | None]:
        """The activities this one can lead to, in branch order (``None`` = the journey ends there)."""
        if self.EMAIL is not None:
            return [self.EMAIL.NextActivity]
        if self.Wait is not None:
            return [self.Wait.NextActivity]
        if self.Holdout is not None:
            return [self.Holdout.NextActivity]
        if self.ConditionalSplit is not None:
            return [self.ConditionalSplit.TrueActivity, self.ConditionalSplit.FalseActivity]
        if self.RandomSplit is not None:
            return [b.NextActivity for b in self.RandomSplit.Branches]
        raw = self.SMS or self.PUSH or self.CUSTOM or self.ContactCenter
        if raw is not None:
            return [raw.get("NextActivity")]
        if self.MultiCondition is not None:
            return [b.NextActivity for b in self.MultiCondition.Branches] + [
                self.MultiCondition.DefaultActivity
            ]
        return []

    @property
    def waits_for_events(self) -> bool:
        """A ConditionalSplit that lets participants go on as soon as their own event arrives (extension)."""
        split = self.ConditionalSplit
        if split is None or split.Condition is None:
            return False
        return any(
            c.EventCondition is not None and c.EventCondition.own_event for c in split.Condition.Conditions
        )

    def awaited_event_types(self) -> set[str]:
        """The event types whose arrival may release participants waiting here (empty if none)."""
        split = self.ConditionalSplit
        if not self.waits_for_events or split is None or split.Condition is None:
            return set()
        return {
            t
            for c in split.Condition.Conditions
            if c.EventCondition is not None and c.EventCondition.own_event
            for t in c.EventCondition.own_event_types()
        }

    @property
    def evaluation_wait(self) -> WaitTimeSpec | None:
        """How long a split waits before it evaluates (None: at once, or not a split)."""
        if self.ConditionalSplit is not None:
            return self.ConditionalSplit.EvaluationWaitTime
        if self.MultiCondition is not None:
            return self.MultiCondition.EvaluationWaitTime
        return None

    @property
    def metric_type(self) -> str:
        """Pinpoint's ``ActivityType`` for execution metrics."""
        return {
            "EMAIL": "MESSAGE",
            "SMS": "MESSAGE",
            "PUSH": "MESSAGE",
            "CUSTOM": "MESSAGE",
            "Wait": "WAIT",
            "ConditionalSplit": "CONDITIONAL_SPLIT",
            "MultiCondition": "MULTI_CONDITIONAL_SPLIT",
            "RandomSplit": "RANDOM_SPLIT",
            "Holdout": "HOLDOUT",
            "ContactCenter": "CONTACT_CENTER",
        }.get(self.kind, "")


class EventFilterSpec(WireModel):
    """Which event starts the journey."""

    FilterType: Literal["SYSTEM", "ENDPOINT"] = "ENDPOINT"
    Dimensions: EventDimensions


class EventStartConditionSpec(WireModel):
    """Entry by event (PutEvents), optionally restricted to a segment's members."""

    EventFilter: EventFilterSpec | None = None
    SegmentId: str | None = None


class StartConditionSpec(WireModel):
    """Entry by segment or by event."""

    Description: str | None = None
    EventStartCondition: EventStartConditionSpec | None = None
    SegmentStartCondition: SegmentConditionSpec | None = None


class JourneySchedule(WireModel):
    """When the journey runs."""

    StartTime: datetime | None = None
    EndTime: datetime | None = None
    Timezone: str | None = None


class JourneyTimeframeCap(WireModel):
    """Messages per endpoint across all journeys within ``Days``."""

    Cap: int | None = Field(default=None, ge=0, le=100)
    Days: int | None = Field(default=None, ge=0, le=30)

    @model_validator(mode="after")
    def _days_with_cap(self) -> JourneyTimeframeCap:
        if self.Cap and not self.Days:
            raise ValueError("TimeframeCap.Cap needs Days (1-30): the number of days the cap counts back")
        return self


class JourneyLimits(WireModel):
    """Per-journey caps."""

    DailyCap: int | None = Field(default=None, ge=0, le=100)
    EndpointReentryCap: int | None = Field(default=None, ge=0, le=100)
    MessagesPerSecond: int | None = Field(default=None, ge=1)
    EndpointReentryInterval: str | None = None
    TimeframeCap: JourneyTimeframeCap | None = None
    TotalCap: int | None = Field(default=None, ge=0, le=100)


class QuietTimeSpec(WireModel):
    """Local-time window in which no message is sent."""

    Start: str | None = None
    End: str | None = None


class JourneyDefinition(WireModel):
    """A journey as the API writes it (``WriteJourneyRequest``)."""

    Name: str
    Activities: dict[str, Activity] = Field(default_factory=dict)
    StartActivity: str | None = None
    StartCondition: StartConditionSpec | None = None
    Schedule: JourneySchedule | None = None
    Limits: JourneyLimits | None = None
    LocalTime: bool | None = None
    QuietTime: QuietTimeSpec | None = None
    WaitForQuietTime: bool | None = None
    RefreshFrequency: str | None = None
    RefreshOnSegmentUpdate: bool | None = None
    SendingSchedule: bool | None = None
    State: JourneyState | None = None
    CreationDate: str | None = None
    LastModifiedDate: str | None = None
    JourneyChannelSettings: dict[str, Any] | None = None
    OpenHours: dict[str, Any] | None = None
    ClosedDays: dict[str, Any] | None = None
    TimezoneEstimationMethods: list[str] | None = None

    def wire(self) -> dict[str, Any]:
        """The definition as the API returns it (JSON-ready, without unset fields)."""
        return self.model_dump(
            mode="json",
            exclude_none=True,
            exclude_unset=True,
            exclude={"State", "CreationDate", "LastModifiedDate"},
        )

    @property
    def entry_segment_id(self) -> str | None:
        """The entry segment, for segment-triggered journeys."""
        cond = self.StartCondition
        return cond.SegmentStartCondition.SegmentId if cond and cond.SegmentStartCondition else None

    @property
    def entry_event_filter(self) -> EventFilterSpec | None:
        """The entry event filter, for event-triggered journeys."""
        cond = self.StartCondition
        return cond.EventStartCondition.EventFilter if cond and cond.EventStartCondition else None


def parse_instant(value: str) -> datetime:
    """Parse an ISO-8601 instant; a value without an offset is UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"{value!r} is not an ISO-8601 date and time, e.g. 2026-11-23T10:00:00Z") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


class JourneyProblem(ValueError):
    """A journey definition that cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


SUPPORTED_KINDS = (
    "EMAIL",
    "SMS",
    "PUSH",
    "CUSTOM",
    "ContactCenter",
    "Wait",
    "ConditionalSplit",
    "MultiCondition",
    "Holdout",
    "RandomSplit",
)
#: Activities that send a message, whose events a later split can test (EventCondition.MessageActivity).
MESSAGE_KINDS = ("EMAIL", "SMS", "PUSH", "CUSTOM")
#: Event attribute filters a split on a message activity's events applies.
EVENT_ATTRIBUTE_TYPES = ("INCLUSIVE", "EXCLUSIVE")
SMS_MESSAGE_TYPES = ("TRANSACTIONAL", "PROMOTIONAL")
MAX_CONTACT_CENTER = 3
MAX_MULTI_BRANCHES = 4


def graph_problems(definition: JourneyDefinition) -> list[str]:
    """Every reason the journey graph cannot run, as messages a caller can act on (empty when it can).

    Checks: activity ids, one type per activity, supported types, references to unknown activities,
    the start activity, unreachable activities, cycles without a wait, split branch shares, and that
    event conditions point at an earlier email activity.
    """
    acts = definition.Activities
    problems: list[str] = []
    if len(acts) > MAX_ACTIVITIES:
        problems.append(f"a journey has at most {MAX_ACTIVITIES} activities, this one has {len(acts)}")
    for aid, act in acts.items():
        problems += _activity_problems(aid, act, acts)
    if acts:
        if definition.StartActivity is None:
            problems.append("StartActivity is required when the journey has activities")
        elif definition.StartActivity not in acts:
            problems.append(
                f"StartActivity '{definition.StartActivity}' is not one of the journey's activities"
            )
    if problems:
        return problems
    if acts and definition.StartActivity is not None:
        reachable = set(_walk(definition.StartActivity, acts))
        for aid in acts:
            if aid not in reachable:
                problems.append(
                    f"activity '{aid}' cannot be reached from StartActivity '{definition.StartActivity}'"
                )
        problems += _cycle_problems(definition.StartActivity, acts)
        problems += _event_condition_problems(acts)
    return problems + contact_center_problems(definition)


def contact_center_problems(definition: JourneyDefinition) -> list[str]:
    """ContactCenter rules: at most 3 per journey, not in event-triggered journeys, a hand-off target in
    ``JourneyChannelSettings.ConnectCampaignArn`` (an https:// webhook or a custom activity name)."""
    count = sum(1 for act in definition.Activities.values() if act.ContactCenter is not None)
    settings = definition.JourneyChannelSettings or {}
    problems: list[str] = []
    if count > MAX_CONTACT_CENTER:
        problems.append(
            f"a journey has at most {MAX_CONTACT_CENTER} ContactCenter activities, this one has {count}"
        )
    cond = definition.StartCondition
    if count and cond is not None and cond.EventStartCondition is not None:
        problems.append("ContactCenter activities are not allowed in event-triggered journeys")
    target = settings.get("ConnectCampaignArn")
    if count and not target:
        problems.append(
            "ContactCenter needs JourneyChannelSettings.ConnectCampaignArn: the contact center's https:// webhook "
            "or the name of a custom activity that takes the participants"
        )
    if target:
        try:
            delivery_target(str(target))
        except ValueError as err:
            problems.append(f"JourneyChannelSettings.ConnectCampaignArn: {err}")
    return problems


def _activity_problems(aid: str, act: Activity, acts: dict[str, Activity]) -> list[str]:
    problems: list[str] = []
    if not _ACTIVITY_ID.match(aid):
        problems.append(f"activity id '{aid}' must be 1-100 letters and digits")
    kinds = act.kinds()
    if len(kinds) != 1:
        problems.append(f"activity '{aid}' must have exactly one activity type, it has {kinds or 'none'}")
        return problems
    kind = kinds[0]
    if kind not in SUPPORTED_KINDS:
        problems.append(
            f"activity '{aid}': {kind} activities are not supported by sojourn yet (supported: {', '.join(SUPPORTED_KINDS)})"
        )
        return problems
    for target in act.next_ids():
        if target is not None and target not in acts:
            problems.append(f"activity '{aid}' leads to '{target}', which is not an activity of this journey")
        if target == aid:
            problems.append(f"activity '{aid}' leads to itself")
    if act.EMAIL is not None and not act.EMAIL.TemplateName:
        problems.append(f"activity '{aid}': EMAIL needs a TemplateName")
    problems += _channel_message_problems(aid, act)
    if act.CUSTOM is not None:
        problems += [f"activity '{aid}': {p}" for p in custom_problems(act.CUSTOM)]
    if act.Wait is not None and act.Wait.WaitTime is None:
        problems.append(f"activity '{aid}': Wait needs a WaitTime (WaitFor or WaitUntil)")
    if act.ConditionalSplit is not None:
        cond = act.ConditionalSplit.Condition
        if cond is None or not cond.Conditions:
            problems.append(
                f"activity '{aid}': ConditionalSplit needs a Condition with at least one condition"
            )
    if act.MultiCondition is not None:
        multi = act.MultiCondition.Branches
        if not 1 <= len(multi) <= MAX_MULTI_BRANCHES:
            problems.append(
                f"activity '{aid}': MultiCondition needs 1 to {MAX_MULTI_BRANCHES} branches, it has {len(multi)}"
            )
        for i, branch in enumerate(multi, start=1):
            if branch.Condition is None:
                problems.append(f"activity '{aid}': MultiCondition branch {i} needs a Condition")
    if act.RandomSplit is not None:
        branches = act.RandomSplit.Branches
        if not 2 <= len(branches) <= 5:
            problems.append(f"activity '{aid}': RandomSplit needs 2 to 5 branches, it has {len(branches)}")
        total = sum(b.Percentage or 0 for b in branches)
        if total != 100:
            problems.append(
                f"activity '{aid}': RandomSplit branch percentages must sum to 100, they sum to {total}"
            )
    return problems


def _channel_message_problems(aid: str, act: Activity) -> list[str]:
    """What is wrong with an SMS or PUSH activity's template and MessageConfig."""
    kind, raw = ("SMS", act.SMS) if act.SMS is not None else ("PUSH", act.PUSH)
    if raw is None:
        return []
    problems: list[str] = []
    if not raw.get("TemplateName"):
        problems.append(f"activity '{aid}': {kind} needs a TemplateName (a {kind} template)")
    version = raw.get("TemplateVersion")
    if version is not None and not (str(version).isdigit() or version == "latest"):
        problems.append(f"activity '{aid}': {kind}.TemplateVersion must be a version number, not {version!r}")
    config = raw.get("MessageConfig") or {}
    if not isinstance(config, dict):
        return [*problems, f"activity '{aid}': {kind}.MessageConfig must be an object"]
    message_type = config.get("MessageType")
    if kind == "SMS" and message_type is not None and message_type not in SMS_MESSAGE_TYPES:
        problems.append(
            f"activity '{aid}': SMS.MessageConfig.MessageType {message_type!r} is not TRANSACTIONAL or PROMOTIONAL"
        )
    ttl = config.get("TimeToLive")
    if kind == "PUSH" and ttl not in (None, "") and not str(ttl).isdigit():
        problems.append(
            f"activity '{aid}': PUSH.MessageConfig.TimeToLive must be whole seconds as a string (e.g. \"3600\"), "
            f"not {ttl!r}"
        )
    return problems


def _walk(start: str, acts: dict[str, Activity]) -> Iterator[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        aid = stack.pop()
        if aid in seen or aid not in acts:
            continue
        seen.add(aid)
        yield aid
        stack.extend(t for t in acts[aid].next_ids() if t is not None)


def _delays(act: Activity) -> bool:
    return act.Wait is not None or act.evaluation_wait is not None


def _cycle_problems(start: str, acts: dict[str, Activity]) -> list[str]:
    # A loop is allowed only if it waits somewhere; otherwise it would send in a tight loop.
    problems: list[str] = []
    color: dict[str, int] = {}
    path: list[str] = []

    def visit(aid: str) -> None:
        color[aid] = 1
        path.append(aid)
        for nxt in acts[aid].next_ids():
            if nxt is None or nxt not in acts:
                continue
            if color.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                if not any(_delays(acts[c]) for c in cycle):
                    problems.append(f"activities {' -> '.join([*cycle, nxt])} form a loop with no Wait in it")
            elif nxt not in color:
                visit(nxt)
        path.pop()
        color[aid] = 2

    visit(start)
    return problems


def _ancestors(target: str, acts: dict[str, Activity]) -> set[str]:
    """Activities on some path that leads to ``target``."""
    preds: dict[str, set[str]] = {a: set() for a in acts}
    for aid, act in acts.items():
        for nxt in act.next_ids():
            if nxt in preds:
                preds[nxt].add(aid)
    found: set[str] = set()
    stack = list(preds.get(target, ()))
    while stack:
        aid = stack.pop()
        if aid not in found:
            found.add(aid)
            stack.extend(preds[aid])
    return found


def _split_conditions(act: Activity) -> list[SimpleCondition]:
    """Every simple condition a split activity evaluates."""
    if act.ConditionalSplit is not None and act.ConditionalSplit.Condition is not None:
        return list(act.ConditionalSplit.Condition.Conditions)
    if act.MultiCondition is not None:
        return [b.Condition for b in act.MultiCondition.Branches if b.Condition is not None]
    return []


def _own_event_problems(aid: str, act: Activity, ev: EventConditionSpec) -> list[str]:
    """An EventCondition without MessageActivity: the wait-for-event extension, on a ConditionalSplit only."""
    problems: list[str] = []
    dims = ev.Dimensions
    if act.ConditionalSplit is None:
        problems.append(
            f"activity '{aid}': an EventCondition without MessageActivity (wait for the participant's own event) "
            "works in a ConditionalSplit only; give MessageActivity, the email activity it is about"
        )
    if dims is None or dims.EventType is None or not dims.EventType.Values:
        problems.append(
            f"activity '{aid}': an EventCondition without MessageActivity needs Dimensions.EventType with the "
            "event types to wait for (e.g. purchase), or MessageActivity for an email's open or click"
        )
    elif dims.EventType.DimensionType != "INCLUSIVE":
        problems.append(f"activity '{aid}': waiting for an event needs an INCLUSIVE EventType")
    if dims is not None and (dims.Attributes or dims.Metrics):
        problems.append(
            f"activity '{aid}': attribute and metric filters on a participant's own event are not supported by "
            "sojourn yet; filter by EventType only"
        )
    return problems


def _event_condition_problems(acts: dict[str, Activity]) -> list[str]:
    problems: list[str] = []
    for aid, act in acts.items():
        for cond in _split_conditions(act):
            ev = cond.EventCondition
            if ev is None:
                continue
            if ev.own_event:
                problems += _own_event_problems(aid, act, ev)
            elif ev.MessageActivity not in acts or acts[ev.MessageActivity].kind not in MESSAGE_KINDS:
                problems.append(
                    f"activity '{aid}': EventCondition.MessageActivity '{ev.MessageActivity}' is not a message "
                    f"activity ({', '.join(MESSAGE_KINDS)}) of this journey"
                )
            elif ev.MessageActivity not in _ancestors(aid, acts):
                problems.append(
                    f"activity '{aid}': EventCondition.MessageActivity '{ev.MessageActivity}' does not come before this split"
                )
            problems += _event_attribute_problems(aid, ev)
    return problems


def _event_attribute_problems(aid: str, ev: EventConditionSpec) -> list[str]:
    """Attribute filters on a message's events: {name: {AttributeType: INCLUSIVE|EXCLUSIVE, Values: [...]}}."""
    if ev.own_event or ev.Dimensions is None:
        return []
    problems: list[str] = []
    for name, dim in (ev.Dimensions.Attributes or {}).items():
        kind = dim.get("AttributeType", "INCLUSIVE") if isinstance(dim, dict) else None
        if kind not in EVENT_ATTRIBUTE_TYPES or not isinstance(dim, dict) or not dim.get("Values"):
            problems.append(
                f"activity '{aid}': EventCondition Dimensions.Attributes.{name} needs AttributeType INCLUSIVE or "
                "EXCLUSIVE and Values"
            )
    if ev.Dimensions.Metrics:
        problems.append(
            f"activity '{aid}': metric filters on a message's events are not supported by sojourn yet"
        )
    return problems


def unsupported_settings(definition: JourneyDefinition) -> list[str]:
    """Journey settings sojourn does not apply yet: refused rather than silently ignored."""
    d = definition
    found: list[str] = []
    if set(d.JourneyChannelSettings or {}) - {"ConnectCampaignArn", "ConnectCampaignExecutionRoleArn"}:
        found.append("JourneyChannelSettings other than ConnectCampaignArn")
    return [f"{name} is not supported by sojourn yet; remove it (it would not be applied)" for name in found]


def settings_problems(definition: JourneyDefinition) -> list[str]:
    """What is wrong with the journey's settings: delivery rules and segment refresh (empty when fine)."""
    return sending_time_problems(definition) + refresh_problems(definition) + local_time_problems(definition)


def local_time_problems(definition: JourneyDefinition) -> list[str]:
    """LocalTime needs a segment-triggered journey with a StartTime (Pinpoint: not for event-triggered ones)."""
    d = definition
    if not d.LocalTime:
        return []
    problems: list[str] = []
    if d.entry_segment_id is None:
        problems.append(
            "LocalTime applies to journeys that start from a segment, not to event-triggered ones"
        )
    if d.Schedule is None or d.Schedule.StartTime is None:
        problems.append("LocalTime needs Schedule.StartTime: the local time at which each participant enters")
    if d.RefreshFrequency or d.RefreshOnSegmentUpdate:
        problems.append(
            "LocalTime with segment refresh is not supported by sojourn yet; use one or the other"
        )
    return problems


def refresh_problems(definition: JourneyDefinition) -> list[str]:
    """RefreshFrequency and RefreshOnSegmentUpdate apply to segment-triggered journeys only."""
    d = definition
    problems: list[str] = []
    if (d.RefreshFrequency or d.RefreshOnSegmentUpdate) and d.entry_segment_id is None:
        problems.append(
            "RefreshFrequency and RefreshOnSegmentUpdate apply to journeys that start from a segment "
            "(StartCondition.SegmentStartCondition)"
        )
    if d.RefreshFrequency:
        try:
            every = parse_duration(d.RefreshFrequency)
        except ValueError as err:
            problems.append(f"RefreshFrequency: {err}")
        else:
            if every < timedelta(hours=1):
                problems.append(
                    f"RefreshFrequency {d.RefreshFrequency} is too often: refresh at most hourly (PT1H)"
                )
    return problems


def sending_time_problems(definition: JourneyDefinition) -> list[str]:
    """What is wrong with QuietTime, OpenHours, ClosedDays and the estimation methods (empty when fine)."""
    d = definition
    problems: list[str] = []
    if (d.OpenHours or d.ClosedDays) and not d.SendingSchedule:
        problems.append(
            "OpenHours and ClosedDays apply only with SendingSchedule: true; set it or remove them"
        )
    quiet = d.QuietTime
    if quiet is not None and bool(quiet.Start) != bool(quiet.End):
        problems.append("QuietTime needs both Start and End (HH:MM), or neither")
    for channel in ("EMAIL", "SMS", "PUSH", "VOICE", "CUSTOM"):
        try:
            rules_for_journey(d, channel)
        except ValueError as err:
            problems.append(f"{channel}: {err}" if d.SendingSchedule else str(err))
    for name in ("OpenHours", "ClosedDays"):
        unknown = sorted(set(getattr(d, name) or {}) - {"EMAIL", "SMS", "PUSH", "VOICE", "CUSTOM"})
        if unknown:
            problems.append(
                f"{name}: {', '.join(unknown)} is not a channel (EMAIL, SMS, PUSH, VOICE, CUSTOM)"
            )
    bad_methods = sorted(set(d.TimezoneEstimationMethods or []) - {"PHONE_NUMBER", "POSTAL_CODE"})
    if bad_methods:
        problems.append(
            f"TimezoneEstimationMethods: {', '.join(bad_methods)} is not PHONE_NUMBER or POSTAL_CODE"
        )
    if d.Schedule is not None and d.Schedule.Timezone and zone_named(d.Schedule.Timezone) is None:
        problems.append(
            f"Schedule.Timezone {d.Schedule.Timezone!r} is not a time zone (UTC, UTC+05:30 or a name like Europe/Paris)"
        )
    return list(dict.fromkeys(problems))


def template_names(definition: JourneyDefinition) -> set[tuple[str, str | None]]:
    """(TemplateName, TemplateVersion) of every email activity."""
    return {
        (act.EMAIL.TemplateName, act.EMAIL.TemplateVersion)
        for act in definition.Activities.values()
        if act.EMAIL is not None and act.EMAIL.TemplateName
    }


def message_templates(definition: JourneyDefinition) -> set[tuple[str, str, str | None]]:
    """(template type, TemplateName, TemplateVersion) of every SMS and PUSH activity."""
    out: set[tuple[str, str, str | None]] = set()
    for act in definition.Activities.values():
        for kind, raw in (("SMS", act.SMS), ("PUSH", act.PUSH)):
            if raw is not None and raw.get("TemplateName"):
                version = raw.get("TemplateVersion")
                out.add((kind, str(raw["TemplateName"]), str(version) if version is not None else None))
    return out


def custom_templates(definition: JourneyDefinition) -> set[tuple[str, str | None]]:
    """(TemplateName, TemplateVersion) of every CUSTOM activity that names a template (of any type)."""
    out: set[tuple[str, str | None]] = set()
    for act in definition.Activities.values():
        if act.CUSTOM is not None and act.CUSTOM.get("TemplateName"):
            version = act.CUSTOM.get("TemplateVersion")
            out.add((str(act.CUSTOM["TemplateName"]), str(version) if version is not None else None))
    return out


# The zones furthest ahead of and behind UTC: a LocalTime journey starts when its start time comes first.
_EARLIEST_ZONE = timezone(timedelta(hours=14))
_LATEST_ZONE = timezone(timedelta(hours=-12))


def local_schedule(definition: JourneyDefinition) -> tuple[datetime | None, datetime | None]:
    """A LocalTime journey's StartTime and EndTime as wall-clock times (naive), read in Schedule.Timezone.

    Each participant enters when their own clock shows the start and leaves when it shows the end.
    """
    schedule = definition.Schedule or JourneySchedule()
    zone = zone_named(schedule.Timezone) or UTC

    def wall(at: datetime | None) -> datetime | None:
        return at.astimezone(zone).replace(tzinfo=None) if at is not None else None

    return wall(schedule.StartTime), wall(schedule.EndTime)


def zone_window(
    definition: JourneyDefinition, published_at: datetime, zone: tzinfo
) -> tuple[datetime, datetime]:
    """When a participant in ``zone`` enters a LocalTime journey and when the journey ends for them."""
    start_wall, end_wall = local_schedule(definition)
    start = max(local_to_utc(start_wall, zone), published_at) if start_wall else published_at
    limit = start + timedelta(days=MAX_JOURNEY_DAYS)
    end = min(local_to_utc(end_wall, zone), limit) if end_wall else limit
    return start, end


def journey_window(definition: JourneyDefinition, published_at: datetime) -> tuple[datetime, datetime]:
    """When entries start and when the journey ends.

    A StartTime in the past (or now) starts at once; no StartTime means Pinpoint's 5-minute entry delay after
    publishing. The end is EndTime, capped at 540 days after the start. A LocalTime journey starts when the
    first zone (UTC+14) reaches its start time and ends when the last one (UTC-12) reaches its end time.
    """
    if definition.LocalTime:
        first, _ = zone_window(definition, published_at, _EARLIEST_ZONE)
        _, last = zone_window(definition, published_at, _LATEST_ZONE)
        return first, max(last, first)
    schedule = definition.Schedule or JourneySchedule()
    start = schedule.StartTime if schedule.StartTime is not None else published_at + ENTRY_DELAY
    start = max(start, published_at) if schedule.StartTime is not None else start
    limit = start + timedelta(days=MAX_JOURNEY_DAYS)
    end = min(schedule.EndTime, limit) if schedule.EndTime is not None else limit
    return start, end


def event_matches(
    event_filter: EventFilterSpec, event_type: str, attributes: dict[str, str], metrics: dict[str, float]
) -> bool:
    """Whether an event matches an entry filter (event type set, attribute values, metric comparisons)."""
    dims = event_filter.Dimensions
    if dims.EventType is not None:
        inside = event_type in dims.EventType.Values
        if inside != (dims.EventType.DimensionType == "INCLUSIVE"):
            return False
    for name, spec in (dims.Attributes or {}).items():
        values = spec.get("Values") or []
        inclusive = spec.get("AttributeType", "INCLUSIVE") == "INCLUSIVE"
        if (attributes.get(name) in values) != inclusive:
            return False
    for name, spec in (dims.Metrics or {}).items():
        if name not in metrics or not _compare(
            metrics[name], spec.get("ComparisonOperator", "EQUAL"), float(spec.get("Value", 0))
        ):
            return False
    return True


def _compare(value: float, operator: str, target: float) -> bool:
    return {
        "EQUAL": value == target,
        "GREATER_THAN": value > target,
        "LESS_THAN": value < target,
        "GREATER_THAN_OR_EQUAL": value >= target,
        "LESS_THAN_OR_EQUAL": value <= target,
    }.get(operator, False)
