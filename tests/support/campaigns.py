"""Campaign test helpers: an app whose endpoints live in given time zones, campaign bodies, runs and messages."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.state import AppState
from tests.support.seed import add_pro_audience, call, ensure_template


@dataclass
class ZonedAudience:
    """An app with an email channel and a segment ("pro") of endpoints ``ep0``.. with the given zones."""

    app_id: str
    segment_id: str
    addresses: dict[str, str]  # endpoint id -> address


async def zoned_audience(
    state: AppState,
    zones: Sequence[str | None],
    *,
    templates: Sequence[str] = ("welcome", "tips"),
    extra: Sequence[dict[str, Any]] = (),
) -> ZonedAudience:
    """Create an app, its email channel, templates and one EMAIL endpoint per zone (None: no Demographic)."""
    app = await call(state, "CreateApp", CreateApplicationRequest={"Name": "campaigns"})
    app_id = app["ApplicationResponse"]["Id"]
    await call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "news@sojourn.test", "Identity": "sojourn.test", "Enabled": True},
    )
    for name in templates:
        await ensure_template(state, name)
    addresses: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    for i, zone in enumerate(zones):
        address = f"{uuid.uuid4().hex[:10]}@example.com"
        addresses[f"ep{i}"] = address
        item: dict[str, Any] = {
            "Id": f"ep{i}",
            "ChannelType": "EMAIL",
            "Address": address,
            "Attributes": {"plan": ["pro"]},
            "User": {"UserId": f"user{i}", "UserAttributes": {"FirstName": [f"Person{i}"]}},
        }
        if zone is not None:
            item["Demographic"] = {"Timezone": zone}
        items.append(item)
    items += list(extra)
    return ZonedAudience(app_id, await add_pro_audience(state, app_id, items), addresses)


def email_campaign(segment_id: str, schedule: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A WriteCampaignRequest sending the ``welcome`` template to the segment on ``schedule``."""
    body: dict[str, Any] = {
        "Name": f"campaign-{uuid.uuid4().hex[:6]}",
        "SegmentId": segment_id,
        "Schedule": schedule,
        "TemplateConfiguration": {"EmailTemplate": {"Name": "welcome"}},
    }
    body.update(changes)
    return body


def iso(at: datetime) -> str:
    """An ISO-8601 instant as boto3 users write them."""
    return at.isoformat().replace("+00:00", "Z")


async def create_campaign(state: AppState, app_id: str, body: dict[str, Any]) -> str:
    """CreateCampaign through the handler; returns the campaign id."""
    created = await call(state, "CreateCampaign", ApplicationId=app_id, WriteCampaignRequest=body)
    return str(created["CampaignResponse"]["Id"])


async def activities(state: AppState, app_id: str, campaign_id: str) -> list[dict[str, Any]]:
    """GetCampaignActivities items, oldest run first."""
    found = await call(
        state, "GetCampaignActivities", ApplicationId=app_id, CampaignId=campaign_id, PageSize="1000"
    )
    return sorted(found["ActivitiesResponse"]["Item"], key=lambda a: (a["ScheduledStart"], a["Id"]))


async def campaign_messages(db: AsyncEngine, campaign_id: str) -> list[Any]:
    """The campaign's ledger rows (endpoint, activity, status, reason, created_at), in time order."""
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT endpoint_id, activity_id, status, status_message, created_at FROM messages "
                "WHERE campaign_id = :c ORDER BY created_at, endpoint_id"
            ),
            {"c": campaign_id},
        )
        return list(rows)


def status_counts(rows: Sequence[Any]) -> Counter[str]:
    """Ledger rows per status or skip reason."""
    return Counter(r.status_message or r.status for r in rows)
