"""CUSTOM journey activities on the time-skipping server: a real local webhook that answers attributes a later
split branches on, a registered custom activity function, and pass-through of other endpoint types."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from sojourn.api.errors import BadRequestError
from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.helpers import record_histories, skip_time_until_done
from tests.support.seed import app_with_audience, call
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookSink

SECRET = "custom-test-secret"
CALLS: list[dict[str, Any]] = []


class AnsweringHook(WebhookSink):
    """A webhook sink that answers each endpoint's ``answer`` attribute: yes for c1, no for the others."""

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
        status, out_headers, answer = super().answer(path, headers, body)
        if status != 200:
            return status, out_headers, answer
        payload = json.loads(body)
        return (
            200,
            out_headers,
            {
                "Endpoints": {
                    endpoint_id: {"Attributes": {"answer": "yes" if endpoint_id == "c1" else "no"}}
                    for endpoint_id in payload["Endpoints"]
                }
            },
        )


@activity.defn(name="score_endpoints")
async def score_endpoints(payload: dict[str, Any]) -> dict[str, Any]:
    """A deployment's custom activity: remembers the call and scores every endpoint."""
    CALLS.append(payload)
    return {"Endpoints": {e: {"Attributes": {"score": "7"}} for e in payload["Endpoints"]}}


@asynccontextmanager
async def custom_stack(
    db: AsyncEngine, env: WorkflowEnvironment, smtp: SmtpSink, extra: Sequence[Any] = ()
) -> AsyncIterator[AppState]:
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}",
        temporal_search_attributes=False,
        smtp_url=smtp.url,
        custom_provider_secret=SECRET,
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(env.client)
    worker = build_worker(
        env.client,
        db,
        settings,
        transport=SmtpTransport(SmtpConfig.from_url(smtp.url)),
        extra_activities=list(extra),
    )
    async with worker:
        yield state


async def custom_audience(state: AppState, count: int) -> tuple[str, str]:
    """An app with one email endpoint and ``count`` CUSTOM endpoints c1.. in its segment."""
    audience = await app_with_audience(state, members=1, templates=("welcome",))
    items = [
        {"Id": f"c{i}", "ChannelType": "CUSTOM", "Address": f"crm-{i}", "Attributes": {"plan": ["pro"]}}
        for i in range(1, count + 1)
    ]
    await call(
        state, "UpdateEndpointsBatch", ApplicationId=audience.app_id, EndpointBatchRequest={"Item": items}
    )
    return audience.app_id, audience.segment_id


async def activity_metrics(state: AppState, app_id: str, journey_id: str, activity_id: str) -> dict[str, str]:
    got = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=app_id,
        JourneyId=journey_id,
        JourneyActivityId=activity_id,
    )
    return dict(got["JourneyExecutionActivityMetricsResponse"]["Metrics"])


async def run(state: AppState, env: WorkflowEnvironment, app_id: str, request: dict[str, Any]) -> str:
    created = await call(state, "CreateJourney", ApplicationId=app_id, WriteJourneyRequest=request)
    journey_id: str = created["JourneyResponse"]["Id"]
    handle = env.client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id))
    assert await skip_time_until_done(env, handle) == "COMPLETED"
    return journey_id


def journey(segment_id: str, hook: dict[str, Any], split_on: dict[str, Any]) -> dict[str, Any]:
    return {
        "Name": "custom",
        "State": "ACTIVE",
        "StartActivity": "hook",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "hook": {"CUSTOM": {**hook, "NextActivity": "answered"}},
            "answered": {
                "ConditionalSplit": {
                    "Condition": {
                        "Conditions": [
                            {
                                "EventCondition": {
                                    "MessageActivity": "hook",
                                    "Dimensions": {
                                        "EventType": {
                                            "DimensionType": "INCLUSIVE",
                                            "Values": ["_custom.response"],
                                        },
                                        "Attributes": split_on,
                                    },
                                }
                            }
                        ],
                        "Operator": "ALL",
                    },
                    "TrueActivity": "yes",
                    "FalseActivity": "no",
                }
            },
            "yes": {"Wait": {"WaitTime": {"WaitFor": "PT1H"}}},
            "no": {"Wait": {"WaitTime": {"WaitFor": "PT2H"}}},
        },
    }


