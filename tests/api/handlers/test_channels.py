"""The email channel through the handlers, against a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.state import AppState
from sojourn.store.templates_repo import email_channel
from tests.api.handlers import call, make_state, new_app

REQUEST = {"FromAddress": "Team <team@sojourn.test>", "Identity": "sojourn.test", "Enabled": True}


@pytest.fixture
def state(db: AsyncEngine) -> AppState:
    return make_state(db)


async def put(state: AppState, app_id: str, **request: Any) -> dict[str, Any]:
    response = await call(state, "UpdateEmailChannel", ApplicationId=app_id, EmailChannelRequest=request)
    return dict(response["EmailChannelResponse"])


async def test_update_then_get(state: AppState) -> None:
    app_id = await new_app(state)
    created = await put(state, app_id, **REQUEST, ConfigurationSet="tracking")

    assert created["ApplicationId"] == app_id and created["Platform"] == "EMAIL" and created["Id"] == "email"
    assert created["FromAddress"] == "Team <team@sojourn.test>" and created["Identity"] == "sojourn.test"
    assert created["ConfigurationSet"] == "tracking"
    assert created["Enabled"] is True and created["Version"] == 1
    assert created["IsArchived"] is False and created["HasCredential"] is True
    assert created["MessagesPerSecond"] > 0
    assert created["CreationDate"].endswith("Z") and created["LastModifiedDate"].endswith("Z")

    fetched = await call(state, "GetEmailChannel", ApplicationId=app_id)
    assert fetched["EmailChannelResponse"] == created


async def test_update_bumps_version_and_keeps_enabled_when_omitted(state: AppState, db: AsyncEngine) -> None:
    app_id = await new_app(state)
    await put(state, app_id, **{**REQUEST, "Enabled": False})

    updated = await put(state, app_id, FromAddress="new@sojourn.test", Identity="sojourn.test")

    assert updated["Version"] == 2 and updated["Enabled"] is False
    assert updated["FromAddress"] == "new@sojourn.test" and "ConfigurationSet" not in updated
    async with db.connect() as conn:
        channel = await email_channel(conn, app_id)
    assert (
        channel is not None and channel["FromAddress"] == "new@sojourn.test" and channel["Enabled"] is False
    )


async def test_delete(state: AppState, db: AsyncEngine) -> None:
    app_id = await new_app(state)
    await put(state, app_id, **REQUEST)

    deleted = await call(state, "DeleteEmailChannel", ApplicationId=app_id)

    assert deleted["EmailChannelResponse"]["FromAddress"] == REQUEST["FromAddress"]
    async with db.connect() as conn:
        assert await email_channel(conn, app_id) is None
    with pytest.raises(
        NotFoundError, match=f"Application {app_id} has no email channel; create it with UpdateEmailChannel"
    ):
        await call(state, "GetEmailChannel", ApplicationId=app_id)
    with pytest.raises(NotFoundError, match="has no email channel"):
        await call(state, "DeleteEmailChannel", ApplicationId=app_id)


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (
            {"FromAddress": "not-an-address", "Identity": "x"},
            r"FromAddress 'not-an-address' is not an email address",
        ),
        ({"FromAddress": "a@b.c", "Identity": "  "}, r"Identity is required"),
    ],
)
async def test_invalid_request(state: AppState, request_body: dict[str, Any], message: str) -> None:
    app_id = await new_app(state)
    with pytest.raises(BadRequestError, match=message):
        await put(state, app_id, **request_body)


async def test_unknown_app(state: AppState) -> None:
    for operation, params in (
        ("UpdateEmailChannel", {"EmailChannelRequest": REQUEST}),
        ("GetEmailChannel", {}),
        ("DeleteEmailChannel", {}),
    ):
        with pytest.raises(NotFoundError, match="Application missing-app not found"):
            await call(state, operation, ApplicationId="missing-app", **params)
