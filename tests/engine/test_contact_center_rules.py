"""Which splits a ContactCenter step re-evaluates: read from the lane name."""

from __future__ import annotations

from sojourn.domain.journeys import JourneyDefinition
from sojourn.engine.contact_center_step import is_e164, path_branches

VIP = {"Conditions": [{"SegmentDimensions": {"Attributes": {"vip": {"Values": ["yes"]}}}}]}


def test_path_branches_follow_the_lane() -> None:
    definition = JourneyDefinition.model_validate(
        {
            "Name": "j",
            "StartActivity": "s1",
            "Activities": {
                "s1": {"ConditionalSplit": {"Condition": VIP, "TrueActivity": "r", "FalseActivity": "m"}},
                "r": {
                    "RandomSplit": {
                        "Branches": [{"Percentage": 50, "NextActivity": "cc"}, {"Percentage": 50}]
                    }
                },
                "m": {
                    "MultiCondition": {
                        "Branches": [{"Condition": VIP["Conditions"][0]}],
                        "DefaultActivity": "cc",
                    }
                },
                "cc": {"ContactCenter": {}},
            },
        }
    )
    # Yes at s1, then the first random branch (random splits are not re-evaluated).
    assert path_branches(definition, "0.1.1", "cc") == [("s1", 1)]
    # No at s1, then the Else branch of the multivariate split.
    assert path_branches(definition, "0.2.2", "cc") == [("s1", 2), ("m", 2)]


def test_e164_numbers() -> None:
    assert is_e164("+15550100001")
    assert not is_e164("5550100001")
    assert not is_e164("+0123")
    assert not is_e164("+1 555 0100")
