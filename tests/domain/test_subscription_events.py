"""The shape of SES Subscription events and when there is one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sojourn.domain.lists import Topic
from sojourn.domain.subscription_events import (
    ONE_CLICK,
    ContactSubscription,
    subscription_change,
    topic_preferences,
)

TOPICS = [
    Topic(name="weekly", display_name="Weekly", default_status="OPT_IN", description=None),
    Topic(name="offers", display_name="Offers", default_status="OPT_OUT", description=None),
]
AT = datetime(2026, 11, 23, 12, 0, 0, 340000, tzinfo=UTC)


def test_topic_preferences_fill_in_the_defaults() -> None:
    assert topic_preferences(ContactSubscription(False, {"offers": "OPT_IN"}), TOPICS) == {
        "unsubscribeAll": False,
        "topicSubscriptionStatus": [
            {"topicName": "weekly", "subscriptionStatus": "OptIn"},
            {"topicName": "offers", "subscriptionStatus": "OptIn"},
        ],
    }


def test_a_change_has_ses_shape() -> None:
    change = subscription_change(
        list_name="news",
        source=ONE_CLICK,
        at=AT,
        old=ContactSubscription(),
        new=ContactSubscription(False, {"weekly": "OPT_OUT"}),
        topics=TOPICS,
    )
    assert change == {
        "contactList": "news",
        "timestamp": "2026-11-23T12:00:00.340Z",
        "source": "UnsubscribeFromOneClick",
        "newTopicPreferences": {
            "unsubscribeAll": False,
            "topicSubscriptionStatus": [
                {"topicName": "weekly", "subscriptionStatus": "OptOut"},
                {"topicName": "offers", "subscriptionStatus": "OptOut"},
            ],
        },
        "oldTopicPreferences": {
            "unsubscribeAll": False,
            "topicSubscriptionStatus": [
                {"topicName": "weekly", "subscriptionStatus": "OptIn"},
                {"topicName": "offers", "subscriptionStatus": "OptOut"},
            ],
        },
    }


def test_no_effective_change_is_no_event() -> None:
    # An explicit preference equal to the default changes nothing a reader of the event could see.
    same = subscription_change(
        list_name="news",
        source=ONE_CLICK,
        at=AT,
        old=ContactSubscription(),
        new=ContactSubscription(False, {"weekly": "OPT_IN"}),
        topics=TOPICS,
    )
    assert same is None
    everything = subscription_change(
        list_name="news",
        source=ONE_CLICK,
        at=AT,
        old=ContactSubscription(),
        new=ContactSubscription(True, {}),
        topics=TOPICS,
    )
    assert everything is not None and everything["newTopicPreferences"]["unsubscribeAll"] is True


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        subscription_change(
            list_name="n",
            source="Somehow",
            at=AT,
            old=ContactSubscription(),
            new=ContactSubscription(True),
            topics=[],
        )
