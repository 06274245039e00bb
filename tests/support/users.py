"""Apps whose endpoints belong to users (User.UserId), for the user-level journey tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from sojourn.api.state import AppState
from tests.support.seed import app_with_audience, call


@dataclass
class UserAudience:
    """An app with an email channel, templates, and a segment (plan=pro) of endpoints, some of users."""

    app_id: str
    segment_id: str
    # Endpoint id -> its email address (EMAIL endpoints only).
    addresses: dict[str, str]

    def endpoint_of(self, address: str) -> str:
        """The endpoint id of an email address."""
        return next(e for e, a in self.addresses.items() if a == address)


async def app_with_users(
    state: AppState,
    members: dict[str, str | None],
    *,
    extra: dict[str, dict[str, Any]] | None = None,
    templates: tuple[str, ...] = ("welcome", "tips", "nudge"),
) -> UserAudience:
    """Create an app whose endpoints are ``members``: endpoint id -> user id (None: no user).

    Every endpoint is an EMAIL endpoint with ``plan=pro`` (so in the segment) unless ``extra`` (endpoint id ->
    fields of the batch item, replacing the defaults) says otherwise.
    """
    audience = await app_with_audience(state, members=0, templates=templates)
    extra = extra or {}
    items: list[dict[str, Any]] = []
    addresses: dict[str, str] = {}
    for endpoint_id, user_id in members.items():
        item: dict[str, Any] = {
            "Id": endpoint_id,
            "ChannelType": "EMAIL",
            "Address": f"{endpoint_id}-{uuid.uuid4().hex[:8]}@example.com",
            "Attributes": {"plan": ["pro"]},
            **extra.get(endpoint_id, {}),
        }
        if user_id is not None:
            item["User"] = {"UserId": user_id, "UserAttributes": {"FirstName": [user_id]}}
        if item["ChannelType"] == "EMAIL":
            addresses[endpoint_id] = item["Address"]
        items.append(item)
    for start in range(0, len(items), 100):
        await call(
            state,
            "UpdateEndpointsBatch",
            ApplicationId=audience.app_id,
            EndpointBatchRequest={"Item": items[start : start + 100]},
        )
    return UserAudience(audience.app_id, audience.segment_id, addresses)


async def participant_rows(state: AppState, journey_id: str) -> dict[str, dict[str, Any]]:
    """The journey's participant rows by endpoint id (last entry wins)."""
    async with state.db.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM participants WHERE journey_id = :j ORDER BY endpoint_id, entry_no"),
            {"j": journey_id},
        )
        return {r.endpoint_id: dict(r._mapping) for r in rows}


async def message_count(state: AppState, journey_id: str, endpoint_id: str) -> int:
    """How many message ledger rows the journey has for the endpoint."""
    async with state.db.connect() as conn:
        return int(
            await conn.scalar(
                text("SELECT count(*) FROM messages WHERE journey_id = :j AND endpoint_id = :e"),
                {"j": journey_id, "e": endpoint_id},
            )
            or 0
        )
