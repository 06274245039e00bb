"""Pure rules of the SMS and PUSH journey steps."""

from __future__ import annotations

from sojourn.engine.message_steps import PUSH_CHANNEL_SQL, push_settings, sms_settings


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
