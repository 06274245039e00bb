"""A journey graph as an indented tree of lines, for the CLI (``sojourn journeys show``)."""

from __future__ import annotations

from collections.abc import Mapping

from sojourn.domain.journeys import Activity, JourneyDefinition


def _describe(activity_id: str, act: Activity) -> str:
    if act.EMAIL is not None:
        return f"{activity_id}: EMAIL {act.EMAIL.TemplateName}"
    if act.Wait is not None and act.Wait.WaitTime is not None:
        wait = act.Wait.WaitTime
        return (
            f"{activity_id}: Wait {'for ' + wait.WaitFor if wait.WaitFor else 'until ' + str(wait.WaitUntil)}"
        )
    if act.Holdout is not None:
        return f"{activity_id}: Holdout {act.Holdout.Percentage}%"
    for kind, raw in (("SMS", act.SMS), ("PUSH", act.PUSH)):
        if raw is not None:
            return f"{activity_id}: {kind} {raw.get('TemplateName')}"
    if act.CUSTOM is not None:
        return f"{activity_id}: CUSTOM {act.CUSTOM.get('DeliveryUri')}"
    if act.ContactCenter is not None:
        return f"{activity_id}: ContactCenter (re-evaluates, then hands off voice endpoints)"
    return f"{activity_id}: {act.kind}"


def _labels(act: Activity) -> list[str]:
    if act.ConditionalSplit is not None:
        return ["yes", "no"]
    if act.MultiCondition is not None:
        return [f"branch {i + 1}" for i in range(len(act.MultiCondition.Branches))] + ["otherwise"]
    if act.RandomSplit is not None:
        return [f"{b.Percentage}%" for b in act.RandomSplit.Branches]
    return []


def render_tree(definition: JourneyDefinition, metrics: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Lines showing each activity once, in graph order, with its metrics; branches are indented.

    An activity reached a second time (branches that merge, loops) is shown as a reference ("-> id").
    """
    lines: list[str] = []
    shown: set[str] = set()

    def walk(activity_id: str | None, depth: int) -> None:
        indent = "  " * depth
        while activity_id is not None:
            if activity_id in shown:
                lines.append(f"{indent}-> {activity_id}")
                return
            shown.add(activity_id)
            act = definition.Activities[activity_id]
            counts = ", ".join(f"{k} {v}" for k, v in sorted((metrics.get(activity_id) or {}).items()))
            lines.append(f"{indent}{_describe(activity_id, act)}" + (f"  [{counts}]" if counts else ""))
            labels = _labels(act)
            if labels:
                for label, target in zip(labels, act.next_ids(), strict=True):
                    lines.append(f"{indent}  {label}:")
                    if target is None:
                        lines.append(f"{indent}    (leaves the journey)")
                    walk(target, depth + 2)
                return
            nxt = act.next_ids()
            activity_id = nxt[0] if nxt else None

    walk(definition.StartActivity, 1)
    return lines
