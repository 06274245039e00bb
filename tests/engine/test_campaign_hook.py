"""The FILTER hook's rules: which fields of its answer sojourn honours, how they merge into the endpoint row, and
which message fields TitleOverride/BodyOverride replace on each channel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sojourn.engine.campaign_hook import (
    HOOK_OVERRIDES,
    CampaignHook,
    HookAnswer,
    HookFailed,
    hooked_endpoint,
    merge_hook_answer,
    override_message,
    parse_hook_endpoint,
)
from sojourn.store.endpoint_rows import endpoint_response

ROW: dict[str, Any] = {
    "app_id": "app",
    "id": "ep1",
    "channel_type": "SMS",
    "address": "+15550100001",
    "endpoint_status": "ACTIVE",
    "opt_out": "NONE",
    "user_id": "u1",
    "user_attributes": {"FirstName": ["Ada"]},
    "attributes": {"plan": ["pro"], "code": ["C-1"]},
    "metrics": {"visits": 3},
    "demographic": {"Timezone": "Europe/London", "Locale": "en_GB"},
    "location": {},
    "request_id": None,
    "cohort_id": 7,
    "creation_date": datetime(2027, 1, 1, tzinfo=UTC),
    "effective_date": datetime(2027, 1, 2, tzinfo=UTC),
}


def test_the_answer_is_the_endpoint_as_given_back_with_new_attributes() -> None:
    # Pinpoint's own example: the function adds Attributes.CreditScore (a number) to the endpoint it was given.
    given = endpoint_response(ROW)
    given["Attributes"] = {**given["Attributes"], "CreditScore": [712]}
    answer = parse_hook_endpoint("ep1", given)
    assert answer.columns["attributes"] == {"plan": ["pro"], "code": ["C-1"], "CreditScore": [712]}
    assert answer.columns["user_attributes"] == {"FirstName": ["Ada"]}
    assert answer.overrides == {}


def test_fields_that_say_who_the_endpoint_is_are_ignored() -> None:
    answer = parse_hook_endpoint(
        "ep1",
        {
            "Id": "someone-else",
            "Address": "+15550199999",
            "ChannelType": "EMAIL",
            "OptOut": "ALL",
            "EndpointStatus": "INACTIVE",
            "CohortId": "99",
            "EffectiveDate": "2030-01-01T00:00:00Z",
            "User": {"UserId": "u2"},
        },
    )
    assert answer == HookAnswer() and not answer.changes


def test_a_value_that_is_not_an_object_keeps_the_endpoint_unchanged() -> None:
    for value in (True, None, "keep", 1):
        assert parse_hook_endpoint("ep1", value) == HookAnswer()


def test_overrides_are_strings_and_an_empty_one_is_none() -> None:
    answer = parse_hook_endpoint("ep1", {"TitleOverride": "Hello", "BodyOverride": ""})
    assert answer.overrides == {"TitleOverride": "Hello"} and answer.changes


def test_a_lone_attribute_value_counts_as_a_list_of_one() -> None:
    answer = parse_hook_endpoint(
        "ep1", {"Attributes": {"tier": "gold"}, "User": {"UserAttributes": {"n": 2}}}
    )
    assert answer.columns == {"attributes": {"tier": ["gold"]}, "user_attributes": {"n": [2]}}


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"Attributes": ["gold"]}, "endpoint ep1: Attributes must be an object"),
        ({"Attributes": {"tier": [{"a": 1}]}}, r"endpoint ep1: Attributes.tier must be a list of strings"),
        ({"Metrics": {"visits": "three"}}, "endpoint ep1: Metrics.visits must be a number"),
        ({"Metrics": {"visits": True}}, "endpoint ep1: Metrics.visits must be a number"),
        ({"Demographic": "en_GB"}, "endpoint ep1: Demographic must be an object"),
        ({"User": ["u1"]}, "endpoint ep1: User must be an object"),
        ({"User": {"UserAttributes": 3}}, "endpoint ep1: User.UserAttributes must be an object"),
        ({"BodyOverride": 42}, "endpoint ep1: BodyOverride must be a string"),
    ],
)
def test_a_field_of_the_wrong_shape_makes_the_answer_undecodable(
    definition: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_hook_endpoint("ep1", definition)


def test_merge_replaces_each_given_field_whole_and_keeps_the_others() -> None:
    answer = parse_hook_endpoint(
        "ep1",
        {"Attributes": {"CreditScore": ["700"]}, "Metrics": {"visits": 4}, "Address": "+15550199999"},
    )
    merged = merge_hook_answer(ROW, answer)
    # The returned Attributes are the endpoint's Attributes for this message: ``plan`` and ``code`` are gone.
    assert merged["attributes"] == {"CreditScore": ["700"]}
    assert merged["metrics"] == {"visits": 4}
    assert merged["user_attributes"] == ROW["user_attributes"]
    assert merged["address"] == ROW["address"] and merged["channel_type"] == "SMS"
    assert HOOK_OVERRIDES not in merged
    assert ROW["attributes"] == {"plan": ["pro"], "code": ["C-1"]}  # the stored row is not modified


def test_merge_keeps_the_stored_time_zone() -> None:
    answer = parse_hook_endpoint("ep1", {"Demographic": {"Locale": "fr_FR", "Timezone": "Asia/Tokyo"}})
    assert merge_hook_answer(ROW, answer)["demographic"] == {"Locale": "fr_FR", "Timezone": "Europe/London"}
    no_zone = {**ROW, "demographic": {}}
    assert merge_hook_answer(no_zone, answer)["demographic"] == {"Locale": "fr_FR"}


def test_merge_puts_the_overrides_on_the_row() -> None:
    answer = parse_hook_endpoint("ep1", {"TitleOverride": "T", "BodyOverride": "B"})
    merged = merge_hook_answer(ROW, answer)
    assert merged[HOOK_OVERRIDES] == {"TitleOverride": "T", "BodyOverride": "B"}
    assert {k: v for k, v in merged.items() if k != HOOK_OVERRIDES} == ROW


OVERRIDES = {"TitleOverride": "New title", "BodyOverride": "New body"}


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("SMS", {"Body": "New body", "MessageType": "PROMOTIONAL"}),
        ("VOICE", {"Body": "New body", "MessageType": "PROMOTIONAL"}),
        ("PUSH", {"Body": "New body", "Title": "New title", "MessageType": "PROMOTIONAL"}),
        ("EMAIL", {"Body": "old", "MessageType": "PROMOTIONAL"}),
        ("CUSTOM", {"Body": "old", "MessageType": "PROMOTIONAL"}),
    ],
)
def test_overrides_replace_the_title_and_body_each_channel_has(
    channel: str, expected: dict[str, str]
) -> None:
    message = {"Body": "old", "MessageType": "PROMOTIONAL"}
    assert override_message(channel, message, OVERRIDES) == expected
    assert message == {"Body": "old", "MessageType": "PROMOTIONAL"}


def test_only_the_given_override_applies() -> None:
    message = {"Title": "Sale", "Body": "Now on"}
    assert override_message("PUSH", message, {"BodyOverride": "Just this"}) == {
        "Title": "Sale",
        "Body": "Just this",
    }


def test_a_custom_delivery_gets_the_overrides_on_the_endpoint() -> None:
    plain = hooked_endpoint(ROW)
    assert plain == endpoint_response(ROW)
    hooked = hooked_endpoint(merge_hook_answer(ROW, HookAnswer({"attributes": {"x": ["1"]}}, OVERRIDES)))
    assert hooked["Attributes"] == {"x": ["1"]}
    assert hooked["TitleOverride"] == "New title" and hooked["BodyOverride"] == "New body"


async def test_keep_returns_each_kept_endpoints_answer_and_only_for_the_endpoints_of_the_call() -> None:
    endpoints = {f"e{i:03}": {"Id": f"e{i:03}", "Attributes": {"n": [str(i)]}} for i in range(60)}

    def score(event: dict[str, Any]) -> dict[str, Any]:
        answer = {}
        for key, endpoint in event["Endpoints"].items():
            endpoint["Attributes"]["CreditScore"] = [
                700
            ]  # edits what it was given, as Pinpoint's example does
            answer[key] = endpoint
        answer["stranger"] = {"Attributes": {"n": ["x"]}}
        answer["e059" if "e000" in event["Endpoints"] else "e000"] = {"Attributes": {"n": ["stolen"]}}
        return answer

    kept = await CampaignHook("score", {"score": score}).keep({}, endpoints)
    assert sorted(kept) == sorted(endpoints)
    assert kept["e000"].columns["attributes"] == {"n": ["0"], "CreditScore": [700]}
    assert kept["e059"].columns["attributes"] == {"n": ["59"], "CreditScore": [700]}
    # The function got copies: the endpoints it was given are untouched.
    assert endpoints["e000"]["Attributes"] == {"n": ["0"]}


async def test_an_undecodable_endpoint_is_a_failed_attempt() -> None:
    calls: list[int] = []

    def bad(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return {key: {"Attributes": "gold"} for key in event["Endpoints"]}

    with pytest.raises(HookFailed, match="failed 3 times: endpoint a: Attributes must be an object"):
        await CampaignHook("bad", {"bad": bad}).keep({}, {"a": {"Id": "a"}})
    assert len(calls) == 3


async def test_a_function_gets_its_own_copy_of_data_that_is_not_plain_json_too() -> None:
    created = datetime(2027, 1, 1, tzinfo=UTC)
    endpoints = {"a": {"Id": "a", "Attributes": {"n": ["1"]}, "Seen": created}}

    def edit(event: dict[str, Any]) -> dict[str, Any]:
        endpoint = event["Endpoints"]["a"]
        endpoint["Attributes"]["n"].append("2")
        assert endpoint["Seen"] == created
        return {"a": endpoint}

    kept = await CampaignHook("edit", {"edit": edit}).keep({}, endpoints)
    assert kept["a"].columns["attributes"] == {"n": ["1", "2"]}
    assert endpoints["a"]["Attributes"] == {"n": ["1"]}
