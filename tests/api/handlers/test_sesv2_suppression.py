"""The SESv2 suppression list through a real boto3 sesv2 client over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.settings import Settings
from sojourn.store.db import create_engine
from tests.support.api_server import boto3_client, serve

KEY, SECRET = "SOJOURNSESKEY", "sojourn-ses-secret"


@pytest.fixture(scope="module")
def sesv2(database_url: str) -> Iterator[Any]:
    settings = Settings(access_key_id=KEY, secret_access_key=SECRET, database_url=database_url)
    state = AppState(db=create_engine(database_url, pool_size=2), settings=settings)
    with serve(create_app(settings, state)) as url:
        yield boto3_client("sesv2", url, KEY, SECRET)


def _address() -> str:
    return f"{uuid.uuid4().hex[:10]}@Example.com"


def test_put_get_list_delete(sesv2: Any) -> None:
    bounced, complained = _address(), _address()
    before = datetime.now(UTC) - timedelta(seconds=1)
    sesv2.put_suppressed_destination(EmailAddress=bounced, Reason="BOUNCE")
    sesv2.put_suppressed_destination(EmailAddress=complained, Reason="COMPLAINT")

    got = sesv2.get_suppressed_destination(EmailAddress=bounced)["SuppressedDestination"]
    assert got["EmailAddress"] == bounced.lower() and got["Reason"] == "BOUNCE"
    assert got["LastUpdateTime"] >= before
    # Case-insensitive, as SES.
    assert (
        sesv2.get_suppressed_destination(EmailAddress=bounced.upper())["SuppressedDestination"]["Reason"]
        == "BOUNCE"
    )

    sesv2.put_suppressed_destination(EmailAddress=bounced, Reason="COMPLAINT")
    assert (
        sesv2.get_suppressed_destination(EmailAddress=bounced)["SuppressedDestination"]["Reason"]
        == "COMPLAINT"
    )

    listed = sesv2.list_suppressed_destinations(Reasons=["COMPLAINT"], StartDate=before)
    addresses = {s["EmailAddress"] for s in listed["SuppressedDestinationSummaries"]}
    assert {bounced.lower(), complained.lower()} <= addresses
    assert all(s["Reason"] == "COMPLAINT" for s in listed["SuppressedDestinationSummaries"])

    sesv2.delete_suppressed_destination(EmailAddress=bounced)
    with pytest.raises(sesv2.exceptions.NotFoundException, match="does not exist on your suppression list"):
        sesv2.get_suppressed_destination(EmailAddress=bounced)
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.delete_suppressed_destination(EmailAddress=bounced)


def test_list_pages_with_next_token_and_dates(sesv2: Any) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    mine = [_address() for _ in range(5)]
    for address in mine:
        sesv2.put_suppressed_destination(EmailAddress=address, Reason="BOUNCE")
    end = datetime.now(UTC) + timedelta(seconds=1)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"StartDate": start, "EndDate": end, "PageSize": 2, "Reasons": ["BOUNCE"]}
        if token:
            kwargs["NextToken"] = token
        page = sesv2.list_suppressed_destinations(**kwargs)
        pages += 1
        assert len(page["SuppressedDestinationSummaries"]) <= 2
        seen += [s["EmailAddress"] for s in page["SuppressedDestinationSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert {a.lower() for a in mine} <= set(seen)
    assert len(seen) == len(set(seen)) and pages >= 3
    old = sesv2.list_suppressed_destinations(EndDate=start - timedelta(days=1))
    assert not {a.lower() for a in mine} & {s["EmailAddress"] for s in old["SuppressedDestinationSummaries"]}


def test_bad_requests(sesv2: Any) -> None:
    with pytest.raises(sesv2.exceptions.BadRequestException, match="not a valid email address"):
        sesv2.put_suppressed_destination(EmailAddress="nobody", Reason="BOUNCE")
    with pytest.raises(sesv2.exceptions.BadRequestException, match="BOUNCE"):
        sesv2.put_suppressed_destination(EmailAddress=_address(), Reason="SPAM")
    with pytest.raises(sesv2.exceptions.BadRequestException, match="PageSize"):
        sesv2.list_suppressed_destinations(PageSize=5000)
    with pytest.raises(sesv2.exceptions.InvalidNextTokenException):
        sesv2.list_suppressed_destinations(NextToken="garbage!")


def test_account_suppression_attributes(sesv2: Any) -> None:
    try:
        sesv2.put_account_suppression_attributes(SuppressedReasons=["COMPLAINT"])
        assert sesv2.get_account()["SuppressionAttributes"]["SuppressedReasons"] == ["COMPLAINT"]
        with pytest.raises(sesv2.exceptions.BadRequestException, match="BOUNCE, COMPLAINT"):
            sesv2.put_account_suppression_attributes(SuppressedReasons=["BOUNCY"])
    finally:
        sesv2.put_account_suppression_attributes(SuppressedReasons=["BOUNCE", "COMPLAINT"])
    assert sesv2.get_account()["SuppressionAttributes"]["SuppressedReasons"] == ["BOUNCE", "COMPLAINT"]
