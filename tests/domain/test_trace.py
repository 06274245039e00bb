"""A participant's path, read back from the lane name."""

from __future__ import annotations

from sojourn.domain.trace import participant_path
from sojourn.dsl import Journey, email, holdout, push, random_split, sms, split_on, wait, wait_for_event

JOURNEY = (
    Journey("t", segment="s")
    .then(
        email("welcome"),
        wait(days=2),
        split_on(
            "opened", of="welcome", within=wait(days=1), yes=[email("tips")], no=[holdout(10), email("nudge")]
        ),
    )
    .definition()
)


def ids(steps: list) -> list[str]:  # type: ignore[type-arg]
    return [s.activity_id for s in steps]


def test_a_finished_yes_path() -> None:
    steps = participant_path(JOURNEY, "0.1", None, "completed")
    assert [s.kind for s in steps] == ["EMAIL", "Wait", "ConditionalSplit", "EMAIL"]
    assert steps[2].note == "branch 1" and steps[3].activity_id.startswith("tips")


def test_waiting_and_held_out() -> None:
    waiting = participant_path(JOURNEY, "0", ids(participant_path(JOURNEY, "0", None))[1], "active")
    assert [s.kind for s in waiting] == ["EMAIL", "Wait"] and waiting[-1].note == "is here now"
    held = participant_path(JOURNEY, "0.2", None, "held_out")
    assert [s.kind for s in held] == ["EMAIL", "Wait", "ConditionalSplit", "Holdout"]
    assert held[-1].note == "held out"


def test_quiet_time_holds_and_early_releases_are_shown() -> None:
    journey = (
        Journey("q", segment="s")
        .then(
            email("welcome"),
            wait_for_event(
                "purchase", timeout=wait(days=1), then=[email("thanks")], otherwise=[email("nudge")]
            ),
        )
        .definition()
    )
    steps = participant_path(journey, "0.q1764054000.e1", None, "completed")
    assert steps[0].note == "held for quiet time until 2025-11-25T07:00:00+00:00"
    assert steps[1].note == "released early by their event: branch 1"
    assert steps[2].activity_id.startswith("thanks")


def test_random_split_branches() -> None:
    journey = (
        Journey("r", segment="s").then(random_split((50, [email("a")]), (50, [email("b")]))).definition()
    )
    steps = participant_path(journey, "0.2", None, "completed")
    assert steps[0].note == "branch 2" and steps[1].activity_id.startswith("b")


def test_quiet_time_holds_at_sms_and_push_steps() -> None:
    journey = (
        Journey("c", segment="s")
        .then(sms("code"), push("nudge"), split_on("_SMS.SUCCESS", of="code", yes=[email("tips")]))
        .definition()
    )
    # A hold at a message step does not read as a split branch (the lane does not say which step held it).
    steps = participant_path(journey, "0.q1764054000.1", None, "completed")
    assert [s.kind for s in steps] == ["SMS", "PUSH", "ConditionalSplit", "EMAIL"]
    assert steps[0].note == "held for quiet time until 2025-11-25T07:00:00+00:00"
    assert steps[2].note == "branch 1"
