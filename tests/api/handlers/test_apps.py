"""Applications through the handlers, against a real PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.state import AppState
from tests.api.handlers import call, make_state, new_app


@pytest.fixture
def state(db: AsyncEngine) -> AppState:
    return make_state(db)


async def test_create_and_get(state: AppState) -> None:
    created = await call(
        state, "CreateApp", CreateApplicationRequest={"Name": "shop", "tags": {"env": "test"}}
    )

    app = created["ApplicationResponse"]
    assert re.fullmatch(r"[0-9a-f]{32}", app["Id"])
    assert app["Arn"] == f"arn:aws:mobiletargeting:us-east-1:000000000000:apps/{app['Id']}"
    assert app["Name"] == "shop" and app["tags"] == {"env": "test"}
    assert app["CreationDate"].endswith("Z")
    assert (await call(state, "GetApp", ApplicationId=app["Id"]))["ApplicationResponse"] == app


async def test_invalid_create(state: AppState) -> None:
    with pytest.raises(BadRequestError, match="Name is required"):
        await call(state, "CreateApp", CreateApplicationRequest={"Name": "  "})
    with pytest.raises(BadRequestError, match="at most 50"):
        await call(
            state,
            "CreateApp",
            CreateApplicationRequest={"Name": "x", "tags": {str(i): "v" for i in range(51)}},
        )


async def test_unknown_app_is_not_found(state: AppState) -> None:
    with pytest.raises(NotFoundError, match="Application 0123 not found"):
        await call(state, "GetApp", ApplicationId="0123")
    with pytest.raises(NotFoundError, match="Application 0123 not found"):
        await call(state, "DeleteApp", ApplicationId="0123")


async def test_get_apps_pages_in_creation_order(state: AppState) -> None:
    mine = [await new_app(state, f"page{i}") for i in range(5)]
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params = {"PageSize": "2", **({"Token": token} if token else {})}
        page = (await call(state, "GetApps", **params))["ApplicationsResponse"]
        assert len(page["Item"]) <= 2
        seen += [a["Id"] for a in page["Item"]]
        pages += 1
        token = page.get("NextToken")
        if token is None:
            break
    assert len(seen) == len(set(seen)) and pages >= 3
    assert [a for a in seen if a in mine] == mine


async def test_get_apps_refuses_bad_paging(state: AppState) -> None:
    with pytest.raises(BadRequestError, match="PageSize must be a positive whole number"):
        await call(state, "GetApps", PageSize="lots")
    with pytest.raises(BadRequestError, match="Token is not a NextToken returned by GetApps"):
        await call(state, "GetApps", Token="garbage!")


async def test_delete_app_returns_it_and_removes_everything(state: AppState, db: AsyncEngine) -> None:
    app_id = await new_app(state, "doomed")
    await call(
        state,
        "UpdateEndpoint",
        ApplicationId=app_id,
        EndpointId="e",
        EndpointRequest={"Address": "a@b.c", "Attributes": {"plan": ["pro"]}},
    )
    await call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "a@b.c", "Identity": "b.c"},
    )
    await call(state, "CreateSegment", ApplicationId=app_id, WriteSegmentRequest={"Name": "all"})
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO events (app_id, endpoint_id, event_id, event_type, occurred_at) VALUES (:a, 'e', '1', 'x', :t)"
            ),
            {"a": app_id, "t": datetime.now(UTC)},
        )

    deleted = await call(state, "DeleteApp", ApplicationId=app_id)

    assert (
        deleted["ApplicationResponse"]["Id"] == app_id and deleted["ApplicationResponse"]["Name"] == "doomed"
    )
    with pytest.raises(NotFoundError):
        await call(state, "GetApp", ApplicationId=app_id)
    async with db.connect() as conn:
        for table in ("endpoints", "channels", "segments", "segment_versions", "events"):
            count = await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE app_id = :a"), {"a": app_id})
            assert count == 0, table


async def test_application_settings_round_trip_and_merge(state: AppState) -> None:
    app_id = await new_app(state, "settings")
    empty = (await call(state, "GetApplicationSettings", ApplicationId=app_id))["ApplicationSettingsResource"]
    assert empty == {"ApplicationId": app_id}

    await call(
        state,
        "UpdateApplicationSettings",
        ApplicationId=app_id,
        WriteApplicationSettingsRequest={
            "Limits": {"Daily": 3, "MessagesPerSecond": 50},
            "QuietTime": {"Start": "22:00", "End": "07:30"},
        },
    )
    updated = await call(
        state,
        "UpdateApplicationSettings",
        ApplicationId=app_id,
        WriteApplicationSettingsRequest={"JourneyLimits": {"TimeframeCap": {"Cap": 5, "Days": 7}}},
    )
    got = updated["ApplicationSettingsResource"]
    assert got["Limits"] == {"Daily": 3, "MessagesPerSecond": 50}, "members left out are kept"
    assert got["QuietTime"] == {"Start": "22:00", "End": "07:30"}
    assert got["JourneyLimits"] == {"TimeframeCap": {"Cap": 5, "Days": 7}}
    assert got["LastModifiedDate"].endswith("Z")
    again = await call(state, "GetApplicationSettings", ApplicationId=app_id)
    assert again["ApplicationSettingsResource"] == got


async def test_application_settings_keep_the_attribute_key_registry(state: AppState, db: AsyncEngine) -> None:
    app_id = await new_app(state, "registry")
    async with db.begin() as conn:
        await conn.execute(
            text('UPDATE apps SET settings = \'{"endpoint_attribute_keys": ["plan"]}\' WHERE id = :a'),
            {"a": app_id},
        )
    await call(
        state,
        "UpdateApplicationSettings",
        ApplicationId=app_id,
        WriteApplicationSettingsRequest={"Limits": {"Total": 10}},
    )
    async with db.connect() as conn:
        stored = (
            await conn.execute(text("SELECT settings FROM apps WHERE id = :a"), {"a": app_id})
        ).scalar_one()
    assert stored["endpoint_attribute_keys"] == ["plan"]
    assert stored["application"]["Limits"] == {"Total": 10}


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"Limits": {"Daily": 101}}, r"Limits\.Daily: .*less than or equal to 100"),
        ({"Limits": {"MaximumDuration": 10}}, r"Limits\.MaximumDuration: .*greater than or equal to 60"),
        ({"QuietTime": {"Start": "25:00", "End": "07:00"}}, r"QuietTime\.Start must be a 24-hour time HH:MM"),
        ({"QuietTime": {"Start": "22:00"}}, "QuietTime needs both Start and End"),
        ({"JourneyLimits": {"TimeframeCap": {"Cap": 5, "Days": 31}}}, r"TimeframeCap\.Days"),
        ({"CampaignHook": {"Mode": "FILTER"}}, "FILTER needs LambdaFunctionName"),
        ({"CampaignHook": {"Mode": "SOMETIMES"}}, r"CampaignHook\.Mode"),
    ],
)
async def test_invalid_application_settings(
    state: AppState, request_body: dict[str, object], message: str
) -> None:
    app_id = await new_app(state, "badsettings")
    with pytest.raises(BadRequestError, match=message):
        await call(
            state,
            "UpdateApplicationSettings",
            ApplicationId=app_id,
            WriteApplicationSettingsRequest=request_body,
        )


async def test_settings_of_unknown_app(state: AppState) -> None:
    with pytest.raises(NotFoundError, match="Application nope not found"):
        await call(state, "GetApplicationSettings", ApplicationId="nope")
