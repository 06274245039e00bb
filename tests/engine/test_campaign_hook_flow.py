"""The FILTER hook's answers change the messages, through campaign runs on the time-skipping server with the real
PostgreSQL, a real SMTP server, a real local webhook (SMS, CUSTOM), the file push and voice providers, and both
kinds of hook: a custom function of the deployment and an https webhook.

What the hook returns for an endpoint is what its message is rendered with (``{{Attributes.CreditScore}}`` sees
the hook's value), TitleOverride/BodyOverride replace the title and body of SMS, VOICE and PUSH messages (not of
emails), and changes to who the endpoint is (Address, ChannelType) are ignored.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from sojourn.api.state import AppState
from sojourn.channels.email import CommitFn, OutgoingEmail, SendResult, SmtpConfig, SmtpTransport
from sojourn.channels.senders import SendLanes
from sojourn.engine import names
from sojourn.engine.campaign_activities import CampaignActivities
from sojourn.engine.campaign_inputs import CampaignRef, SliceInput, SliceResult
from sojourn.settings import Settings
from tests.support.campaigns import (
    campaign_messages,
    channel_stack,
    create_campaign,
    email_campaign,
    ensure_sms_template,
    event_schedule,
    iso,
    members,
    status_counts,
    zoned_audience,
)
from tests.support.helpers import assert_eventually, skip_time_until_done
from tests.support.hook_server import running_hook_server
from tests.support.seed import call
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookSink

SECRET = "campaign-hook-secret"
START = datetime(2027, 9, 1, 9, 0, tzinfo=UTC)
SCORES = {"ep0": 700, "ep2": 702, "s1": 710, "s2": 720, "android": 730, "ios": 740, "v1": 750, "c1": 760}
# The endpoints whose answer carries TitleOverride/BodyOverride.
OVERRIDDEN = {"ep2", "s1", "android", "v1", "c1"}


def score(event: dict[str, Any]) -> dict[str, Any]:
    """The hook's logic, after Pinpoint's own example: add ``Attributes.CreditScore`` to each endpoint it is
    given (a number, as in that example) and return them; drop ``ep1``; give some overrides; and try to change
    who the endpoints are (which sojourn ignores)."""
    kept: dict[str, Any] = {}
    for endpoint_id, endpoint in event["Endpoints"].items():
        if endpoint_id == "ep1":
            continue
        endpoint.setdefault("Attributes", {})["CreditScore"] = [SCORES[endpoint_id]]
        endpoint["Address"] = "hijacked@example.com"
        endpoint["ChannelType"] = "CUSTOM" if endpoint["ChannelType"] != "CUSTOM" else "EMAIL"
        endpoint["OptOut"] = "ALL"
        if endpoint_id in OVERRIDDEN:
            endpoint["TitleOverride"] = f"Title for {endpoint_id}"
            endpoint["BodyOverride"] = f"Body for {endpoint_id}"
        kept[endpoint_id] = endpoint
    return kept


@activity.defn(name="credit_scores")
async def credit_scores(event: dict[str, Any]) -> dict[str, Any]:
    """The hook as a custom function of the deployment (``activities/``)."""
    return score(event)


async def email_template(state: AppState) -> str:
    name = f"scored-{uuid.uuid4().hex[:8]}"
    await call(
        state,
        "CreateEmailTemplate",
        TemplateName=name,
        EmailTemplateRequest={
            "Subject": "Score {{Attributes.CreditScore}}",
            "HtmlPart": "<p>Your score is {{Attributes.CreditScore}}</p>",
            "TextPart": "{{User.UserAttributes.FirstName}}, your score is {{Attributes.CreditScore}}",
        },
    )
    return name


def jsonl(path: Path) -> dict[str, dict[str, Any]]:
    """A file provider's messages by Address."""
    return {m["Address"]: m for m in map(json.loads, path.read_text().splitlines())}


