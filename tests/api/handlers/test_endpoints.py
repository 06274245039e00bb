"""Endpoints and users through the handlers, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.state import AppState
from sojourn.store.endpoint_rows import endpoint_response, last_active, touch_active, upsert_endpoints
from tests.api.handlers import call, make_state, new_app

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def state(db: AsyncEngine) -> AppState:
    return make_state(db)


async def update(state: AppState, app_id: str, endpoint_id: str, **body: Any) -> dict[str, Any]:
    return await call(
        state, "UpdateEndpoint", ApplicationId=app_id, EndpointId=endpoint_id, EndpointRequest=body
    )


async def get(state: AppState, app_id: str, endpoint_id: str) -> dict[str, Any]:
    response = await call(state, "GetEndpoint", ApplicationId=app_id, EndpointId=endpoint_id)
    return dict(response["EndpointResponse"])


async def batch(state: AppState, app_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return await call(
        state, "UpdateEndpointsBatch", ApplicationId=app_id, EndpointBatchRequest={"Item": items}
    )


async def test_create_then_get_has_every_field(state: AppState) -> None:
    app_id = await new_app(state)
    answer = await update(
        state,
        app_id,
        "ep1",
        ChannelType="EMAIL",
        Address="ada@example.com",
        Attributes={"plan": ["pro"]},
        Metrics={"visits": 3.0},
        Demographic={"Timezone": "Europe/Paris", "Locale": "fr_FR"},
        Location={"Country": "FR", "City": "Paris", "Latitude": 48.9, "Longitude": 2.4},
        User={"UserId": "ada", "UserAttributes": {"FirstName": ["Ada"]}},
    )
    assert answer["MessageBody"]["Message"] == "Accepted"
    request_id = answer["MessageBody"]["RequestID"]

    endpoint = await get(state, app_id, "ep1")

    assert endpoint["Id"] == "ep1" and endpoint["ApplicationId"] == app_id
    assert endpoint["ChannelType"] == "EMAIL" and endpoint["Address"] == "ada@example.com"
    assert endpoint["EndpointStatus"] == "ACTIVE" and endpoint["OptOut"] == "NONE"
    assert endpoint["Attributes"] == {"plan": ["pro"]} and endpoint["Metrics"] == {"visits": 3.0}
    assert endpoint["Demographic"] == {"Timezone": "Europe/Paris", "Locale": "fr_FR"}
    assert endpoint["Location"]["Country"] == "FR"
    assert endpoint["User"] == {"UserId": "ada", "UserAttributes": {"FirstName": ["Ada"]}}
    assert endpoint["RequestId"] == request_id
    assert isinstance(endpoint["CohortId"], str) and 0 <= int(endpoint["CohortId"]) <= 99
    assert ISO.fullmatch(endpoint["CreationDate"]) and ISO.fullmatch(endpoint["EffectiveDate"])


async def test_partial_update_changes_only_given_fields(state: AppState) -> None:
    app_id = await new_app(state)
    await update(
        state,
        app_id,
        "ep1",
        ChannelType="EMAIL",
        Address="a@example.com",
        Attributes={"plan": ["pro"], "color": ["red"]},
        Demographic={"Timezone": "UTC", "Locale": "en_US"},
        OptOut="ALL",
    )
    before = await get(state, app_id, "ep1")

    await update(
        state,
        app_id,
        "ep1",
        Attributes={"color": ["blue", "green"], "plan": []},
        Demographic={"Locale": "de_DE"},
    )
    after = await get(state, app_id, "ep1")

    assert after["Attributes"] == {"color": ["blue", "green"]}  # [] removes an attribute
    assert after["Demographic"] == {"Timezone": "UTC", "Locale": "de_DE"}
    assert (
        after["Address"] == "a@example.com" and after["ChannelType"] == "EMAIL" and after["OptOut"] == "ALL"
    )
    assert after["CohortId"] == before["CohortId"] and after["CreationDate"] == before["CreationDate"]
    assert after["RequestId"] != before["RequestId"]


async def test_update_reactivates_and_effective_date_is_stored(state: AppState) -> None:
    app_id = await new_app(state)
    await update(state, app_id, "ep1", Address="x@example.com", EndpointStatus="INACTIVE")
    assert (await get(state, app_id, "ep1"))["EndpointStatus"] == "INACTIVE"

    await update(state, app_id, "ep1", EffectiveDate="2026-01-02T03:04:05Z", RequestId="mine")

    endpoint = await get(state, app_id, "ep1")
    assert endpoint["EndpointStatus"] == "ACTIVE"
    assert endpoint["EffectiveDate"] == "2026-01-02T03:04:05.000Z" and endpoint["RequestId"] == "mine"


async def test_same_address_leaves_one_active_endpoint(state: AppState) -> None:
    app_id = await new_app(state)
    await update(state, app_id, "old", ChannelType="EMAIL", Address="same@example.com")
    await update(state, app_id, "other", ChannelType="EMAIL", Address="other@example.com")

    await update(state, app_id, "new", ChannelType="EMAIL", Address="same@example.com")

    assert (await get(state, app_id, "old"))["EndpointStatus"] == "INACTIVE"
    assert (await get(state, app_id, "new"))["EndpointStatus"] == "ACTIVE"
    assert (await get(state, app_id, "other"))["EndpointStatus"] == "ACTIVE"


async def test_same_address_in_one_batch_the_last_one_wins(state: AppState) -> None:
    app_id = await new_app(state)
    await batch(state, app_id, [{"Id": f"e{i}", "Address": "dup@example.com"} for i in range(3)])

    statuses = [(await get(state, app_id, f"e{i}"))["EndpointStatus"] for i in range(3)]
    assert statuses == ["INACTIVE", "INACTIVE", "ACTIVE"]


async def test_same_address_in_another_app_is_untouched(state: AppState) -> None:
    first, second = await new_app(state), await new_app(state)
    await update(state, first, "e", Address="shared@example.com")
    await update(state, second, "e", Address="shared@example.com")

    assert (await get(state, first, "e"))["EndpointStatus"] == "ACTIVE"


async def test_user_attributes_are_synced_across_the_users_endpoints(state: AppState) -> None:
    app_id = await new_app(state)
    await update(
        state,
        app_id,
        "mail",
        ChannelType="EMAIL",
        Address="u@example.com",
        User={"UserId": "u1", "UserAttributes": {"FirstName": ["Ada"]}},
    )
    await update(
        state,
        app_id,
        "sms",
        ChannelType="SMS",
        Address="+12065550100",
        User={"UserId": "u1", "UserAttributes": {"Plan": ["pro"]}},
    )
    # Joining the user without attributes adopts the user's attributes.
    await update(state, app_id, "push", ChannelType="GCM", Address="token", User={"UserId": "u1"})

    expected = {"FirstName": ["Ada"], "Plan": ["pro"]}
    for endpoint_id in ("mail", "sms", "push"):
        assert (await get(state, app_id, endpoint_id))["User"] == {"UserId": "u1", "UserAttributes": expected}

    users = await call(state, "GetUserEndpoints", ApplicationId=app_id, UserId="u1")
    assert [e["Id"] for e in users["EndpointsResponse"]["Item"]] == ["mail", "sms", "push"]


async def test_user_attribute_removal_is_synced(state: AppState) -> None:
    app_id = await new_app(state)
    await batch(
        state,
        app_id,
        [
            {"Id": "a", "User": {"UserId": "u", "UserAttributes": {"Keep": ["1"], "Drop": ["2"]}}},
            {"Id": "b", "User": {"UserId": "u"}},
        ],
    )
    await update(state, app_id, "a", User={"UserAttributes": {"Drop": []}})

    assert (await get(state, app_id, "b"))["User"]["UserAttributes"] == {"Keep": ["1"]}


async def test_leaving_a_user_drops_its_attributes(state: AppState) -> None:
    app_id = await new_app(state)
    await batch(
        state,
        app_id,
        [
            {"Id": "a", "User": {"UserId": "u", "UserAttributes": {"Team": ["x"]}}},
            {"Id": "b", "User": {"UserId": "u"}},
        ],
    )

    await update(state, app_id, "b", User={"UserId": "", "UserAttributes": {"Own": ["y"]}})

    assert (await get(state, app_id, "b"))["User"] == {"UserAttributes": {"Own": ["y"]}}
    assert (await get(state, app_id, "a"))["User"] == {"UserId": "u", "UserAttributes": {"Team": ["x"]}}
    users = await call(state, "GetUserEndpoints", ApplicationId=app_id, UserId="u")
    assert [e["Id"] for e in users["EndpointsResponse"]["Item"]] == ["a"]


async def test_concurrent_batches_on_shared_users_and_addresses(state: AppState) -> None:
    """Writers that overlap in endpoints, users and addresses neither deadlock nor lose a user attribute."""
    app_id = await new_app(state)
    writers, rounds = 6, 4

    async def writer(n: int) -> None:
        for r in range(rounds):
            items = [
                {
                    "Id": f"e{(n + k) % 8}",
                    "Address": f"shared{(n + k) % 3}@x.com",
                    "User": {"UserId": "u", "UserAttributes": {f"w{n}": [str(r)]}},
                }
                for k in range(3)
            ]
            await batch(state, app_id, items)

    await asyncio.gather(*(writer(n) for n in range(writers)))

    endpoints = (await call(state, "GetUserEndpoints", ApplicationId=app_id, UserId="u"))[
        "EndpointsResponse"
    ]["Item"]
    expected = {f"w{n}": [str(rounds - 1)] for n in range(writers)}
    assert len(endpoints) == 8 and all(e["User"]["UserAttributes"] == expected for e in endpoints)
    for address in ("shared0@x.com", "shared1@x.com", "shared2@x.com"):
        active = [e["Id"] for e in endpoints if e["Address"] == address and e["EndpointStatus"] == "ACTIVE"]
        assert len(active) <= 1, (address, active)


async def test_a_user_has_at_most_15_endpoints(state: AppState) -> None:
    app_id = await new_app(state)
    await batch(
        state,
        app_id,
        [
            {"Id": f"e{i}", "ChannelType": "EMAIL", "Address": f"{i}@x.com", "User": {"UserId": "big"}}
            for i in range(15)
        ],
    )

    with pytest.raises(BadRequestError, match=r"User big would have 16 endpoints; a user has at most 15"):
        await update(state, app_id, "e15", ChannelType="EMAIL", Address="15@x.com", User={"UserId": "big"})

    # Updating an endpoint that is already the user's is fine.
    await update(state, app_id, "e3", Attributes={"x": ["y"]}, User={"UserId": "big"})
    with pytest.raises(NotFoundError):
        await get(state, app_id, "e15")


async def test_a_16th_push_endpoint_retires_the_oldest_push_endpoint(state: AppState) -> None:
    app_id = await new_app(state)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items = [
        {
            "Id": f"p{i}",
            "ChannelType": "GCM" if i < 2 else "EMAIL",
            "Address": f"t{i}",
            "EffectiveDate": (start + timedelta(days=i)).isoformat(),
            "User": {"UserId": "phone"},
        }
        for i in range(15)
    ]
    await batch(state, app_id, items)

    await update(state, app_id, "p15", ChannelType="APNS", Address="t15", User={"UserId": "phone"})

    oldest = await get(state, app_id, "p0")
    assert oldest["EndpointStatus"] == "INACTIVE" and "User" not in oldest
    assert (await get(state, app_id, "p1"))["User"]["UserId"] == "phone"
    users = await call(state, "GetUserEndpoints", ApplicationId=app_id, UserId="phone")
    assert len(users["EndpointsResponse"]["Item"]) == 15


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Attributes": {"a": ["x" * 101]}}, r"at most 100 are allowed"),
        ({"Attributes": {"a": [str(i) for i in range(51)]}}, r"51 values; an attribute has at most 50"),
        ({"Attributes": {"n" * 51: ["x"]}}, r"must be 1-50 characters"),
        ({"User": {"UserAttributes": {"a": ["x" * 101]}}}, r"User\.UserAttributes\.a"),
        ({"ChannelType": "PIGEON"}, r"ChannelType must be one of .*EMAIL.*not 'PIGEON'"),
        ({"EndpointStatus": "GONE"}, r"EndpointStatus must be one of ACTIVE, INACTIVE"),
        ({"OptOut": "SOME"}, r"OptOut must be one of ALL, NONE"),
        ({"EffectiveDate": "yesterday"}, r"EffectiveDate: 'yesterday' is not an ISO-8601"),
        ({"Metrics": {"m": float("nan")}}, r"a metric must be a finite number"),
        ({"Location": {"Latitude": 91.0}}, r"Latitude must be between -90 and 90"),
        ({"Attributes": {f"k{i}": ["v" * 100] * 50 for i in range(5)}}, r"an endpoint is at most 15 KB"),
    ],
)
async def test_invalid_endpoint_is_refused_with_the_reason(
    state: AppState, body: dict[str, Any], message: str
) -> None:
    app_id = await new_app(state)
    with pytest.raises(BadRequestError, match=message):
        await update(state, app_id, "bad", **body)
    with pytest.raises(NotFoundError):
        await get(state, app_id, "bad")


async def test_at_most_250_attribute_keys_per_app(state: AppState) -> None:
    app_id = await new_app(state)
    await update(
        state,
        app_id,
        "a",
        Attributes={f"a{i}": ["x"] for i in range(100)},
        Metrics={f"m{i}": 1.0 for i in range(100)},
    )
    await update(state, app_id, "b", User={"UserAttributes": {f"u{i}": ["x"] for i in range(50)}})
    await update(state, app_id, "c", Attributes={"a1": ["reused"]})  # known keys don't count again

    with pytest.raises(BadRequestError, match=r"would have 251 endpoint attribute keys.*at most 250"):
        await update(state, app_id, "d", Attributes={"one_too_many": ["x"]})


async def test_batch_is_all_or_nothing(state: AppState) -> None:
    app_id = await new_app(state)
    items = [{"Id": f"ok{i}", "Address": f"{i}@x.com"} for i in range(5)] + [{"Id": "bad", "OptOut": "MAYBE"}]

    with pytest.raises(BadRequestError, match="OptOut"):
        await batch(state, app_id, items)
    with pytest.raises(NotFoundError):
        await get(state, app_id, "ok0")


async def test_batch_limits(state: AppState) -> None:
    app_id = await new_app(state)
    with pytest.raises(BadRequestError, match=r"101 endpoints; UpdateEndpointsBatch takes at most 100"):
        await batch(state, app_id, [{"Id": f"e{i}"} for i in range(101)])
    with pytest.raises(BadRequestError, match=r"Item\[1\]\.Id is required"):
        await batch(state, app_id, [{"Id": "e0"}, {"Address": "x@y.z"}])


async def test_batch_applies_repeated_ids_in_order(state: AppState) -> None:
    app_id = await new_app(state)
    await batch(
        state,
        app_id,
        [
            {"Id": "e", "Address": "first@x.com", "Attributes": {"a": ["1"]}},
            {"Id": "e", "Attributes": {"b": ["2"]}, "OptOut": "ALL"},
        ],
    )

    endpoint = await get(state, app_id, "e")
    assert endpoint["Address"] == "first@x.com" and endpoint["OptOut"] == "ALL"
    assert endpoint["Attributes"] == {"a": ["1"], "b": ["2"]}


async def test_batch_is_set_based(state: AppState, db: AsyncEngine) -> None:
    """A 100-item batch costs the same number of statements as a 1-item batch."""
    app_id = await new_app(state)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def item(i: int) -> dict[str, Any]:
        return {
            "Id": f"e{i}",
            "Address": f"{i}@x.com",
            "Attributes": {"a": ["b"]},
            "User": {"UserId": f"u{i % 7}", "UserAttributes": {"n": [str(i)]}},
        }

    event.listen(db.sync_engine, "before_cursor_execute", count)
    try:
        await batch(state, app_id, [item(0)])
        one = len(statements)
        statements.clear()
        await batch(state, app_id, [item(i) for i in range(100)])
        hundred = len(statements)
    finally:
        event.remove(db.sync_engine, "before_cursor_execute", count)
    assert hundred == one, statements
    assert (
        len(
            (await call(state, "GetUserEndpoints", ApplicationId=app_id, UserId="u3"))["EndpointsResponse"][
                "Item"
            ]
        )
        == 14
    )


async def test_unknown_app_endpoint_and_user_are_not_found(state: AppState) -> None:
    app_id = await new_app(state)
    with pytest.raises(NotFoundError, match="Application nope not found"):
        await update(state, "nope", "e", Address="x@y.z")
    with pytest.raises(NotFoundError, match="Application nope not found"):
        await get(state, "nope", "e")
    with pytest.raises(NotFoundError, match=f"Endpoint missing not found in application {app_id}"):
        await get(state, app_id, "missing")
    with pytest.raises(NotFoundError, match="Endpoint missing not found"):
        await call(state, "DeleteEndpoint", ApplicationId=app_id, EndpointId="missing")
    with pytest.raises(NotFoundError, match="User ghost not found"):
        await call(state, "GetUserEndpoints", ApplicationId=app_id, UserId="ghost")
    with pytest.raises(NotFoundError, match="User ghost not found"):
        await call(state, "DeleteUserEndpoints", ApplicationId=app_id, UserId="ghost")


async def test_delete_endpoint_returns_it(state: AppState) -> None:
    app_id = await new_app(state)
    await update(state, app_id, "e", Address="gone@example.com")

    deleted = await call(state, "DeleteEndpoint", ApplicationId=app_id, EndpointId="e")

    assert deleted["EndpointResponse"]["Address"] == "gone@example.com"
    with pytest.raises(NotFoundError):
        await get(state, app_id, "e")


async def test_delete_user_endpoints_returns_them(state: AppState) -> None:
    app_id = await new_app(state)
    await batch(
        state,
        app_id,
        [{"Id": "a", "User": {"UserId": "u"}}, {"Id": "b", "User": {"UserId": "u"}}, {"Id": "c"}],
    )

    deleted = await call(state, "DeleteUserEndpoints", ApplicationId=app_id, UserId="u")

    assert [e["Id"] for e in deleted["EndpointsResponse"]["Item"]] == ["a", "b"]
    assert (await get(state, app_id, "c"))["Id"] == "c"
    with pytest.raises(NotFoundError):
        await call(state, "GetUserEndpoints", ApplicationId=app_id, UserId="u")


async def test_upsert_and_touch_active_for_other_callers(state: AppState, db: AsyncEngine) -> None:
    app_id = await new_app(state)
    early, late = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    async with db.begin() as conn:
        await upsert_endpoints(
            conn, app_id, [("e", {"ChannelType": "EMAIL", "Address": "e@x.com"})], request_id=None
        )
        await touch_active(conn, app_id, ["e", "unknown"], late)
        await touch_active(conn, app_id, ["e"], early)  # never moves back
        row = (await conn.execute(text("SELECT * FROM endpoints WHERE app_id = :a"), {"a": app_id})).one()
        assert await last_active(conn, app_id, "e") == late
        assert await last_active(conn, app_id, "unknown") is None

    response = endpoint_response(row._mapping)
    assert response["Id"] == "e" and "RequestId" not in response and "Attributes" not in response
