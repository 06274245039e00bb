"""Build test data through sojourn's own API handlers (the same code path boto3 requests take)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sojourn.api.handlers import HANDLERS
from sojourn.api.server import RequestContext
from sojourn.api.state import AppState

PAGE = """<html><body><h1>{title}, {{{{User.UserAttributes.FirstName}}}}</h1>
<p><a href="https://example.com/{slug}?a=1&amp;b=2">Read more</a></p></body></html>"""


async def call(state: AppState, operation: str, **params: Any) -> dict[str, Any]:
    """Run one API operation's handler, as the server would."""
    ctx = RequestContext(request_id=uuid.uuid4().hex, operation=operation, service="pinpoint", state=state)
    return await HANDLERS[operation](ctx, params)


async def call_sesv2(state: AppState, operation: str, **params: Any) -> dict[str, Any]:
    """Run one sesv2 operation's handler, as the server would."""
    ctx = RequestContext(request_id=uuid.uuid4().hex, operation=operation, service="sesv2", state=state)
    return await HANDLERS[f"sesv2:{operation}"](ctx, params)


async def set_state(state: AppState, app_id: str, journey_id: str, journey_state: str) -> dict[str, Any]:
    """UpdateJourneyState (ACTIVE, PAUSED or CANCELLED)."""
    return await call(
        state,
        "UpdateJourneyState",
        ApplicationId=app_id,
        JourneyId=journey_id,
        JourneyStateRequest={"State": journey_state},
    )


@dataclass
class Audience:
    """An app with an email channel, templates and a segment of email endpoints."""

    app_id: str
    segment_id: str
    addresses: list[str]


async def app_with_audience(
    state: AppState,
    *,
    members: int,
    outsiders: int = 0,
    templates: tuple[str, ...] = ("welcome", "tips", "nudge"),
) -> Audience:
    """Create an app, its email channel, email templates and ``members`` endpoints in a segment (plan=pro)."""
    app = await call(state, "CreateApp", CreateApplicationRequest={"Name": "test"})
    app_id = app["ApplicationResponse"]["Id"]
    await call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={
            "FromAddress": "hello@sojourn.test",
            "Identity": "sojourn.test",
            "Enabled": True,
        },
    )
    for name in templates:
        await ensure_template(state, name)
    addresses: list[str] = []
    items: list[dict[str, Any]] = []
    for i in range(members + outsiders):
        address = f"{uuid.uuid4().hex[:10]}@example.com"
        plan = "pro" if i < members else "free"
        if i < members:
            addresses.append(address)
        items.append(
            {
                "Id": f"ep{i}",
                "ChannelType": "EMAIL",
                "Address": address,
                "Attributes": {"plan": [plan]},
                "User": {"UserId": f"user{i}", "UserAttributes": {"FirstName": [f"Person{i}"]}},
            }
        )
    return Audience(app_id, await add_pro_audience(state, app_id, items), addresses)


async def add_pro_audience(state: AppState, app_id: str, items: list[dict[str, Any]]) -> str:
    """Upsert ``items`` (EndpointBatchItems, 100 per call) and create the segment of ``plan=pro``; its id."""
    for start in range(0, len(items), 100):
        await call(
            state,
            "UpdateEndpointsBatch",
            ApplicationId=app_id,
            EndpointBatchRequest={"Item": items[start : start + 100]},
        )
    segment = await call(
        state,
        "CreateSegment",
        ApplicationId=app_id,
        WriteSegmentRequest={
            "Name": "pro",
            "Dimensions": {"Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["pro"]}}},
        },
    )
    return str(segment["SegmentResponse"]["Id"])


async def ensure_template(state: AppState, name: str) -> None:
    """Create the email template ``name`` (subject = its name) unless it exists."""
    try:
        await call(state, "GetEmailTemplate", TemplateName=name)
    except Exception:
        await call(
            state,
            "CreateEmailTemplate",
            TemplateName=name,
            EmailTemplateRequest={
                "Subject": name,
                "HtmlPart": PAGE.format(title=name.title(), slug=name),
                "TextPart": f"{name} for {{{{User.UserAttributes.FirstName}}}}",
                "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "there"}',
            },
        )


def on_event(event_type: str, segment_id: str | None = None) -> dict[str, Any]:
    """A StartCondition that enters endpoints when PutEvents records ``event_type`` (optionally segment members)."""
    condition: dict[str, Any] = {
        "EventFilter": {
            "FilterType": "ENDPOINT",
            "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [event_type]}},
        }
    }
    if segment_id is not None:
        condition["SegmentId"] = segment_id
    return {"EventStartCondition": condition}


def onboarding(
    segment_id: str,
    *,
    name: str = "onboarding",
    wait: str = "P2D",
    evaluation_wait: str = "P3D",
    templates: tuple[str, str, str] = ("welcome", "tips", "nudge"),
    start: datetime | None = None,
) -> dict[str, Any]:
    """EMAIL welcome -> Wait -> split on open of welcome (after its evaluation wait) -> tips | nudge."""
    welcome, tips, nudge = templates
    opened = {
        "EventCondition": {
            "MessageActivity": "welcome",
            "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["_email.open"]}},
        }
    }
    return {
        "Name": name,
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": start or datetime.now(UTC)},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": welcome, "NextActivity": "pause"}},
            "pause": {"Wait": {"WaitTime": {"WaitFor": wait}, "NextActivity": "opened"}},
            "opened": {
                "ConditionalSplit": {
                    "Condition": {"Conditions": [opened], "Operator": "ALL"},
                    "EvaluationWaitTime": {"WaitFor": evaluation_wait},
                    "TrueActivity": "tips",
                    "FalseActivity": "nudge",
                }
            },
            "tips": {"EMAIL": {"TemplateName": tips}},
            "nudge": {"EMAIL": {"TemplateName": nudge}},
        },
    }
