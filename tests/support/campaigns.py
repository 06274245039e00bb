"""Campaign test helpers: an app whose endpoints live in given time zones, campaign bodies, runs and messages."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.errors import NotFoundError
from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.seed import add_pro_audience, call, ensure_template
from tests.support.smtp import SmtpSink


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


def event_schedule(event_type: str, now: datetime) -> dict[str, Any]:
    """An EVENT campaign's Schedule, open from half an hour before ``now`` to a day after it."""
    return {
        "StartTime": iso(now - timedelta(minutes=30)),
        "EndTime": iso(now + timedelta(days=1)),
        "Frequency": "EVENT",
        "EventFilter": {
            "FilterType": "ENDPOINT",
            "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [event_type]}},
        },
    }


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


@asynccontextmanager
async def channel_stack(
    db: AsyncEngine,
    env: WorkflowEnvironment,
    smtp: SmtpSink,
    extra_activities: Sequence[Any] = (),
    **providers: Any,
) -> AsyncIterator[AppState]:
    """The API state and a worker whose send lanes use the given provider settings.

    Args:
        extra_activities: The deployment's custom functions (``activities/``): hooks, CUSTOM deliveries.
        providers: Settings fields (``sms_provider_url=...``).
    """
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}", temporal_search_attributes=False, smtp_url=smtp.url, **providers
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(env.client)
    worker = build_worker(
        env.client,
        db,
        settings,
        transport=SmtpTransport(SmtpConfig.from_url(smtp.url)),
        extra_activities=extra_activities,
    )
    async with worker:
        yield state


def members(**channels: tuple[str, str]) -> list[dict[str, Any]]:
    """Endpoints in the audience's segment: id -> (ChannelType, Address)."""
    return [
        {
            "Id": endpoint_id,
            "ChannelType": kind,
            "Address": address,
            "Attributes": {"plan": ["pro"], "code": [f"C-{endpoint_id}"]},
            "User": {"UserId": f"u-{endpoint_id}", "UserAttributes": {"FirstName": [endpoint_id.upper()]}},
        }
        for endpoint_id, (kind, address) in channels.items()
    ]


async def ensure_sms_template(state: AppState, name: str, body: str) -> None:
    """Create the SMS template ``name`` with ``body`` unless it exists."""
    try:
        await call(state, "GetSmsTemplate", TemplateName=name)
    except NotFoundError:
        await call(state, "CreateSmsTemplate", TemplateName=name, SMSTemplateRequest={"Body": body})
