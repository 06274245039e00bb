"""The pages in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), with no JavaScript help.

CI installs chromium (see .ci/run); on a machine without it these tests skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.settings import Settings
from tests.support.api_server import boto3_client, serve_api
from tests.support.lists import make_list, page_url, stored_contact

CHROMIUM = Path(os.environ.get("SOJOURN_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[tuple[str, Settings]]:
    with serve_api(database_url, smtp_url="null://") as served:
        yield served


@pytest.fixture(scope="module")
def sesv2(api: tuple[str, Settings]) -> Any:
    return boto3_client("sesv2", api[0])


@pytest_asyncio.fixture
async def page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # No JavaScript: the pages must work as plain HTML forms.
        context = await browser.new_context(java_script_enabled=False)
        try:
            yield await context.new_page()
        finally:
            await context.close()
            await browser.close()


async def test_preferences_untick_a_topic_and_save(
    api: tuple[str, Settings], sesv2: Any, db: AsyncEngine, page: Any
) -> None:
    base, settings = api
    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
    name = make_list(sesv2, email)
    await page.goto(page_url(base, settings, "preferences", name, email))
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.get_by_role("heading", level=1).inner_text() == "Email preferences"
    weekly = page.get_by_label("Weekly digest")
    offers = page.get_by_label("Special offers")
    assert await weekly.is_checked() and not await offers.is_checked()
    assert await page.get_by_text("The week's best posts, every Monday").is_visible()

    await weekly.uncheck()
    await offers.check()
    await page.get_by_role("button", name="Save preferences").click()
    await page.wait_for_load_state()
    assert await page.get_by_role("heading", level=1).inner_text() == "Your preferences are saved"
    contact = await stored_contact(db, name, email)
    assert contact.topic_preferences == {"weekly": "OPT_OUT", "offers": "OPT_IN"}
    assert contact.unsubscribe_all is False

    await page.get_by_role("link", name="Change them again").click()
    await page.get_by_label("Unsubscribe from all email from this list").check()
    await page.get_by_role("button", name="Save preferences").click()
    await page.wait_for_load_state()
    assert "unsubscribed from all" in await page.locator("main").inner_text()
    assert (await stored_contact(db, name, email)).unsubscribe_all is True


async def test_unsubscribe_confirmation_button(
    api: tuple[str, Settings], sesv2: Any, db: AsyncEngine, page: Any
) -> None:
    base, settings = api
    email = f"clicker-{uuid.uuid4().hex[:8]}@example.com"
    name = make_list(sesv2, email)
    await page.goto(page_url(base, settings, "unsubscribe", name, email, "weekly"))
    assert await page.get_by_role("heading", level=1).inner_text() == "Unsubscribe"
    assert (await stored_contact(db, name, email)).topic_preferences == {}  # opening the page changed nothing
    await page.get_by_role("button", name="Unsubscribe").click()
    await page.wait_for_load_state()
    assert await page.get_by_role("heading", level=1).inner_text() == "You are unsubscribed"
    contact = await stored_contact(db, name, email)
    assert contact.topic_preferences == {"weekly": "OPT_OUT"} and contact.unsubscribe_all is False

    await page.get_by_role("link", name="Manage your email preferences").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Email preferences"
    assert not await page.get_by_label("Weekly digest").is_checked()
