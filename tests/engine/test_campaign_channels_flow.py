"""Campaigns on SMS, PUSH and CUSTOM, per-treatment schedules and the INVALID state, on the time-skipping
server with the real PostgreSQL, a real SMTP server, a real local webhook (SMS, CUSTOM) and the file push
provider."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.state import AppState
from sojourn.engine import names
from tests.support.campaigns import (
    activities,
    campaign_messages,
    channel_stack,
    create_campaign,
    email_campaign,
    ensure_sms_template,
    iso,
    members,
    status_counts,
    zoned_audience,
)
from tests.support.helpers import assert_eventually, record_histories, skip_time_until_done
from tests.support.seed import call, ensure_template
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookSink

SECRET = "campaign-channel-secret"
START = datetime(2027, 9, 1, 9, 0, tzinfo=UTC)


async def run_to_end(env: WorkflowEnvironment, app_id: str, campaign_id: str) -> Any:
    handle = env.client.get_workflow_handle(names.campaign_workflow_id(app_id, campaign_id))
    return await skip_time_until_done(env, handle)


async def campaign_state(state: AppState, app_id: str, campaign_id: str) -> str:
    got = await call(state, "GetCampaign", ApplicationId=app_id, CampaignId=campaign_id)
    return str(got["CampaignResponse"]["State"]["CampaignStatus"])


async def test_sms_and_push_campaign_reach_each_endpoint_on_its_channel(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    sms = WebhookSink(secret=SECRET, status_for_address={"+15550100009": 400}).start()
    push_file = tmp_path / "push.jsonl"
    try:
        async with channel_stack(
            db,
            time_skipping_env,
            smtp_server,
            sms_provider_url=sms.url,
            sms_provider_secret=SECRET,
            push_provider_url=f"file://{push_file}",
        ) as state:
            audience = await zoned_audience(
                state,
                [None],
                extra=members(
                    s1=("SMS", "+15550100001"),
                    s2=("SMS", "+15550100009"),
                    ios=("APNS", "apns-token-1"),
                    android=("GCM", "gcm-token-1"),
                    voice=("VOICE", "+15550100003"),
                ),
            )
            app_id = audience.app_id
            await call(
                state,
                "UpdateSmsChannel",
                ApplicationId=app_id,
                SMSChannelRequest={"Enabled": True, "SenderId": "ACME"},
            )
            await ensure_sms_template(
                state, "campaign-sms", "Hi {{User.UserAttributes.FirstName}}: {{Attributes.code}}"
            )
            body = email_campaign(
                audience.segment_id,
                {"StartTime": iso(START)},
                TemplateConfiguration={"SMSTemplate": {"Name": "campaign-sms"}},
                MessageConfiguration={
                    "SMSMessage": {"MessageType": "PROMOTIONAL"},
                    "DefaultMessage": {"Title": "Sale", "Body": "Now on {{Attributes.code}}"},
                    "APNSMessage": {"Body": "Apple {{Attributes.code}}"},
                },
            )
            campaign_id = await create_campaign(state, app_id, body)
            assert await run_to_end(time_skipping_env, app_id, campaign_id) == "COMPLETED"

            rows = {r.endpoint_id: r for r in await campaign_messages(db, campaign_id)}
            assert {e: r.status_message or r.status for e, r in rows.items()} == {
                "ep0": "ENDPOINT_MISSING_CHANNEL",
                "voice": "ENDPOINT_MISSING_CHANNEL",
                "s1": "sent",
                "s2": "PERMANENT_FAILURE: refused with 400",
                "ios": "sent",
                "android": "sent",
            }
            (delivered,) = sms.delivered_to("+15550100001")
            assert delivered.payload["Message"] == {
                "Body": "Hi S1: C-s1",
                "MessageType": "PROMOTIONAL",
                "SenderId": "ACME",
            }
            assert delivered.key == delivered.payload["MessageId"]
            pushed = {p["Address"]: p for p in map(json.loads, push_file.read_text().splitlines())}
            assert pushed["apns-token-1"]["Message"] == {"Title": "Sale", "Body": "Apple C-ios"}
            assert pushed["gcm-token-1"]["Message"] == {"Title": "Sale", "Body": "Now on C-android"}
            assert pushed["gcm-token-1"]["Context"]["campaign_id"] == campaign_id
            assert smtp_server.to(audience.addresses["ep0"]) == []
            (run,) = await activities(state, app_id, campaign_id)
            assert run["SuccessfulEndpointCount"] == 3
            assert run["ExecutionMetrics"]["ENDPOINT_MISSING_CHANNEL"] == "2"
    finally:
        sms.stop()


async def test_custom_campaign_delivers_its_endpoint_types_to_a_webhook(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    hook = WebhookSink(secret=SECRET).start()
    try:
        async with channel_stack(db, time_skipping_env, smtp_server, custom_provider_secret=SECRET) as state:
            audience = await zoned_audience(
                state,
                [None],
                extra=members(c1=("CUSTOM", "crm-1"), c2=("CUSTOM", "crm-2"), s1=("SMS", "+15550100001")),
            )
            app_id = audience.app_id
            body = email_campaign(
                audience.segment_id,
                {"StartTime": iso(START)},
                TemplateConfiguration=None,
                MessageConfiguration={"CustomMessage": {"Data": '{"offer": "spring"}'}},
                CustomDeliveryConfiguration={"DeliveryUri": f"{hook.url}/crm", "EndpointTypes": ["CUSTOM"]},
            )
            body.pop("TemplateConfiguration")
            campaign_id = await create_campaign(state, app_id, body)
            assert await run_to_end(time_skipping_env, app_id, campaign_id) == "COMPLETED"

            statuses = status_counts(await campaign_messages(db, campaign_id))
            assert statuses == {"sent": 2, "ENDPOINT_MISSING_CHANNEL": 2}
            (call_made,) = hook.deliveries.values()
            payload = call_made.payload
            assert call_made.path == "/crm"
            assert sorted(payload["Endpoints"]) == ["c1", "c2"]
            assert payload["Data"] == payload["Message"] == '{"offer": "spring"}'
            assert payload["CampaignId"] == campaign_id and payload["TreatmentId"] == "0"
            assert payload["ApplicationId"] == app_id
            assert payload["ActivityId"].endswith("-t0")
            assert payload["ScheduledTime"] == "2027-09-01T09:00:00Z"
            assert payload["Endpoints"]["c1"]["Attributes"]["code"] == ["C-c1"]
    finally:
        hook.stop()


async def test_each_treatment_is_sent_at_its_own_schedule(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    async with channel_stack(db, time_skipping_env, smtp_server) as state:
        audience = await zoned_audience(state, [None] * 200)
        app_id = audience.app_id
        later = START + timedelta(hours=3)
        body = email_campaign(
            audience.segment_id,
            {"StartTime": iso(START)},
            HoldoutPercent=10,
            AdditionalTreatments=[
                {
                    "SizePercent": 40,
                    "TemplateConfiguration": {"EmailTemplate": {"Name": "tips"}},
                    "Schedule": {"StartTime": iso(later)},
                }
            ],
        )
        campaign_id = await create_campaign(state, app_id, body)
        assert await run_to_end(time_skipping_env, app_id, campaign_id) == "COMPLETED"

        rows = await campaign_messages(db, campaign_id)
        sent_at = {(r.activity_id.rsplit("-t", 1)[1], r.created_at) for r in rows if r.status == "sent"}
        assert {t for t, _ in sent_at} == {"0", "1"}
        assert {at for t, at in sent_at if t == "0"} == {START}
        assert {at for t, at in sent_at if t == "1"} == {later}
        runs = {r["TreatmentId"]: r for r in await activities(state, app_id, campaign_id)}
        assert runs["0"]["ScheduledStart"] == "2027-09-01T09:00:00.000Z"
        assert runs["1"]["ScheduledStart"] == "2027-09-01T12:00:00.000Z"
        held_out = 200 - len(rows)
        assert int(runs["0"]["ExecutionMetrics"]["HOLDOUT"]) == held_out > 0
        assert runs["0"]["SuccessfulEndpointCount"] + runs["1"]["SuccessfulEndpointCount"] == len(rows)
        by_recipient = smtp_server.subjects_by_recipient()
        subjects = {s for a in audience.addresses.values() for s in by_recipient.get(a, [])}
        assert subjects == {"welcome", "tips"}
        await record_histories(
            time_skipping_env.client,
            [names.campaign_workflow_id(app_id, campaign_id)],
            "treatment_schedules",
        )


async def test_a_campaign_whose_template_is_deleted_is_invalid_and_sends_nothing(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    template = f"doomed-{uuid.uuid4().hex[:8]}"
    async with channel_stack(db, time_skipping_env, smtp_server) as state:
        audience = await zoned_audience(state, [None] * 3, templates=(template,))
        app_id = audience.app_id
        body = email_campaign(
            audience.segment_id,
            {"StartTime": iso(START)},
            TemplateConfiguration={"EmailTemplate": {"Name": template}},
        )
        campaign_id = await create_campaign(state, app_id, body)
        await call(state, "DeleteEmailTemplate", TemplateName=template)

        async def invalid() -> None:
            assert await campaign_state(state, app_id, campaign_id) == "INVALID"

        async with time_skipping_env.time_skipping_unlocked():
            await assert_eventually(invalid, timeout=60)
        assert await campaign_messages(db, campaign_id) == []
        assert await activities(state, app_id, campaign_id) == []
        listed = await call(state, "GetCampaigns", ApplicationId=app_id)
        assert [c["State"]["CampaignStatus"] for c in listed["CampaignsResponse"]["Item"]] == ["INVALID"]

        # Fixed (the template is back) and updated: the campaign runs again. Its missed run time is skipped, as
        # after a pause, so it is moved to a new start.
        await ensure_template(state, template)
        restart = (await time_skipping_env.get_current_time()) + timedelta(days=1)
        await call(
            state,
            "UpdateCampaign",
            ApplicationId=app_id,
            CampaignId=campaign_id,
            WriteCampaignRequest={"Schedule": {"StartTime": iso(restart)}},
        )
        assert await campaign_state(state, app_id, campaign_id) == "SCHEDULED"
        assert await run_to_end(time_skipping_env, app_id, campaign_id) == "COMPLETED"
        assert status_counts(await campaign_messages(db, campaign_id)) == {"sent": 3}
        await record_histories(
            time_skipping_env.client, [names.campaign_workflow_id(app_id, campaign_id)], "invalid_state"
        )


async def test_an_sms_campaign_whose_channel_is_disabled_is_invalid(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    async with channel_stack(
        db, time_skipping_env, smtp_server, sms_provider_url=f"file://{tmp_path / 'sms.jsonl'}"
    ) as state:
        audience = await zoned_audience(state, [], extra=members(s1=("SMS", "+15550100001")))
        app_id = audience.app_id
        await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": False})
        body = email_campaign(
            audience.segment_id,
            {"StartTime": iso(START)},
            TemplateConfiguration=None,
            MessageConfiguration={"SMSMessage": {"Body": "Hi"}},
        )
        body.pop("TemplateConfiguration")
        campaign_id = await create_campaign(state, app_id, body)

        async def invalid() -> None:
            assert await campaign_state(state, app_id, campaign_id) == "INVALID"

        async with time_skipping_env.time_skipping_unlocked():
            await assert_eventually(invalid, timeout=60)
        assert await campaign_messages(db, campaign_id) == []
        assert not (tmp_path / "sms.jsonl").exists()
        await call(state, "DeleteCampaign", ApplicationId=app_id, CampaignId=campaign_id)
