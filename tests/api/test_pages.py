"""The unsubscribe and preference pages over HTTP (httpx), against the real API and Postgres."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.settings import Settings
from tests.support.api_server import boto3_client, serve_api
from tests.support.lists import make_list, page_url, stored_contact

# Unsubscribing from all suppresses an address account-wide: this module uses its own.
ADA = f"ada-{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[tuple[str, Settings]]:
    with serve_api(database_url, smtp_url="null://") as served:
        yield served


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture(scope="module")
def sesv2(api: tuple[str, Settings]) -> Any:
    return boto3_client("sesv2", api[0])


async def test_get_confirms_and_post_unsubscribes_from_the_topic(
    api: tuple[str, Settings], sesv2: Any, db: AsyncEngine, http: httpx.AsyncClient
) -> None:
    base, settings = api
    name = make_list(sesv2, ADA)
    url = page_url(base, settings, "unsubscribe", name, ADA, "weekly")
    page = await http.get(url)
    assert page.status_code == 200 and '<html lang="en">' in page.text
    assert "Weekly digest" in page.text and '<form method="post"' in page.text
    assert '<button type="submit">Unsubscribe</button>' in page.text
    # A GET (a mail scanner following the link) changes nothing.
    assert (await stored_contact(db, name, ADA)).topic_preferences == {}

    for _ in range(2):  # idempotent
        done = await http.post(url, content="List-Unsubscribe=One-Click")
        assert done.status_code == 200 and "You are unsubscribed" in done.text
        contact = await stored_contact(db, name, ADA)
        assert contact.topic_preferences == {"weekly": "OPT_OUT"} and contact.unsubscribe_all is False


async def test_one_click_without_topic_leaves_the_whole_list(
    api: tuple[str, Settings], sesv2: Any, db: AsyncEngine, http: httpx.AsyncClient
) -> None:
    base, settings = api
    name = make_list(sesv2)
    stranger = "not-yet-a-contact@example.com"
    response = await http.post(
        page_url(base, settings, "unsubscribe", name, stranger), data={"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    contact = await stored_contact(db, name, stranger)
    assert contact is not None and contact.unsubscribe_all is True


async def test_preferences_page_shows_and_saves_choices(
    api: tuple[str, Settings], sesv2: Any, db: AsyncEngine, http: httpx.AsyncClient
) -> None:
    base, settings = api
    name = make_list(sesv2, ADA)
    url = page_url(base, settings, "preferences", name, ADA)
    page = await http.get(url)
    assert (
        page.status_code == 200
        and '<html lang="en">' in page.text
        and "<h1>Email preferences</h1>" in page.text
    )
    assert "News from Example Ltd" in page.text and "The week&#x27;s best posts, every Monday" in page.text
    # Defaults: weekly ticked, offers not; every checkbox has its label.
    assert re.search(r'id="topic-0" name="topic" value="weekly" checked', page.text)
    assert re.search(r'id="topic-1" name="topic" value="offers">', page.text)
    for control in ("topic-0", "topic-1", "unsubscribe-all"):
        assert f'<label for="{control}">' in page.text

    saved = await http.post(url, data={"topic": "offers"})
    assert (
        saved.status_code == 200
        and "Your preferences are saved" in saved.text
        and "Special offers" in saved.text
    )
    contact = await stored_contact(db, name, ADA)
    assert (
        contact.topic_preferences == {"weekly": "OPT_OUT", "offers": "OPT_IN"} and not contact.unsubscribe_all
    )
    got = sesv2.get_contact(ContactListName=name, EmailAddress=ADA)
    assert got["TopicDefaultPreferences"] == []

    await http.post(url, data={"topic": ["weekly", "offers"], "unsubscribe_all": "on"})
    contact = await stored_contact(db, name, ADA)
    assert contact.unsubscribe_all is True
    assert 'id="unsubscribe-all" name="unsubscribe_all" value="on" checked' in (await http.get(url)).text


async def test_bad_links_get_a_clear_4xx_and_change_nothing(
    api: tuple[str, Settings], sesv2: Any, db: AsyncEngine, http: httpx.AsyncClient
) -> None:
    base, settings = api
    name = make_list(sesv2, ADA)
    good = page_url(base, settings, "unsubscribe", name, ADA)
    token = good.rsplit("/", 1)[1]
    tampered = f"{base}/u/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}"
    expired = page_url(
        base, settings, "unsubscribe", name, ADA, issued=datetime.now(UTC) - timedelta(days=61)
    )
    other_key = page_url(base, Settings(secret_access_key="someone-else"), "unsubscribe", name, ADA)
    preferences_as_unsubscribe = (
        f"{base}/u/" + page_url(base, settings, "preferences", name, ADA).rsplit("/", 1)[1]
    )
    cases = [(tampered, 400), (expired, 410), (other_key, 400), (preferences_as_unsubscribe, 400)]
    for url, status in cases:
        for response in (await http.get(url), await http.post(url, content="List-Unsubscribe=One-Click")):
            assert response.status_code == status, url
            assert "This link does not work" in response.text and '<html lang="en">' in response.text
    expired_preferences = page_url(
        base, settings, "preferences", name, ADA, issued=datetime.now(UTC) - timedelta(days=61)
    )
    assert (await http.post(expired_preferences, data={"unsubscribe_all": "on"})).status_code == 410
    contact = await stored_contact(db, name, ADA)
    assert contact.unsubscribe_all is False and contact.topic_preferences == {}

    sesv2.delete_contact_list(ContactListName=name)
    assert (await http.post(good, content="List-Unsubscribe=One-Click")).status_code == 404
    assert (await http.get(page_url(base, settings, "preferences", name, ADA))).status_code == 404