async def test_a_webhook_answer_drives_a_later_split(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    hook = AnsweringHook(secret=SECRET).start()
    try:
        async with custom_stack(db, time_skipping_env, smtp_server) as state:
            app_id, segment_id = await custom_audience(state, count=60)
            journey_id = await run(
                state,
                time_skipping_env,
                app_id,
                journey(
                    segment_id,
                    {"DeliveryUri": f"{hook.url}/crm", "MessageConfig": {"Data": "call them"}},
                    {"answer": {"AttributeType": "INCLUSIVE", "Values": ["yes"]}},
                ),
            )
            handle_id = names.journey_workflow_id(app_id, journey_id)
            await record_histories(
                time_skipping_env.client, [handle_id, f"{handle_id}/cohort/0"], "custom_split"
            )

            # 60 CUSTOM endpoints in calls of at most 50; the email endpoint passed through undelivered.
            calls = [d.payload for d in hook.deliveries.values()]
            assert sorted(len(c["Endpoints"]) for c in calls) == [10, 50]
            delivered = {e for c in calls for e in c["Endpoints"]}
            assert delivered == {f"c{i}" for i in range(1, 61)}
            first = calls[0]
            assert (first["Message"], first["Data"], first["JourneyId"], first["ActivityId"]) == (
                "call them",
                "call them",
                journey_id,
                "hook",
            )
            assert first["Endpoints"][next(iter(first["Endpoints"]))]["ChannelType"] == "CUSTOM"
            assert hook.bad_signatures == 0

            hook_metrics = await activity_metrics(state, app_id, journey_id, "hook")
            assert hook_metrics["SUCCESS"] == "60" and hook_metrics["ENDPOINT_MISSING_CHANNEL"] == "1"
            split = await activity_metrics(state, app_id, journey_id, "answered")
            assert split["Branch_1"] == "1" and split["Branch_2"] == "60", "only c1 answered yes"
            async with db.connect() as conn:
                events = (
                    await conn.execute(
                        text(
                            "SELECT attributes->>'answer' FROM events WHERE app_id = :a AND endpoint_id = 'c1' "
                            "AND event_type = '_custom.response'"
                        ),
                        {"a": app_id},
                    )
                ).all()
            assert [e[0] for e in events] == ["yes"]
    finally:
        hook.stop()


async def test_a_custom_activity_function_and_failures(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    CALLS.clear()
    async with custom_stack(db, time_skipping_env, smtp_server, extra=[score_endpoints]) as state:
        app_id, segment_id = await custom_audience(state, count=2)
        journey_id = await run(
            state,
            time_skipping_env,
            app_id,
            journey(
                segment_id,
                {"DeliveryUri": "score_endpoints", "EndpointTypes": ["CUSTOM", "EMAIL"]},
                {"score": {"AttributeType": "INCLUSIVE", "Values": ["7"]}},
            ),
        )
        assert len(CALLS) == 1 and set(CALLS[0]["Endpoints"]) == {"ep0", "c1", "c2"}
        split = await activity_metrics(state, app_id, journey_id, "answered")
        assert split["Branch_1"] == "3" and split.get("Branch_2", "0") == "0"

        # A function that is not registered, and a webhook that refuses: every message fails with a reason.
        journey_id = await run(
            state,
            time_skipping_env,
            app_id,
            journey(segment_id, {"DeliveryUri": "not_registered"}, {"x": {"Values": ["y"]}}),
        )
        assert (await activity_metrics(state, app_id, journey_id, "hook"))["CUSTOM_DELIVERY_FAILURE"] == "2"
        async with db.connect() as conn:
            why = await conn.scalar(
                text("SELECT status_message FROM messages WHERE journey_id = :j AND endpoint_id = 'c1'"),
                {"j": journey_id},
            )
        assert "no custom activity named 'not_registered'" in str(why)

    refusing = WebhookSink(secret=SECRET, status_for_address={"crm-1": 400}).start()
    try:
        async with custom_stack(db, time_skipping_env, smtp_server) as state:
            app_id, segment_id = await custom_audience(state, count=1)
            refusing.secret = "another-secret"  # every call is answered 401: a permanent failure
            journey_id = await run(
                state,
                time_skipping_env,
                app_id,
                journey(segment_id, {"DeliveryUri": refusing.url}, {"x": {"Values": ["y"]}}),
            )
            assert (await activity_metrics(state, app_id, journey_id, "hook"))[
                "CUSTOM_DELIVERY_FAILURE"
            ] == "1"
            assert refusing.bad_signatures == 1, "a 4xx is not retried"
    finally:
        refusing.stop()


async def test_a_template_is_rendered_for_each_endpoint_of_the_call(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    hook = WebhookSink(secret=SECRET).start()
    try:
        async with custom_stack(db, time_skipping_env, smtp_server) as state:
            app_id, segment_id = await custom_audience(state, count=2)
            name = f"crm-{uuid.uuid4().hex[:8]}"
            await call(
                state,
                "CreatePushTemplate",
                TemplateName=name,
                PushNotificationTemplateRequest={
                    "Default": {"Title": "Hello", "Body": "Plan {{Attributes.plan}} for {{Address}}"}
                },
            )
            missing = journey(segment_id, {"DeliveryUri": hook.url, "TemplateName": "nope"}, {})
            with pytest.raises(BadRequestError, match="CUSTOM TemplateName: no template 'nope' exists"):
                await call(state, "CreateJourney", ApplicationId=app_id, WriteJourneyRequest=missing)

            await run(
                state,
                time_skipping_env,
                app_id,
                journey(
                    segment_id, {"DeliveryUri": hook.url, "TemplateName": name}, {"x": {"Values": ["y"]}}
                ),
            )
            (payload,) = [d.payload for d in hook.deliveries.values()]
            assert payload["Template"] == {"Name": name, "Type": "PUSH", "Version": None}
            assert payload["Messages"] == {
                f"c{i}": {"Default": {"Title": "Hello", "Body": f"Plan pro for crm-{i}"}} for i in (1, 2)
            }
    finally:
        hook.stop()
