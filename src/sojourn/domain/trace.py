"""One participant's path through a journey, read back from their lane name.

A lane name records every fork a participant took: ``0`` is the cohort's start, each ``.k`` the k-th branch of
a split (ConditionalSplit: 1 = yes, 2 = no; RandomSplit and MultiCondition: branch k), ``.qT`` a hold for
quiet time until the epoch second T, and ``.eN`` an early release from a wait-for-event split (its yes branch).
Walking the graph from the start activity with those forks gives the activities the participant passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sojourn.domain.journeys import MESSAGE_KINDS, JourneyDefinition


@dataclass(frozen=True)
class Step:
    """One activity on a participant's path.

    Attributes:
        activity_id: The activity.
        kind: Its type (EMAIL, Wait, ConditionalSplit, ...).
        note: What happened there, when the lane tells (``branch 2``, ``held until ...``), else "".
    """

    activity_id: str
    kind: str
    note: str = ""


def lane_forks(lane: str) -> list[str]:
    """The fork segments of a lane name after the cohort's ``0``."""
    return lane.split(".")[1:]


def participant_path(
    definition: JourneyDefinition, lane: str, position: str | None, status: str = "active"
) -> list[Step]:
    """The activities a participant in ``lane`` passed, ending at ``position`` (None: they left the journey).

    Args:
        definition: The journey version they entered with.
        lane: Their lane.
        position: The activity they are at now, or None when they left.
        status: Their participant status (``held_out`` ends the path at the first Holdout).
    """
    forks = lane_forks(lane)
    steps: list[Step] = []
    current = definition.StartActivity
    seen = 0
    while current is not None and current in definition.Activities and seen < 1000:
        seen += 1
        act = definition.Activities[current]
        note = ""
        while forks and forks[0][:1] == "q" and act.kind in MESSAGE_KINDS:
            note = (
                f"held for quiet time until {datetime.fromtimestamp(int(forks.pop(0)[1:]), UTC).isoformat()}"
            )
        if current == position and not forks:
            steps.append(Step(current, act.kind, note or "is here now"))
            break
        if act.Holdout is not None and status == "held_out":
            steps.append(Step(current, act.kind, "held out"))
            break
        targets = act.next_ids()
        if len(targets) > 1 or act.RandomSplit is not None or act.MultiCondition is not None:
            if not forks:
                steps.append(Step(current, act.kind, note or "is here now"))
                break
            fork = forks.pop(0)
            branch = 1 if fork.startswith("e") else int(fork) if fork.isdigit() else 0
            if not 1 <= branch <= len(targets):
                steps.append(Step(current, act.kind, f"unknown branch {fork!r}"))
                break
            how = "released early by their event: " if fork.startswith("e") else ""
            steps.append(Step(current, act.kind, f"{how}branch {branch}"))
            current = targets[branch - 1]
            continue
        steps.append(Step(current, act.kind, note))
        current = targets[0] if targets else None
    return steps
