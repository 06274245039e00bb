"""The journey tree the CLI prints."""

from __future__ import annotations

from sojourn.domain.journey_tree import render_tree
from sojourn.dsl import Journey, email, holdout, split_on, wait


def test_tree_shows_branches_counts_and_merges() -> None:
    d = (
        Journey("t", segment="s")
        .then(
            email("welcome"),
            wait(days=2),
            split_on("opened", of="welcome", yes=[email("tips")], no=[holdout(10), email("tips")]),
        )
        .definition()
    )
    lines = render_tree(d, {"welcome": {"SUCCESS": "5"}, "openedsplit": {"Branch_1": "2", "Branch_2": "3"}})
    assert lines == [
        "  welcome: EMAIL welcome  [SUCCESS 5]",
        "  wait2d: Wait for P2D",
        "  openedsplit: ConditionalSplit  [Branch_1 2, Branch_2 3]",
        "    yes:",
        "      tips: EMAIL tips",
        "    no:",
        "      holdout10: Holdout 10%",
        "      tips2: EMAIL tips",
    ]