def assert_scored_emails(smtp: SmtpSink, addresses: dict[str, str], endpoint_ids: Sequence[str]) -> None:
    """Each endpoint got one email, rendered with the hook's CreditScore, without the hook's overrides."""
    for endpoint_id in endpoint_ids:
        (received,) = smtp.to(addresses[endpoint_id])
        expected = SCORES[endpoint_id]
        assert received.subject == f"Score {expected}"
        assert f"Person{endpoint_id[2:]}, your score is {expected}" in received.text()
        assert f"Your score is {expected}" in received.html()
        assert "Body for" not in received.text() + received.html()
    assert smtp.to("hijacked@example.com") == []


async def test_a_function_hook_changes_the_email_sms_push_and_voice_messages(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    sms = WebhookSink(secret=SECRET).start()
    push_file, voice_file = tmp_path / "push.jsonl", tmp_path / "voice.jsonl"
    try:
        async with channel_stack(
            db,
            time_skipping_env,
            smtp_server,
            extra_activities=[credit_scores],
            sms_provider_url=sms.url,
            sms_provider_secret=SECRET,
            push_provider_url=f"file://{push_file}",
            voice_provider_url=f"file://{voice_file}",
        ) as state:
            audience = await zoned_audience(
                state,
                [None] * 3,
                extra=members(
                    s1=("SMS", "+15550100001"),
                    s2=("SMS", "+15550100002"),
                    android=("GCM", "gcm-token-1"),
                    ios=("APNS", "apns-token-1"),
                    v1=("VOICE", "+15550100003"),
                ),
            )
            app_id = audience.app_id
            await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
            sms_template = f"scored-sms-{uuid.uuid4().hex[:8]}"
            await ensure_sms_template(
                state, sms_template, "{{User.UserAttributes.FirstName}}: score {{Attributes.CreditScore}}"
            )
            voice_template = f"scored-voice-{uuid.uuid4().hex[:8]}"
            await call(
                state,
                "CreateVoiceTemplate",
                TemplateName=voice_template,
                VoiceTemplateRequest={
                    "Body": "Your score is {{Attributes.CreditScore}}",
                    "LanguageCode": "en-US",
                    "VoiceId": "Joanna",
                },
            )
            body = email_campaign(
                audience.segment_id,
                {"StartTime": iso(START)},
                Hook={"Mode": "FILTER", "LambdaFunctionName": "credit_scores"},
                TemplateConfiguration={
                    "EmailTemplate": {"Name": await email_template(state)},
                    "SMSTemplate": {"Name": sms_template},
                    "VoiceTemplate": {"Name": voice_template},
                },
                MessageConfiguration={
                    "DefaultMessage": {"Title": "Score", "Body": "Score {{Attributes.CreditScore}}"},
                    "GCMMessage": {"Body": "Score {{Attributes.CreditScore}} on Android"},
                },
            )
            campaign_id = await create_campaign(state, app_id, body)
            handle = time_skipping_env.client.get_workflow_handle(
                names.campaign_workflow_id(app_id, campaign_id)
            )
            assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"

            rows = {
                r.endpoint_id: r.status_message or r.status for r in await campaign_messages(db, campaign_id)
            }
            sent = ("ep0", "ep2", "s1", "s2", "android", "ios", "v1")
            assert rows == {"ep1": "HOOK_FILTERED", **dict.fromkeys(sent, "sent")}

            # EMAIL: the hook's attribute; its overrides do not apply to email.
            assert_scored_emails(smtp_server, audience.addresses, ["ep0", "ep2"])
            assert smtp_server.to(audience.addresses["ep1"]) == []
            # SMS: the override replaces the body; without one, the body renders the hook's attribute.
            (s1,) = sms.delivered_to("+15550100001")
            (s2,) = sms.delivered_to("+15550100002")
            assert s1.payload["Message"]["Body"] == "Body for s1"
            assert s2.payload["Message"]["Body"] == "S2: score 720"
            assert sms.delivered_to("hijacked@example.com") == []
            # PUSH: title and body.
            pushed = jsonl(push_file)
            assert set(pushed) == {"gcm-token-1", "apns-token-1"}
            assert pushed["gcm-token-1"]["Message"] == {
                "Title": "Title for android",
                "Body": "Body for android",
            }
            assert pushed["apns-token-1"]["Message"] == {"Title": "Score", "Body": "Score 740"}
            # VOICE: the body (a voice message has no title).
            (spoken,) = jsonl(voice_file).values()
            assert spoken["Address"] == "+15550100003"
            assert spoken["Message"] == {"Body": "Body for v1", "LanguageCode": "en-US", "VoiceId": "Joanna"}
    finally:
        sms.stop()


def slice_of(plan: Any, run_key: str = "v1-0") -> SliceInput:
    return SliceInput(plan=plan, run_key=run_key, scheduled_at=START, send_at=START)


async def test_a_webhook_hook_changes_the_email_and_the_custom_delivery(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    crm = WebhookSink(secret=SECRET).start()
    settings = Settings(
        task_queue=f"idle-{uuid.uuid4().hex}",
        temporal_search_attributes=False,
        smtp_url=smtp_server.url,
        custom_provider_secret=SECRET,
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(time_skipping_env.client)
    try:
        with running_hook_server(tmp_path, score) as hook:
            audience = await zoned_audience(state, [None] * 3, extra=members(c1=("CUSTOM", "crm-1")))
            body = email_campaign(
                audience.segment_id,
                {"StartTime": "2030-01-01T00:00:00Z"},
                Hook={"Mode": "FILTER", "LambdaFunctionName": hook.url},
                TemplateConfiguration={"EmailTemplate": {"Name": await email_template(state)}},
                MessageConfiguration={"CustomMessage": {"Data": "spring"}},
                CustomDeliveryConfiguration={"DeliveryUri": f"{crm.url}/crm", "EndpointTypes": ["CUSTOM"]},
            )
            campaign_id = await create_campaign(state, audience.app_id, body)
            acts = CampaignActivities(
                db,
                settings,
                SmtpTransport(SmtpConfig.from_url(smtp_server.url)),
                hook_tls=hook.client_tls(),
                lanes=SendLanes(settings),
            )
            env = ActivityEnvironment()
            plan = await env.run(
                acts.load_campaign_plan, CampaignRef(app_id=audience.app_id, campaign_id=campaign_id)
            )
            result: SliceResult = await env.run(acts.send_campaign_slice, slice_of(plan))

            assert result.sent == 3
            rows = await campaign_messages(db, campaign_id)
            assert status_counts(rows) == Counter({"sent": 3, "HOOK_FILTERED": 1})
            (event,) = hook.calls
            assert sorted(event["Endpoints"]) == ["c1", "ep0", "ep1", "ep2"]
            assert event["MessageConfiguration"] == {"CustomMessage": {"Data": "spring"}}
            assert_scored_emails(smtp_server, audience.addresses, ["ep0", "ep2"])
            # CUSTOM: the endpoint as the hook returned it (its attribute and overrides), at its stored address.
            (delivery,) = crm.deliveries.values()
            endpoint = delivery.payload["Endpoints"]["c1"]
            assert endpoint["Attributes"] == {"plan": ["pro"], "code": ["C-c1"], "CreditScore": [760]}
            assert endpoint["TitleOverride"] == "Title for c1" and endpoint["BodyOverride"] == "Body for c1"
            assert endpoint["Address"] == "crm-1" and endpoint["ChannelType"] == "CUSTOM"
            assert endpoint["OptOut"] == "NONE"
            assert delivery.payload["Data"] == "spring"
    finally:
        crm.stop()


async def test_an_event_triggered_batch_renders_the_hooks_answer(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    async with channel_stack(db, time_skipping_env, smtp_server, extra_activities=[credit_scores]) as state:
        audience = await zoned_audience(state, [None] * 3)
        now = datetime.now(UTC)
        schedule = event_schedule("purchase", now)
        body = email_campaign(
            audience.segment_id,
            schedule,
            Hook={"Mode": "FILTER", "LambdaFunctionName": "credit_scores"},
            TemplateConfiguration={"EmailTemplate": {"Name": await email_template(state)}},
        )
        campaign_id = await create_campaign(state, audience.app_id, body)
        await call(
            state,
            "PutEvents",
            ApplicationId=audience.app_id,
            EventsRequest={
                "BatchItem": {
                    e: {"Events": {f"buy-{e}": {"EventType": "purchase", "Timestamp": iso(now)}}}
                    for e in audience.addresses
                }
            },
        )

        async def sent() -> None:
            rows = await campaign_messages(db, campaign_id)
            assert status_counts(rows) == Counter({"sent": 2, "HOOK_FILTERED": 1})

        await assert_eventually(sent, timeout=60)
        assert_scored_emails(smtp_server, audience.addresses, ["ep0", "ep2"])
        await call(state, "DeleteCampaign", ApplicationId=audience.app_id, CampaignId=campaign_id)


class LostOnce:
    """The SMTP transport of a worker that dies at its first batch, before anything reaches the server."""

    def __init__(self, transport: SmtpTransport) -> None:
        self.transport = transport
        self.lost = False

    async def send_batch(self, messages: Sequence[OutgoingEmail], commit: CommitFn) -> dict[str, SendResult]:
        if not self.lost:
            self.lost = True
            raise ConnectionResetError("the worker was lost mid-send")
        return await self.transport.send_batch(messages, commit)

    async def close(self) -> None:
        await self.transport.close()


async def test_a_retried_page_asks_the_hook_again_and_still_sends_each_message_once(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    calls: list[int] = []

    @activity.defn(name="moving_scores")
    async def moving_scores(event: dict[str, Any]) -> dict[str, Any]:
        # Answers differently each time it is asked (an external source that changed in between).
        calls.append(len(event["Endpoints"]))
        for endpoint in event["Endpoints"].values():
            endpoint["Attributes"]["CreditScore"] = [f"{len(calls)}00"]
        return dict(event["Endpoints"])

    settings = Settings(task_queue="idle-hooks", temporal_search_attributes=False, smtp_url=smtp_server.url)
    state = AppState(db=db, settings=settings)
    state.use_temporal(time_skipping_env.client)
    audience = await zoned_audience(state, [None] * 4)
    body = email_campaign(
        audience.segment_id,
        {"StartTime": "2030-01-01T00:00:00Z"},
        Hook={"Mode": "FILTER", "LambdaFunctionName": "moving_scores"},
        TemplateConfiguration={"EmailTemplate": {"Name": await email_template(state)}},
    )
    campaign_id = await create_campaign(state, audience.app_id, body)
    transport = LostOnce(SmtpTransport(SmtpConfig.from_url(smtp_server.url)))
    acts = CampaignActivities(db, settings, transport, hook_functions={"moving_scores": moving_scores})
    env = ActivityEnvironment()
    plan = await env.run(
        acts.load_campaign_plan, CampaignRef(app_id=audience.app_id, campaign_id=campaign_id)
    )

    lost: list[BaseException] = []
    try:
        await env.run(acts.send_campaign_slice, slice_of(plan))
    except* ConnectionResetError as group:
        lost += group.exceptions
    assert len(lost) == 1
    assert status_counts(await campaign_messages(db, campaign_id)) == Counter({"pending": 4})
    retried: SliceResult = await env.run(acts.send_campaign_slice, slice_of(plan))
    again: SliceResult = await env.run(acts.send_campaign_slice, slice_of(plan))

    assert (retried.sent, again.sent) == (4, 0)
    assert calls == [4, 4, 4]
    assert status_counts(await campaign_messages(db, campaign_id)) == Counter({"sent": 4})
    for address in audience.addresses.values():
        # Exactly one email each, rendered with the answer of the attempt that sent it.
        (received,) = smtp_server.to(address)
        assert received.subject == "Score 200"
