"""Campaign operations through a real boto3 client over HTTP, with a real Temporal dev server and worker."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import pytest_asyncio
from botocore.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from sojourn.api.handlers import HANDLERS
from sojourn.api.server import build_app
from sojourn.api.state import AppState
from sojourn.api.tracking import record_engagement
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.cli import cmd_deploy
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from sojourn.store.db import create_engine
from tests.support.api_server import serve
from tests.support.campaigns import zoned_audience
from tests.support.smtp import SmtpSink

KEY, SECRET = "SOJOURNTESTKEY", "sojourn-test-secret"


@pytest.fixture(scope="module")
def settings(dev_env: WorkflowEnvironment, sink: SmtpSink) -> Settings:
    return Settings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"campaigns-{uuid.uuid4().hex[:8]}",
        smtp_url=sink.url,
    )


@pytest.fixture(scope="module")
def endpoint_url(database_url: str, settings: Settings) -> Iterator[str]:
    """The API on its own thread and event loop, connecting to Temporal itself as `sojourn up` does."""
    state = AppState(db=create_engine(database_url, pool_size=2), settings=settings)

    async def dispose() -> None:
        await state.db.dispose()

    app = build_app(
        services=["pinpoint", "sesv2"],
        handlers=HANDLERS,
        state=state,
        access_key_id=KEY,
        secret_access_key=SECRET,
        on_shutdown=[dispose],
    )
    with serve(app) as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def worker(
    endpoint_url: str, db: AsyncEngine, dev_env: WorkflowEnvironment, settings: Settings, sink: SmtpSink
) -> AsyncIterator[AppState]:
    del endpoint_url  # the API is up first
    state = AppState(db=db, settings=settings)
    state.use_temporal(dev_env.client)
    running = build_worker(
        dev_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(sink.url))
    )
    async with running:
        yield state


@pytest.fixture
def pinpoint(endpoint_url: str) -> Any:
    return boto3.client(
        "pinpoint",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}),
    )


def later(days: int = 30) -> str:
    return (
        (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    )


def request(segment_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": "spring",
        "SegmentId": segment_id,
        "Schedule": {"StartTime": later(), "EndTime": later(40), "Frequency": "DAILY", "Timezone": "UTC"},
        "TemplateConfiguration": {"EmailTemplate": {"Name": "welcome"}},
        "Limits": {"Daily": 1, "Total": 5, "MessagesPerSecond": 100, "MaximumDuration": 600},
    }
    body.update(changes)
    return body


async def eventually(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.to_thread(check)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.3)


async def test_campaign_crud_versions_and_paging(
    pinpoint: Any, worker: AppState, dev_env: WorkflowEnvironment
) -> None:
    audience = await zoned_audience(worker, [None])
    app_id = audience.app_id
    created = pinpoint.create_campaign(
        ApplicationId=app_id,
        WriteCampaignRequest={**request(audience.segment_id), "tags": {"team": "growth"}},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    campaign = created["CampaignResponse"]
    campaign_id = campaign["Id"]
    assert campaign["State"]["CampaignStatus"] == "SCHEDULED" and campaign["Version"] == 1
    assert campaign["Arn"].endswith(f":apps/{app_id}/campaigns/{campaign_id}")
    assert campaign["Limits"]["Daily"] == 1 and campaign["tags"] == {"team": "growth"}
    handle = dev_env.client.get_workflow_handle(names.campaign_workflow_id(app_id, campaign_id))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    updated = pinpoint.update_campaign(
        ApplicationId=app_id,
        CampaignId=campaign_id,
        WriteCampaignRequest={"Description": "second", "IsPaused": True},
    )["CampaignResponse"]
    assert updated["Version"] == 2 and updated["State"]["CampaignStatus"] == "PAUSED" and updated["IsPaused"]
    assert updated["Name"] == "spring" and updated["Description"] == "second"
    versions = pinpoint.get_campaign_versions(ApplicationId=app_id, CampaignId=campaign_id)[
        "CampaignsResponse"
    ]
    assert [v["Version"] for v in versions["Item"]] == [2, 1]
    first = pinpoint.get_campaign_version(ApplicationId=app_id, CampaignId=campaign_id, Version="1")
    assert "Description" not in first["CampaignResponse"]
    with pytest.raises(pinpoint.exceptions.NotFoundException, match="has no version 9"):
        pinpoint.get_campaign_version(ApplicationId=app_id, CampaignId=campaign_id, Version="9")

    for i in range(2):
        pinpoint.create_campaign(
            ApplicationId=app_id, WriteCampaignRequest=request(audience.segment_id, Name=f"c{i}")
        )
    page = pinpoint.get_campaigns(ApplicationId=app_id, PageSize="2")["CampaignsResponse"]
    assert len(page["Item"]) == 2 and page["NextToken"]
    rest = pinpoint.get_campaigns(ApplicationId=app_id, PageSize="2", Token=page["NextToken"])[
        "CampaignsResponse"
    ]
    assert len(rest["Item"]) == 1 and "NextToken" not in rest
    assert {c["Name"] for c in page["Item"] + rest["Item"]} == {"spring", "c0", "c1"}

    deleted = pinpoint.delete_campaign(ApplicationId=app_id, CampaignId=campaign_id)["CampaignResponse"]
    assert deleted["Id"] == campaign_id
    with pytest.raises(pinpoint.exceptions.NotFoundException, match=f"Campaign {campaign_id} not found"):
        pinpoint.get_campaign(ApplicationId=app_id, CampaignId=campaign_id)

    async def cancelled() -> None:
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

    deadline = time.monotonic() + 20
    while True:
        try:
            await cancelled()
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_an_immediate_campaign_runs_and_reports_activities_and_kpis(
    pinpoint: Any, worker: AppState, sink: SmtpSink
) -> None:
    audience = await zoned_audience(worker, [None, None, None])
    app_id = audience.app_id
    campaign_id = pinpoint.create_campaign(
        ApplicationId=app_id,
        WriteCampaignRequest=request(audience.segment_id, Schedule={"StartTime": "IMMEDIATE"}, Limits={}),
    )["CampaignResponse"]["Id"]

    def completed() -> list[dict[str, Any]]:
        got = pinpoint.get_campaign(ApplicationId=app_id, CampaignId=campaign_id)["CampaignResponse"]
        assert got["State"]["CampaignStatus"] == "COMPLETED"
        items: list[dict[str, Any]] = pinpoint.get_campaign_activities(
            ApplicationId=app_id, CampaignId=campaign_id
        )["ActivitiesResponse"]["Item"]
        return items

    (run,) = await eventually(completed)
    assert run["State"] == "COMPLETED" and run["Result"] == "SUCCESS" and run["TreatmentId"] == "0"
    assert run["TotalEndpointCount"] == 3 and run["SuccessfulEndpointCount"] == 3
    assert run["ExecutionMetrics"] == {"sent": "3"}

    received = [m for a in audience.addresses.values() for m in sink.to(a)]
    assert len(received) == 3
    opened = received[0].message_id.strip("<>").split("@")[0]
    assert await record_engagement(worker, opened, "_email.open", {})
    window = {
        "StartTime": datetime.now(UTC) - timedelta(days=1),
        "EndTime": datetime.now(UTC) + timedelta(minutes=5),
    }

    def kpi(name: str) -> list[dict[str, Any]]:
        result = pinpoint.get_campaign_date_range_kpi(
            ApplicationId=app_id, CampaignId=campaign_id, KpiName=name, **window
        )
        rows: list[dict[str, Any]] = result["CampaignDateRangeKpiResponse"]["KpiResult"]["Rows"]
        return rows

    assert kpi("email-open-rate")[0]["Values"] == [
        {"Key": "EmailOpenRate", "Type": "Double", "Value": "0.333333"}
    ]
    assert kpi("successful-delivery-rate")[0]["Values"][0]["Value"] == "1"
    assert kpi("unique-deliveries")[0]["Values"][0]["Value"] == "3"
    (grouped,) = kpi("successful-deliveries-grouped-by-campaign-activity")
    assert grouped["GroupedBys"] == [{"Key": "CampaignActivityId", "Type": "String", "Value": run["Id"]}]
    with pytest.raises(pinpoint.exceptions.BadRequestException, match="is not a campaign KPI"):
        kpi("happiness")
    with pytest.raises(pinpoint.exceptions.BadRequestException, match="push or SMS"):
        kpi("sms-spend")


INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "custom message without its delivery": (
        {"TemplateConfiguration": {}, "MessageConfiguration": {"CustomMessage": {"Data": "x"}}},
        "CustomMessage needs CustomDeliveryConfiguration",
    ),
    "sms message without a body": (
        {"TemplateConfiguration": {}, "MessageConfiguration": {"SMSMessage": {"SenderId": "ACME"}}},
        "SMSMessage needs a Body",
    ),
    "unknown sms template": (
        {"TemplateConfiguration": {"SMSTemplate": {"Name": "no-such-sms"}}},
        "SMS template 'no-such-sms' does not exist .create it with CreateSmsTemplate.",
    ),
    "unknown push template": (
        {"TemplateConfiguration": {"PushTemplate": {"Name": "no-such-push"}}},
        "Push template 'no-such-push' does not exist",
    ),
    "in-app message on a daily campaign": (
        {"MessageConfiguration": {"InAppMessage": {"Body": "hi"}}},
        "InAppMessage is only for Schedule.Frequency IN_APP_EVENT",
    ),
    "treatment before the campaign": (
        {"AdditionalTreatments": [{"SizePercent": 10, "Schedule": {"StartTime": later(1)}}]},
        "StartTime must not be before the campaign's Schedule.StartTime",
    ),
    "too many treatments": ({"AdditionalTreatments": [{"SizePercent": 10}] * 5}, "at most 5 treatments"),
    "shares over 100": ({"HoldoutPercent": 60, "AdditionalTreatments": [{"SizePercent": 50}]}, "at most 100"),
    "end before start": (
        {"Schedule": {"StartTime": later(10), "EndTime": later(5), "Frequency": "DAILY"}},
        "EndTime must be after StartTime",
    ),
    "event without filter": (
        {"Schedule": {"StartTime": later(), "Frequency": "EVENT"}},
        "needs an EventFilter",
    ),
    "unknown segment": ({"SegmentId": "nope"}, "SegmentId: segment nope not found"),
    "unknown template": (
        {"TemplateConfiguration": {"EmailTemplate": {"Name": "no-such-template"}}},
        "email template 'no-such-template' does not exist",
    ),
    "unknown frequency": (
        {"Schedule": {"StartTime": later(), "Frequency": "YEARLY"}},
        "Frequency: .YEARLY. is not a valid value",
    ),
    "paused immediate": ({"Schedule": {"StartTime": "IMMEDIATE"}, "IsPaused": True}, "cannot be paused"),
    "limits out of range": ({"Limits": {"Daily": 101}}, "Limits.Daily"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_campaigns_raise_bad_request(case: str, pinpoint: Any, worker: AppState) -> None:
    audience = await zoned_audience(worker, [None])
    changes, message = INVALID[case]
    with pytest.raises(pinpoint.exceptions.BadRequestException, match=message):
        pinpoint.create_campaign(
            ApplicationId=audience.app_id, WriteCampaignRequest=request(audience.segment_id, **changes)
        )
    assert pinpoint.get_campaigns(ApplicationId=audience.app_id)["CampaignsResponse"]["Item"] == []


async def test_unknown_app_and_campaign_are_not_found(pinpoint: Any, worker: AppState) -> None:
    audience = await zoned_audience(worker, [None])
    with pytest.raises(pinpoint.exceptions.NotFoundException, match="Application nope not found"):
        pinpoint.create_campaign(ApplicationId="nope", WriteCampaignRequest=request(audience.segment_id))
    for call in (pinpoint.get_campaign, pinpoint.delete_campaign, pinpoint.get_campaign_activities):
        with pytest.raises(pinpoint.exceptions.NotFoundException, match="Campaign c0ffee not found"):
            call(ApplicationId=audience.app_id, CampaignId="c0ffee")
    with pytest.raises(pinpoint.exceptions.NotFoundException):
        pinpoint.update_campaign(ApplicationId=audience.app_id, CampaignId="c0ffee", WriteCampaignRequest={})
    with pytest.raises(pinpoint.exceptions.BadRequestException, match="Token"):
        pinpoint.get_campaigns(ApplicationId=audience.app_id, Token="garbage")


async def test_sojourn_deploy_creates_then_updates_campaigns_by_name(
    pinpoint: Any, worker: AppState, endpoint_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audience = await zoned_audience(worker, [None])
    source = tmp_path / "campaigns.py"
    source.write_text(
        "from sojourn.dsl import Campaign\n"
        f"news = Campaign('news', segment={audience.segment_id!r}, template='welcome', frequency='DAILY',\n"
        f"                start={later()!r}, end={later(35)!r}, holdout=5)\n"
    )
    args = argparse.Namespace(file=source, app=audience.app_id, endpoint_url=endpoint_url)
    keys = Settings(access_key_id=KEY, secret_access_key=SECRET)
    assert await asyncio.to_thread(cmd_deploy, args, keys) == 0
    assert await asyncio.to_thread(cmd_deploy, args, keys) == 0
    out = capsys.readouterr().out
    assert "created campaign news" in out and "updated campaign news" in out and "version 2" in out
    (campaign,) = pinpoint.get_campaigns(ApplicationId=audience.app_id)["CampaignsResponse"]["Item"]
    assert campaign["HoldoutPercent"] == 5 and campaign["Version"] == 2


async def test_sms_push_and_custom_campaign_round_trips(pinpoint: Any, worker: AppState) -> None:
    audience = await zoned_audience(worker, [None])
    pinpoint.create_sms_template(TemplateName="boto-sms", SMSTemplateRequest={"Body": "Hi {{Address}}"})
    body = request(
        audience.segment_id,
        TemplateConfiguration={"SMSTemplate": {"Name": "boto-sms"}},
        MessageConfiguration={
            "GCMMessage": {"Title": "Sale", "Body": "Now", "TimeToLive": 60},
            "CustomMessage": {"Data": '{"offer": 1}'},
        },
        CustomDeliveryConfiguration={
            "DeliveryUri": "https://crm.example.com/hook",
            "EndpointTypes": ["CUSTOM"],
        },
        AdditionalTreatments=[
            {
                "SizePercent": 20,
                "MessageConfiguration": {"SMSMessage": {"Body": "B", "MessageType": "PROMOTIONAL"}},
                "Schedule": {"StartTime": later(30)},
            }
        ],
    )
    created = pinpoint.create_campaign(ApplicationId=audience.app_id, WriteCampaignRequest=body)[
        "CampaignResponse"
    ]
    got = pinpoint.get_campaign(ApplicationId=audience.app_id, CampaignId=created["Id"])["CampaignResponse"]
    assert got["TemplateConfiguration"] == {"SMSTemplate": {"Name": "boto-sms"}}
    assert got["MessageConfiguration"]["GCMMessage"] == {"Title": "Sale", "Body": "Now", "TimeToLive": 60}
    assert got["CustomDeliveryConfiguration"] == {
        "DeliveryUri": "https://crm.example.com/hook",
        "EndpointTypes": ["CUSTOM"],
    }
    assert (
        got["AdditionalTreatments"][0]["MessageConfiguration"]["SMSMessage"]["MessageType"] == "PROMOTIONAL"
    )
    assert got["State"]["CampaignStatus"] in ("SCHEDULED", "PENDING_NEXT_RUN")
    pinpoint.delete_campaign(ApplicationId=audience.app_id, CampaignId=created["Id"])


def in_app_campaign(segment_id: str, **changes: Any) -> dict[str, Any]:
    body = request(
        segment_id,
        Schedule={
            "StartTime": (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "EndTime": later(10),
            "Frequency": "IN_APP_EVENT",
            "EventFilter": {"FilterType": "ENDPOINT", "Dimensions": {"EventType": {"Values": ["level.up"]}}},
        },
        MessageConfiguration={
            "InAppMessage": {
                "Layout": "BOTTOM_BANNER",
                "Content": [
                    {"BodyConfig": {"Alignment": "LEFT", "Body": "Level up!", "TextColor": "#111111"}}
                ],
            }
        },
        Limits={"Daily": 2, "Total": 5, "Session": 1},
        Priority=3,
    )
    body.pop("TemplateConfiguration")
    body.update(changes)
    return body


async def test_get_in_app_messages_returns_the_endpoints_running_in_app_campaigns(
    pinpoint: Any, worker: AppState
) -> None:
    audience = await zoned_audience(worker, [None])
    await asyncio.to_thread(
        pinpoint.update_endpoint,
        ApplicationId=audience.app_id,
        EndpointId="outsider",
        EndpointRequest={"ChannelType": "IN_APP", "Address": "device-1", "Attributes": {"plan": ["free"]}},
    )
    shown = pinpoint.create_campaign(
        ApplicationId=audience.app_id, WriteCampaignRequest=in_app_campaign(audience.segment_id)
    )["CampaignResponse"]
    pinpoint.create_campaign(
        ApplicationId=audience.app_id,
        WriteCampaignRequest=in_app_campaign(
            audience.segment_id, Name="everyone-held-out", HoldoutPercent=100
        ),
    )
    got = pinpoint.get_in_app_messages(ApplicationId=audience.app_id, EndpointId="ep0")
    (entry,) = got["InAppMessagesResponse"]["InAppMessageCampaigns"]
    assert entry["CampaignId"] == shown["Id"] and entry["TreatmentId"] == "0"
    assert entry["InAppMessage"]["Layout"] == "BOTTOM_BANNER"
    assert entry["InAppMessage"]["Content"][0]["BodyConfig"]["Body"] == "Level up!"
    assert (entry["DailyCap"], entry["TotalCap"], entry["SessionCap"], entry["Priority"]) == (2, 5, 1, 3)
    assert entry["Schedule"]["EventFilter"]["Dimensions"]["EventType"]["Values"] == ["level.up"]
    outsider = pinpoint.get_in_app_messages(ApplicationId=audience.app_id, EndpointId="outsider")
    assert outsider["InAppMessagesResponse"]["InAppMessageCampaigns"] == []
    with pytest.raises(pinpoint.exceptions.NotFoundException, match="Endpoint nobody not found"):
        pinpoint.get_in_app_messages(ApplicationId=audience.app_id, EndpointId="nobody")


async def test_in_app_campaigns_show_their_in_app_template(pinpoint: Any, worker: AppState) -> None:
    audience = await zoned_audience(worker, [None])
    name = f"banner-{uuid.uuid4().hex[:8]}"
    content = [{"BodyConfig": {"Alignment": "CENTER", "Body": "v1", "TextColor": "#000000"}}]
    pinpoint.create_in_app_template(
        TemplateName=name, InAppTemplateRequest={"Layout": "OVERLAYS", "Content": content}
    )
    templated = in_app_campaign(audience.segment_id, TemplateConfiguration={"InAppTemplate": {"Name": name}})
    templated["MessageConfiguration"] = {}
    with pytest.raises(
        pinpoint.exceptions.BadRequestException, match="in-app template 'nope' does not exist"
    ):
        pinpoint.create_campaign(
            ApplicationId=audience.app_id,
            WriteCampaignRequest={**templated, "TemplateConfiguration": {"InAppTemplate": {"Name": "nope"}}},
        )
    campaign = pinpoint.create_campaign(ApplicationId=audience.app_id, WriteCampaignRequest=templated)

    def shown() -> list[dict[str, Any]]:
        got = pinpoint.get_in_app_messages(ApplicationId=audience.app_id, EndpointId="ep0")
        return list(got["InAppMessagesResponse"]["InAppMessageCampaigns"])

    (entry,) = shown()
    assert entry["CampaignId"] == campaign["CampaignResponse"]["Id"]
    assert entry["InAppMessage"] == {"Layout": "OVERLAYS", "Content": content}
    # A new active version shows at once; a deleted template shows nothing (the campaign cannot run).
    pinpoint.update_in_app_template(
        TemplateName=name,
        CreateNewVersion=True,
        InAppTemplateRequest={"Layout": "MOBILE_FEED", "Content": content},
    )
    pinpoint.update_template_active_version(
        TemplateName=name, TemplateType="INAPP", TemplateActiveVersionRequest={"Version": "2"}
    )
    assert shown()[0]["InAppMessage"]["Layout"] == "MOBILE_FEED"
    pinpoint.delete_in_app_template(TemplateName=name)
    assert shown() == []
