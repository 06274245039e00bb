"""SES Subscription events: recorded for every change made through the pages and the contact API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.settings import Settings
from sojourn.store import subscription_repo
from tests.support.api_server import boto3_client, serve_api
from tests.support.lists import make_list, page_url


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[tuple[str, Settings]]:
    with serve_api(database_url, smtp_url="null://") as served:
        yield served


@pytest.fixture(scope="module")
def sesv2(api: tuple[str, Settings]) -> Any:
    return boto3_client("sesv2", api[0])


async def _events(db: AsyncEngine, list_name: str, email: str) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        return await subscription_repo.list_events(conn, list_name=list_name, email=email)


async def _endpoint_with(db: AsyncEngine, address: str) -> str:
    app_id = f"sub{uuid.uuid4().hex[:10]}"
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO apps (id, name) VALUES (:a, 'sub')"), {"a": app_id})
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, cohort_id) "
                "VALUES (:a, 'ep', 'EMAIL', :x, 0)"
            ),
            {"a": app_id, "x": address},
        )
    return app_id


async def test_pages_record_subscription_events(
    api: tuple[str, Settings], sesv2: Any, db: AsyncEngine
) -> None:
    base, settings = api
    email = f"sub-{uuid.uuid4().hex[:8]}@example.com"
    name = make_list(sesv2, email)
    app_id = await _endpoint_with(db, email)
    async with httpx.AsyncClient() as http:
        one_click = page_url(base, settings, "unsubscribe", name, email, "weekly")
        for _ in range(2):  # the second changes nothing and records nothing
            assert (await http.post(one_click, content="List-Unsubscribe=One-Click")).status_code == 200
        preferences = page_url(base, settings, "preferences", name, email)
        saved = await http.post(preferences, data={"topic": ["weekly", "offers"]})
        assert saved.status_code == 200
        gone = await http.post(preferences, data={"unsubscribe_all": "on"})
        assert gone.status_code == 200

    events = await _events(db, name, email)
    assert [e["subscription"]["source"] for e in events] == [
        "UnsubscribeFromOneClick",
        "UnsubscribeFromPreferencePage",
        "UnsubscribeFromPreferencePage",
    ]
    first = events[0]
    assert first["eventType"] == "Subscription" and first["emailAddress"] == email
    assert first["subscription"]["contactList"] == name
    assert first["subscription"]["oldTopicPreferences"]["topicSubscriptionStatus"][0] == {
        "topicName": "weekly",
        "subscriptionStatus": "OptIn",
    }
    assert first["subscription"]["newTopicPreferences"]["topicSubscriptionStatus"][0] == {
        "topicName": "weekly",
        "subscriptionStatus": "OptOut",
    }
    assert events[2]["subscription"]["newTopicPreferences"]["unsubscribeAll"] is True

    # The app that has an endpoint with the address has the same events in its event store.
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT event_type, attributes FROM events WHERE app_id = :a ORDER BY id"), {"a": app_id}
            )
        ).all()
    assert [r.event_type for r in rows] == ["_email.subscription"] * 3
    assert rows[0].attributes["contact_list"] == name
    assert rows[2].attributes["unsubscribe_all"] == "true"
    assert json.loads(rows[0].attributes["subscription"]) == first["subscription"]


async def test_contact_api_records_subscription_events(sesv2: Any, db: AsyncEngine) -> None:
    email = f"api-{uuid.uuid4().hex[:8]}@example.com"
    name = make_list(sesv2)
    sesv2.create_contact(ContactListName=name, EmailAddress=email, UnsubscribeAll=True)
    sesv2.update_contact(
        ContactListName=name,
        EmailAddress=email,
        UnsubscribeAll=False,
        TopicPreferences=[{"TopicName": "offers", "SubscriptionStatus": "OPT_IN"}],
    )
    # The same again changes nothing: no event.
    sesv2.update_contact(
        ContactListName=name,
        EmailAddress=email,
        TopicPreferences=[{"TopicName": "offers", "SubscriptionStatus": "OPT_IN"}],
    )
    plain = f"plain-{uuid.uuid4().hex[:8]}@example.com"
    sesv2.create_contact(ContactListName=name, EmailAddress=plain)

    events = await _events(db, name, email)
    assert [
        (e["subscription"]["source"], e["subscription"]["newTopicPreferences"]["unsubscribeAll"])
        for e in events
    ] == [
        ("CreateContact", True),
        ("UpdateContact", False),
    ]
    assert events[1]["subscription"]["newTopicPreferences"]["topicSubscriptionStatus"] == [
        {"topicName": "weekly", "subscriptionStatus": "OptIn"},
        {"topicName": "offers", "subscriptionStatus": "OptIn"},
    ]
    # A new contact with the defaults is no change of subscription.
    assert await _events(db, name, plain) == []
