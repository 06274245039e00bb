"""A journey whose segment holds users, set up and watched through a real boto3 client over HTTP.

The API runs on its own thread and connects to the Temporal dev server itself; a worker runs in the test's
loop; messages go to a real SMTP server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from sojourn.store.db import create_engine
from tests.support.api_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, boto3_client, serve
from tests.support.helpers import unique
from tests.support.smtp import SmtpSink


@pytest.fixture(scope="module")
def settings(dev_env: WorkflowEnvironment, sink: SmtpSink, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"users-{uuid.uuid4().hex[:8]}",
        smtp_url=sink.url,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )


@pytest.fixture(scope="module")
def endpoint_url(database_url: str, settings: Settings) -> Iterator[str]:
    state = AppState(db=create_engine(database_url, pool_size=2), settings=settings)
    with serve(create_app(settings, state)) as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def worker(
    endpoint_url: str, db: AsyncEngine, dev_env: WorkflowEnvironment, settings: Settings, sink: SmtpSink
) -> AsyncIterator[None]:
    del endpoint_url  # the API is up first
    running = build_worker(
        dev_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(sink.url))
    )
    async with running:
        yield


async def eventually(check: Any, timeout: float = 60) -> Any:
    """Retry a blocking boto3 check off the loop (the worker runs on it) until it stops failing."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.to_thread(check)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.3)


@pytest.mark.usefixtures("worker")
async def test_create_journey_over_a_user_segment_moves_each_user_whole(
    endpoint_url: str, sink: SmtpSink
) -> None:
    pinpoint = boto3_client("pinpoint", endpoint_url)
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "users"})["ApplicationResponse"]["Id"]
    pinpoint.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest={
            "FromAddress": "hello@sojourn.test",
            "Identity": "sojourn.test",
            "Enabled": True,
        },
    )
    welcome, tips, nudge = unique("welcome-"), unique("tips-"), unique("nudge-")
    for name in (welcome, tips, nudge):
        pinpoint.create_email_template(
            TemplateName=name,
            EmailTemplateRequest={"Subject": name, "TextPart": f"{name} {{{{User.UserId}}}}"},
        )
    addresses = {e: f"{e}-{uuid.uuid4().hex[:8]}@example.com" for e in ("a1", "a2", "s1")}
    items: list[dict[str, Any]] = [
        {
            "Id": "a1",
            "ChannelType": "EMAIL",
            "Address": addresses["a1"],
            "Attributes": {"plan": ["pro"], "vip": ["yes"]},
            "User": {"UserId": "ann"},
        },
        {
            "Id": "a2",
            "ChannelType": "EMAIL",
            "Address": addresses["a2"],
            "Attributes": {"plan": ["pro"]},
            "User": {"UserId": "ann"},
        },
        {"Id": "s1", "ChannelType": "EMAIL", "Address": addresses["s1"], "Attributes": {"plan": ["pro"]}},
    ]
    pinpoint.update_endpoints_batch(ApplicationId=app_id, EndpointBatchRequest={"Item": items})
    assert {
        e["Id"]
        for e in pinpoint.get_user_endpoints(ApplicationId=app_id, UserId="ann")["EndpointsResponse"]["Item"]
    } == {"a1", "a2"}
    segment_id = pinpoint.create_segment(
        ApplicationId=app_id,
        WriteSegmentRequest={
            "Name": "pro",
            "Dimensions": {"Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["pro"]}}},
        },
    )["SegmentResponse"]["Id"]
    is_vip = {"SegmentDimensions": {"Attributes": {"vip": {"AttributeType": "INCLUSIVE", "Values": ["yes"]}}}}
    journey_id = pinpoint.create_journey(
        ApplicationId=app_id,
        WriteJourneyRequest={
            "Name": "users",
            "State": "ACTIVE",
            "StartActivity": "welcome",
            "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
            "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
            "Activities": {
                "welcome": {"EMAIL": {"TemplateName": welcome, "NextActivity": "vip"}},
                "vip": {
                    "ConditionalSplit": {
                        "Condition": {"Conditions": [is_vip], "Operator": "ALL"},
                        "TrueActivity": "tips",
                        "FalseActivity": "nudge",
                    }
                },
                "tips": {"EMAIL": {"TemplateName": tips}},
                "nudge": {"EMAIL": {"TemplateName": nudge}},
            },
        },
    )["JourneyResponse"]["Id"]

    def completed() -> None:
        got = pinpoint.get_journey(ApplicationId=app_id, JourneyId=journey_id)["JourneyResponse"]
        assert got["State"] == "COMPLETED"

    await eventually(completed)
    assert {a: sink.subjects_by_recipient().get(a) for a in addresses.values()} == {
        addresses["a1"]: [welcome, tips],
        addresses["a2"]: [welcome, tips],
        addresses["s1"]: [welcome, nudge],
    }
    metrics = pinpoint.get_journey_execution_metrics(ApplicationId=app_id, JourneyId=journey_id)
    assert metrics["JourneyExecutionMetricsResponse"]["Metrics"]["ENDPOINT_ENTERED"] == "3"
    split = pinpoint.get_journey_execution_activity_metrics(
        ApplicationId=app_id, JourneyId=journey_id, JourneyActivityId="vip"
    )["JourneyExecutionActivityMetricsResponse"]["Metrics"]
    assert (split["Branch_1"], split["Branch_2"]) == ("2", "1")
