"""The list-management rules: effective subscription status, sends, filters (also run in Postgres), tokens."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.domain import lists as rules
from sojourn.domain.lists import ContactFilter, ListRuleError, TooManyTopicsError, Topic

WEEKLY = Topic("weekly", "Weekly", None, rules.OPT_IN)
OFFERS = Topic("offers", "Offers", "Deals", rules.OPT_OUT)


@pytest.mark.parametrize(
    ("unsubscribe_all", "preferences", "topic", "expected"),
    [
        (False, {}, WEEKLY, "OPT_IN"),  # the topic default
        (False, {}, OFFERS, "OPT_OUT"),
        (False, {"offers": "OPT_IN"}, OFFERS, "OPT_IN"),  # explicit beats the default
        (False, {"weekly": "OPT_OUT"}, WEEKLY, "OPT_OUT"),
        (True, {"offers": "OPT_IN"}, OFFERS, "OPT_OUT"),  # unsubscribed from all beats everything
        (True, {}, WEEKLY, "OPT_OUT"),
    ],
)
def test_effective_status(
    unsubscribe_all: bool, preferences: dict[str, str], topic: Topic, expected: str
) -> None:
    assert rules.effective_status(topic, unsubscribe_all=unsubscribe_all, preferences=preferences) == expected


def test_may_send() -> None:
    topics = [WEEKLY, OFFERS]
    assert rules.may_send(topics, None, unsubscribe_all=False, preferences={"weekly": "OPT_OUT"})
    assert not rules.may_send(topics, None, unsubscribe_all=True, preferences={})
    assert rules.may_send(topics, "weekly", unsubscribe_all=False, preferences={})
    assert not rules.may_send(topics, "offers", unsubscribe_all=False, preferences={})
    assert rules.may_send(topics, "offers", unsubscribe_all=False, preferences={"offers": "OPT_IN"})
    with pytest.raises(ListRuleError, match="not a topic"):
        rules.may_send(topics, "nope", unsubscribe_all=False, preferences={})


def test_parse_topics() -> None:
    raw = [
        {"TopicName": f"t{i}", "DisplayName": "T", "DefaultSubscriptionStatus": "OPT_IN"} for i in range(21)
    ]
    assert len(rules.parse_topics(raw[:20])) == 20
    with pytest.raises(TooManyTopicsError, match="at most 20"):
        rules.parse_topics(raw)
    with pytest.raises(ListRuleError, match="DisplayName"):
        rules.parse_topics([{"TopicName": "a", "DefaultSubscriptionStatus": "OPT_IN"}])
    with pytest.raises(ListRuleError, match="TopicName"):
        rules.parse_topics([{"TopicName": "a b", "DisplayName": "A", "DefaultSubscriptionStatus": "OPT_IN"}])


def test_preferences_and_defaults() -> None:
    prefs = rules.parse_preferences(
        [{"TopicName": "offers", "SubscriptionStatus": "OPT_IN"}], [WEEKLY, OFFERS]
    )
    assert prefs == {"offers": "OPT_IN"}
    assert rules.default_preferences([WEEKLY, OFFERS], prefs) == [
        {"TopicName": "weekly", "SubscriptionStatus": "OPT_IN"}
    ]
    with pytest.raises(ListRuleError, match="twice"):
        rules.parse_preferences(
            [{"TopicName": "offers", "SubscriptionStatus": "OPT_IN"}] * 2, [WEEKLY, OFFERS]
        )


def test_normalize_email() -> None:
    assert rules.normalize_email("  Ada@Example.COM ") == "ada@example.com"
    for bad in ("", "ada", "a@b@c", "ada @example.com", "<ada@example.com>"):
        with pytest.raises(ListRuleError):
            rules.normalize_email(bad)


def test_page_tokens_round_trip_and_refuse_garbage() -> None:
    assert rules.decode_page_token(rules.encode_page_token("zoë@example.com")) == "zoë@example.com"
    for bad in ("", "!!", "bm90LWpzb24", rules.encode_page_token("x")[:-3] + "A"):
        with pytest.raises(ListRuleError, match="NextToken"):
            rules.decode_page_token(bad)


def test_parse_filter() -> None:
    topics = [WEEKLY, OFFERS]
    assert rules.parse_filter(None, topics) == ContactFilter()
    assert rules.parse_filter({"FilteredStatus": "OPT_OUT"}, topics) == ContactFilter(status="OPT_OUT")
    parsed = rules.parse_filter({"TopicFilter": {"TopicName": "offers"}}, topics)
    assert parsed == ContactFilter(
        status="OPT_IN", topic="offers", topic_default="OPT_OUT", use_default=False
    )
    with pytest.raises(ListRuleError, match="TopicName"):
        rules.parse_filter({"TopicFilter": {}}, topics)


# Every combination of contact state, against every filter: the SQL form must agree with the Python rule.
STATES = [
    (unsub, prefs)
    for unsub in (False, True)
    for prefs in ({}, {"weekly": "OPT_IN"}, {"weekly": "OPT_OUT"}, {"offers": "OPT_IN", "weekly": "OPT_OUT"})
]
FILTERS = [ContactFilter()] + [
    ContactFilter(
        status=status,
        topic=topic.name if topic else None,
        topic_default=topic.default_status if topic else "OPT_IN",
        use_default=use,
    )
    for status, topic, use in itertools.product(("OPT_IN", "OPT_OUT"), (None, WEEKLY, OFFERS), (False, True))
]


@pytest.mark.parametrize("contact_filter", FILTERS, ids=str)
async def test_filter_sql_matches_the_rule(db: AsyncEngine, contact_filter: ContactFilter) -> None:
    condition, params = rules.filter_sql(contact_filter)
    rows = ", ".join(
        f"({i}, {str(unsub).lower()}, CAST(:p{i} AS jsonb))" for i, (unsub, _) in enumerate(STATES)
    )
    prefs = {f"p{i}": json.dumps(p) for i, (_, p) in enumerate(STATES)}
    async with db.connect() as conn:
        result = await conn.execute(
            text(
                f"SELECT c.i FROM (VALUES {rows}) AS c(i, unsubscribe_all, topic_preferences) WHERE {condition} ORDER BY c.i"
            ),
            {**params, **prefs},
        )
        in_sql = [r[0] for r in result]
    expected = [
        i
        for i, (unsub, p) in enumerate(STATES)
        if rules.matches_filter(contact_filter, unsubscribe_all=unsub, preferences=p)
    ]
    assert in_sql == expected


def test_parse_list_management_header() -> None:
    assert rules.parse_list_management_header("contactListName=news; topicName=weekly") == {
        "ContactListName": "news",
        "TopicName": "weekly",
    }
    assert rules.parse_list_management_header(" contactListName = news ;") == {"ContactListName": "news"}
    for bad in ("topicName=weekly", "contactListName", "list=news", ""):
        with pytest.raises(ListRuleError, match="contactListName"):
            rules.parse_list_management_header(bad)
