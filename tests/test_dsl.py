"""The Python DSL builds the same definitions the API accepts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sojourn.domain.journeys import graph_problems, sending_time_problems
from sojourn.dsl import (
    Journey,
    contact_center,
    custom,
    email,
    holdout,
    multi_split,
    push,
    random_split,
    sms,
    split_on,
    wait,
    wait_for_event,
)

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_onboarding_journey_definition() -> None:
    journey = Journey("welcome", segment="seg1").then(
        email("welcome_email"),
        wait(days=2),
        split_on(
            "opened",
            of="welcome_email",
            within=wait(days=3),
            yes=[email("tips")],
            no=[holdout(10), email("nudge")],
        ),
    )
    d = journey.definition(now=NOW)
    assert graph_problems(d) == []
    assert d.StartActivity == "welcomeemail"
    assert d.Activities["welcomeemail"].EMAIL.NextActivity == "wait2d"  # type: ignore[union-attr]
    split = d.Activities["openedsplit"].ConditionalSplit
    assert split is not None and split.TrueActivity == "tips" and split.FalseActivity == "holdout10"
    cond = split.Condition.Conditions[0].EventCondition  # type: ignore[union-attr]
    assert cond is not None and cond.MessageActivity == "welcomeemail"
    assert split.EvaluationWaitTime is not None and split.EvaluationWaitTime.WaitFor == "P3D"
    assert d.Schedule is not None and d.Schedule.StartTime == NOW
    assert d.State == "ACTIVE"
    assert journey.request(now=NOW)["StartCondition"] == {"SegmentStartCondition": {"SegmentId": "seg1"}}


def test_event_entry_and_unique_ids() -> None:
    d = Journey("again", event="signup").then(email("a"), wait(seconds=10), email("a")).definition(now=NOW)
    assert list(d.Activities) == ["a", "wait10s", "a2"]
    assert d.entry_event_filter is not None


def test_random_split_branches() -> None:
    d = (
        Journey("r", segment="s")
        .then(random_split((50, [email("x")]), (50, [email("y")])))
        .definition(now=NOW)
    )
    assert graph_problems(d) == []
    branches = d.Activities["randomsplit"].RandomSplit.Branches  # type: ignore[union-attr]
    assert [b.NextActivity for b in branches] == ["x", "y"]


def test_steps_after_a_split_are_refused() -> None:
    with pytest.raises(ValueError, match="must be the last step"):
        Journey("bad", segment="s").then(split_on("opened", of="a", yes=[], no=[]), email("b")).definition(
            now=NOW
        )


def test_entry_is_segment_or_event() -> None:
    with pytest.raises(ValueError, match="either by segment"):
        Journey("x")


def test_multi_split_first_branch_wins_in_order() -> None:
    d = (
        Journey("multi", segment="s")
        .then(
            email("welcome"),
            multi_split(
                ("clicked", "welcome", [email("buyer")]),
                ("opened", "welcome", [email("reader")]),
                otherwise=[email("nudge")],
                within=wait(days=3),
            ),
        )
        .definition(now=NOW)
    )
    assert graph_problems(d) == []
    multi = d.Activities["multisplit"].MultiCondition
    assert multi is not None
    assert [b.NextActivity for b in multi.Branches] == [
        "buyer",
        "reader",
    ] and multi.DefaultActivity == "nudge"
    assert [b.Condition.EventCondition.MessageActivity for b in multi.Branches] == ["welcome", "welcome"]  # type: ignore[union-attr]
    assert multi.EvaluationWaitTime is not None and multi.EvaluationWaitTime.WaitFor == "P3D"


def test_delivery_settings_build_the_api_fields() -> None:
    journey = Journey(
        "paced",
        segment="seg",
        timezone="Europe/Paris",
        quiet_time=("21:00", "08:00"),
        open_hours={"EMAIL": {"MONDAY": [("09:00", "17:00")]}},
        closed_days={"EMAIL": [("xmas", "2026-12-25T00:00:00", "2026-12-26T00:00:00")]},
        estimate_timezone_from=("PHONE_NUMBER",),
        daily_cap=1,
        timeframe_cap=(3, 7),
        reentry_cap=2,
        reentry_interval="P7D",
    ).then(email("welcome"))
    body = journey.request(now=datetime(2026, 11, 23, tzinfo=UTC))
    assert body["Schedule"]["Timezone"] == "Europe/Paris"
    assert body["QuietTime"] == {"Start": "21:00", "End": "08:00"} and body["WaitForQuietTime"] is True
    assert body["SendingSchedule"] is True
    assert body["OpenHours"] == {"EMAIL": {"MONDAY": [{"StartTime": "09:00", "EndTime": "17:00"}]}}
    assert body["ClosedDays"]["EMAIL"][0]["Name"] == "xmas"
    assert body["TimezoneEstimationMethods"] == ["PHONE_NUMBER"]
    assert body["Limits"] == {
        "DailyCap": 1,
        "TimeframeCap": {"Cap": 3, "Days": 7},
        "EndpointReentryCap": 2,
        "EndpointReentryInterval": "P7D",
    }
    definition = journey.definition(now=datetime(2026, 11, 23, tzinfo=UTC))
    assert sending_time_problems(definition) == []


def test_wait_for_event_builds_an_own_event_split() -> None:
    journey = Journey("await", segment="seg").then(
        email("welcome"),
        wait_for_event("purchase", timeout=wait(days=3), then=[email("thanks")], otherwise=[email("nudge")]),
    )
    definition = journey.definition(now=datetime(2026, 11, 23, tzinfo=UTC))
    assert graph_problems(definition) == []
    (split_id,) = [aid for aid, act in definition.Activities.items() if act.waits_for_events]
    split = definition.Activities[split_id]
    assert split.awaited_event_types() == {"purchase"}
    assert split.ConditionalSplit is not None and split.ConditionalSplit.EvaluationWaitTime is not None
    assert split.ConditionalSplit.EvaluationWaitTime.WaitFor == "P3D"
    with pytest.raises(ValueError, match="at least one event type"):
        wait_for_event(timeout=wait(days=1))


def test_sms_and_push_steps() -> None:
    journey = Journey("channels", segment="S", start="2030-01-01T00:00:00Z")
    journey.then(
        sms("code", origination_number="+15550100", sender_id="ACME", message_type="TRANSACTIONAL"),
        push("nudge", version="2", time_to_live=600),
        split_on("_SMS.SUCCESS", of="code", within=wait(hours=1), yes=[push("thanks")]),
    )
    definition = journey.definition()
    acts = definition.model_dump(mode="json", exclude_none=True)["Activities"]
    assert acts["code"]["SMS"] == {
        "TemplateName": "code",
        "MessageConfig": {
            "MessageType": "TRANSACTIONAL",
            "OriginationNumber": "+15550100",
            "SenderId": "ACME",
        },
        "NextActivity": "nudge",
    }
    assert acts["nudge"]["PUSH"]["MessageConfig"] == {"TimeToLive": "600"}
    assert acts["nudge"]["PUSH"]["TemplateVersion"] == "2"
    split = acts[acts["nudge"]["PUSH"]["NextActivity"]]["ConditionalSplit"]
    assert split["Condition"]["Conditions"][0]["EventCondition"]["MessageActivity"] == "code"
    assert graph_problems(definition) == []


def test_custom_and_contact_center_steps() -> None:
    journey = Journey(
        "crm", segment="S", start="2030-01-01T00:00:00Z", contact_center="https://cc.example.com/take"
    )
    journey.then(
        custom("https://crm.example.com/hook", data="lead", name="crm"),
        split_on("_custom.response", of="crm", attributes={"answer": "yes"}, yes=[contact_center()], no=[]),
    )
    definition = journey.definition()
    body = definition.model_dump(mode="json", exclude_none=True)
    assert body["JourneyChannelSettings"] == {"ConnectCampaignArn": "https://cc.example.com/take"}
    assert body["Activities"]["crm"]["CUSTOM"] == {
        "DeliveryUri": "https://crm.example.com/hook",
        "MessageConfig": {"Data": "lead"},
        "NextActivity": body["Activities"]["crm"]["CUSTOM"]["NextActivity"],
    }
    split = body["Activities"][body["Activities"]["crm"]["CUSTOM"]["NextActivity"]]["ConditionalSplit"]
    dims = split["Condition"]["Conditions"][0]["EventCondition"]["Dimensions"]
    assert dims["Attributes"] == {"answer": {"AttributeType": "INCLUSIVE", "Values": ["yes"]}}
    assert "ContactCenter" in body["Activities"][split["TrueActivity"]]
    assert graph_problems(definition) == []
    templated = custom("crm_sync", template="promo", template_version="2").body
    assert templated == {"DeliveryUri": "crm_sync", "TemplateName": "promo", "TemplateVersion": "2"}
