"""Journey review before activation: errors that block publishing and recommendations that do not.

Pinpoint's console showed such a review before "Publish"; sojourn gives the same in the CLI
(``sojourn journeys review``), and the API refuses the blocking errors when a journey is created or updated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sojourn.domain.journeys import (
    Activity,
    JourneyDefinition,
    graph_problems,
    parse_instant,
    settings_problems,
    unsupported_settings,
)


@dataclass
class Review:
    """What a review found."""

    errors: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No blocking error."""
        return not self.errors


def review_journey(definition: JourneyDefinition, *, now: datetime) -> Review:
    """Review a journey: the graph's blocking problems, then advice on timing and pacing."""
    result = Review(
        errors=graph_problems(definition) + settings_problems(definition) + unsupported_settings(definition)
    )
    if result.errors:
        return result
    acts = definition.Activities
    predecessors: dict[str, list[str]] = {aid: [] for aid in acts}
    for aid, act in acts.items():
        for nxt in act.next_ids():
            if nxt in predecessors:
                predecessors[nxt].append(aid)
    for aid, act in acts.items():
        result.recommendations += _split_timing(aid, act, acts, predecessors)
        result.recommendations += _back_to_back(aid, act, acts)
        result.recommendations += _past_wait(aid, act, now)
    schedule = definition.Schedule
    if schedule is None or schedule.EndTime is None:
        result.recommendations.append(
            "the journey has no EndTime: it takes entrants for the maximum of 540 days"
        )
    if schedule is None or schedule.StartTime is None:
        result.recommendations.append(
            "the journey has no StartTime: entries begin 5 minutes after it is published"
        )
    return result


def _split_timing(
    aid: str, act: Activity, acts: dict[str, Activity], predecessors: dict[str, list[str]]
) -> list[str]:
    if act.evaluation_wait is not None:
        return []
    conditions = []
    if act.ConditionalSplit is not None and act.ConditionalSplit.Condition is not None:
        conditions = act.ConditionalSplit.Condition.Conditions
    elif act.MultiCondition is not None:
        conditions = [b.Condition for b in act.MultiCondition.Branches if b.Condition is not None]
    about = {c.EventCondition.MessageActivity for c in conditions if c.EventCondition is not None}
    waited = any(acts[p].Wait is not None for p in predecessors[aid])
    if about and not waited:
        emails = ", ".join(sorted(str(a) for a in about))
        return [
            f"split '{aid}' is evaluated immediately after {emails}: nobody will have opened or clicked yet, "
            "and no event data means 'No'; give it an EvaluationWaitTime"
        ]
    return []


def _back_to_back(aid: str, act: Activity, acts: dict[str, Activity]) -> list[str]:
    if act.EMAIL is None or act.EMAIL.NextActivity is None:
        return []
    following = acts.get(act.EMAIL.NextActivity)
    if following is not None and following.EMAIL is not None:
        return [f"emails '{aid}' and '{act.EMAIL.NextActivity}' go out back to back: put a Wait between them"]
    return []


def _past_wait(aid: str, act: Activity, now: datetime) -> list[str]:
    wait = act.Wait.WaitTime if act.Wait is not None else None
    if wait is not None and wait.WaitUntil is not None and parse_instant(wait.WaitUntil) <= now:
        return [f"wait '{aid}' waits until {wait.WaitUntil}, which has passed: participants move on at once"]
    return []
