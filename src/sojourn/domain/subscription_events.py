"""SES ``Subscription`` events: what a change of a contact's subscription to a contact list looks like.

SES publishes one whenever a recipient unsubscribes or changes preferences; sojourn records one for every
change, whatever made it (see :data:`SOURCES`). The shape is SES's ``subscription`` object::

    {"contactList": "news", "timestamp": "2026-11-23T12:00:00.000Z", "source": "UnsubscribeFromOneClick",
     "newTopicPreferences": {"unsubscribeAll": false,
                             "topicSubscriptionStatus": [{"topicName": "weekly", "subscriptionStatus": "OptOut"}]},
     "oldTopicPreferences": {"unsubscribeAll": false,
                             "topicSubscriptionStatus": [{"topicName": "weekly", "subscriptionStatus": "OptIn"}]}}

``topicSubscriptionStatus`` lists every topic of the list with the contact's preference for it (explicit, else
the topic's default), spelled ``OptIn``/``OptOut`` as in SES's published event samples; ``unsubscribeAll`` is
reported beside it, not folded into it. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sojourn.domain.lists import OPT_IN, Topic

EVENT_TYPE: Final = "_email.subscription"

ONE_CLICK: Final = "UnsubscribeFromOneClick"
PREFERENCE_PAGE: Final = "UnsubscribeFromPreferencePage"
MAILTO: Final = "UnsubscribeFromMailto"
CREATE_CONTACT: Final = "CreateContact"
UPDATE_CONTACT: Final = "UpdateContact"
#: What changed the subscription: SES's two page sources, and sojourn's own for mailto and the API.
SOURCES: Final = (ONE_CLICK, PREFERENCE_PAGE, MAILTO, CREATE_CONTACT, UPDATE_CONTACT)


@dataclass(frozen=True)
class ContactSubscription:
    """A contact's subscription to one list: UnsubscribeAll and the explicit topic preferences."""

    unsubscribe_all: bool = False
    preferences: Mapping[str, str] = field(default_factory=dict)


def topic_preferences(state: ContactSubscription, topics: Sequence[Topic]) -> dict[str, Any]:
    """SES's ``TopicPreferences`` object of ``state``: unsubscribeAll and every topic's OptIn/OptOut."""
    return {
        "unsubscribeAll": state.unsubscribe_all,
        "topicSubscriptionStatus": [
            {
                "topicName": t.name,
                "subscriptionStatus": "OptIn"
                if state.preferences.get(t.name, t.default_status) == OPT_IN
                else "OptOut",
            }
            for t in topics
        ],
    }


def subscription_change(
    *,
    list_name: str,
    source: str,
    at: datetime,
    old: ContactSubscription,
    new: ContactSubscription,
    topics: Sequence[Topic],
) -> dict[str, Any] | None:
    """SES's ``subscription`` object for a change from ``old`` to ``new``, or None when nothing changed.

    Args:
        list_name: The contact list.
        source: What made the change (one of :data:`SOURCES`).
        at: When (timezone-aware).
        old: The subscription before (a contact that did not exist: ``ContactSubscription()``).
        new: The subscription after.
        topics: The list's topics.

    Raises:
        ValueError: ``source`` is not one of :data:`SOURCES`.
    """
    if source not in SOURCES:
        raise ValueError(f"subscription source {source!r} is not one of {', '.join(SOURCES)}")
    before, after = topic_preferences(old, topics), topic_preferences(new, topics)
    if before == after:
        return None
    return {
        "contactList": list_name,
        "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "source": source,
        "newTopicPreferences": after,
        "oldTopicPreferences": before,
    }
