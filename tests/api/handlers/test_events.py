"""PutEvents: per-item results, endpoint upserts, and nothing lost of what was accepted."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.state import AppState
from sojourn.settings import Settings
from tests.support.seed import call

STAMP = "2026-11-23T10:00:00Z"


async def test_items_are_answered_one_by_one(db: AsyncEngine) -> None:
    state = AppState(db=db, settings=Settings())
    app_id = (await call(state, "CreateApp", CreateApplicationRequest={"Name": "events"}))[
        "ApplicationResponse"
    ]["Id"]
    batch = {
        "good": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": "good@example.com"},
            "Events": {
                "e1": {"EventType": "signup", "Timestamp": STAMP},
                "e2": {"EventType": "", "Timestamp": STAMP},
            },
        },
        "bad": {
            "Endpoint": {"ChannelType": "EMAIL", "Attributes": {"plan": ["x" * 101]}},
            "Events": {"e3": {"EventType": "signup", "Timestamp": STAMP}},
        },
    }
    out = await call(state, "PutEvents", ApplicationId=app_id, EventsRequest={"BatchItem": batch})
    results = out["EventsResponse"]["Results"]
    assert results["good"]["EndpointItemResponse"] == {"StatusCode": 202, "Message": "Accepted"}
    assert results["good"]["EventsItemResponse"]["e1"] == {"StatusCode": 202, "Message": "Accepted"}
    assert results["good"]["EventsItemResponse"]["e2"] == {
        "StatusCode": 400,
        "Message": "EventType is required",
    }
    assert results["bad"]["EndpointItemResponse"]["StatusCode"] == 400
    assert "plan" in results["bad"]["EndpointItemResponse"]["Message"]
    assert results["bad"]["EventsItemResponse"]["e3"]["StatusCode"] == 400
    async with db.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT endpoint_id, event_type FROM events WHERE app_id = :a"), {"a": app_id}
            )
        ).all()
        endpoint = await call(state, "GetEndpoint", ApplicationId=app_id, EndpointId="good")
    assert stored == [("good", "signup")]
    assert endpoint["EndpointResponse"]["Address"] == "good@example.com"
