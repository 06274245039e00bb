"""Pure rules of the SMS and PUSH journey steps."""

from __future__ import annotations

from sojourn.engine.message_steps import (
    PUSH_CHANNEL_SQL,
    call_chunks,
    push_settings,
    sms_settings,
    whole_participants,
)


def test_sms_sender_rules() -> None:
    both = {"OriginationNumber": "+15550000000", "SenderId": "ACME", "EntityId": "E1", "TemplateId": "T1"}
    assert sms_settings(both) == {
        "MessageType": "TRANSACTIONAL",
        "OriginationNumber": "+15550000000",
        "EntityId": "E1",
        "TemplateId": "T1",
    }
    # Without a sender in the activity, the app's SMS channel gives it.
    assert sms_settings({"MessageType": "PROMOTIONAL"}, {"SenderId": "SOJOURN", "ShortCode": "12345"}) == {
        "MessageType": "PROMOTIONAL",
        "SenderId": "SOJOURN",
    }
    assert sms_settings({}, {"ShortCode": "12345"})["OriginationNumber"] == "12345"


def test_push_settings_and_channel_types() -> None:
    assert push_settings({"TimeToLive": "0"}) == {"TimeToLive": 0}
    assert push_settings({}) == {}
    assert "'APNS_SANDBOX'" in PUSH_CHANNEL_SQL and "'SMS'" not in PUSH_CHANNEL_SQL


def test_a_call_ends_at_a_whole_participant() -> None:
    rows = [{"participant": p, "n": i} for i, p in enumerate(["u:a", "u:a", "e:b", "u:c", "u:c", "u:c"])]
    # u:c goes on past a call of 4: it waits for the next call whole.
    assert [r["n"] for r in whole_participants(rows[:5], 4)] == [0, 1, 2]
    assert [r["n"] for r in whole_participants(rows[:3], 4)] == [0, 1, 2], "fewer rows than a call: all"
    assert [r["n"] for r in whole_participants(rows[:4], 3)] == [0, 1, 2], (
        "the cut falls between participants"
    )
    alone = [{"participant": "u:big", "n": i} for i in range(5)]
    assert len(whole_participants(alone, 4)) == 4, "a user with more endpoints than a call is split"


def test_concurrent_calls_are_whole_participants() -> None:
    people = ["u:a", "u:a", "e:b", "u:c", "u:c", "e:d", "u:e", "u:e", "u:e"]
    rows = [{"participant": p, "n": i} for i, p in enumerate(people)]
    # Three calls of at most 3 from a full fetch of 3 * 3 + 1 rows would be 10; 9 rows: everything fits.
    assert [[r["n"] for r in c] for c in call_chunks(rows, 3, 3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    # Two calls of at most 3 from a full fetch of 7 rows: u:e goes on past the fetch and waits.
    assert [[r["n"] for r in c] for c in call_chunks(rows[:7], 3, 2)] == [[0, 1, 2], [3, 4, 5]]
    assert [[r["n"] for r in c] for c in call_chunks(rows[:3], 2, 1)] == [[0, 1]]
    assert call_chunks([], 3, 2) == []
