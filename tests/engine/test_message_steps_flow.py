"""SMS and PUSH journey activities on the time-skipping server: a real webhook SMS provider, the file push
provider, delivery reports that a later split tests, caps and quiet time, and unconfigured providers."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.callbacks import apply_reports
from sojourn.api.errors import NotFoundError
from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.helpers import assert_eventually, record_histories, skip_time_until_done
from tests.support.seed import Audience, app_with_audience, call
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookSink

SMS_SECRET = "sms-test-secret"
GOOD_NUMBER, BAD_NUMBER = "+15550100001", "+15550100009"


@asynccontextmanager
async def channel_stack(
    db: AsyncEngine, env: WorkflowEnvironment, smtp: SmtpSink, **providers: Any
) -> AsyncIterator[AppState]:
    """The API state and a worker whose send lanes use the given provider settings."""
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}", temporal_search_attributes=False, smtp_url=smtp.url, **providers
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(env.client)
    worker = build_worker(env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp.url)))
    async with worker:
        yield state


async def add_endpoints(state: AppState, app_id: str, endpoints: dict[str, dict[str, Any]]) -> None:
    """SMS and push endpoints in the audience's segment (plan=pro)."""
    items = [
        {
            "Id": endpoint_id,
            "Attributes": {"plan": ["pro"], "code": [f"C-{endpoint_id}"]},
            "User": {"UserId": f"user-{endpoint_id}", "UserAttributes": {"FirstName": [endpoint_id.upper()]}},
            **fields,
        }
        for endpoint_id, fields in endpoints.items()
    ]
    await call(state, "UpdateEndpointsBatch", ApplicationId=app_id, EndpointBatchRequest={"Item": items})


async def sms_and_push_templates(state: AppState) -> None:
    """The SMS templates ``code`` and ``thanks`` and the push template ``nudge`` (account-level: made once)."""
    wanted = [
        (
            "Sms",
            "code",
            {
                "SMSTemplateRequest": {
                    "Body": "Hi {{User.UserAttributes.FirstName}}, your code is {{Attributes.code}}"
                }
            },
        ),
        ("Sms", "thanks", {"SMSTemplateRequest": {"Body": "Thanks!"}}),
        (
            "Push",
            "nudge",
            {
                "PushNotificationTemplateRequest": {
                    "Default": {"Title": "Hello", "Body": "Default {{Attributes.code}}"},
                    "APNS": {"Body": "Apple {{Attributes.code}}", "Sound": "default"},
                }
            },
        ),
    ]
    for kind, name, request in wanted:
        try:
            await call(state, f"Get{kind}Template", TemplateName=name)
        except NotFoundError:
            await call(state, f"Create{kind}Template", TemplateName=name, **request)


async def metrics(state: AppState, app_id: str, journey_id: str, activity_id: str) -> dict[str, str]:
    got = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=app_id,
        JourneyId=journey_id,
        JourneyActivityId=activity_id,
    )
    return dict(got["JourneyExecutionActivityMetricsResponse"]["Metrics"])


async def message_rows(
    db: AsyncEngine, journey_id: str
) -> dict[tuple[str, str], tuple[str, str | None, str]]:
    """(activity, endpoint) -> (status, status_message, message id)."""
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT activity_id, endpoint_id, status, status_message, message_id FROM messages "
                "WHERE journey_id = :j"
            ),
            {"j": journey_id},
        )
        return {(r.activity_id, r.endpoint_id): (r.status, r.status_message, r.message_id) for r in rows}


def channels_journey(segment_id: str) -> dict[str, Any]:
    delivered = {
        "EventCondition": {
            "MessageActivity": "code",
            "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["_SMS.SUCCESS"]}},
        }
    }
    return {
        "Name": "channels",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "welcome", "NextActivity": "code"}},
            "code": {
                "SMS": {
                    "TemplateName": "code",
                    "MessageConfig": {
                        "MessageType": "TRANSACTIONAL",
                        "OriginationNumber": "+15550000000",
                        "SenderId": "ACME",
                    },
                    "NextActivity": "nudge",
                }
            },
            "nudge": {
                "PUSH": {
                    "TemplateName": "nudge",
                    "MessageConfig": {"TimeToLive": "60"},
                    "NextActivity": "gotit",
                }
            },
            "gotit": {
                "ConditionalSplit": {
                    "Condition": {"Conditions": [delivered], "Operator": "ALL"},
                    "EvaluationWaitTime": {"WaitFor": "PT1H"},
                    "TrueActivity": "thanks",
                }
            },
            "thanks": {"SMS": {"TemplateName": "thanks"}},
        },
    }


async def test_email_sms_push_and_a_split_on_the_sms_delivery_report(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    sink = WebhookSink(secret=SMS_SECRET, status_for_address={BAD_NUMBER: 400}).start()
    push_file = tmp_path / "push.jsonl"
    try:
        async with channel_stack(
            db,
            time_skipping_env,
            smtp_server,
            sms_provider_url=sink.url,
            sms_provider_secret=SMS_SECRET,
            push_provider_url=f"file://{push_file}",
        ) as state:
            audience = await app_with_audience(state, members=1, templates=("welcome",))
            app_id = audience.app_id
            await call(state, "UpdateSmsChannel", ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
            await add_endpoints(
                state,
                app_id,
                {
                    "sms1": {"ChannelType": "SMS", "Address": GOOD_NUMBER},
                    "sms2": {"ChannelType": "SMS", "Address": BAD_NUMBER},
                    "ios": {"ChannelType": "APNS", "Address": "apns-token-1"},
                    "android": {"ChannelType": "GCM", "Address": "gcm-token-1"},
                },
            )
            await sms_and_push_templates(state)
            created = await call(
                state,
                "CreateJourney",
                ApplicationId=app_id,
                WriteJourneyRequest=channels_journey(audience.segment_id),
            )
            journey_id = created["JourneyResponse"]["Id"]

            async def pushed() -> dict[tuple[str, str], tuple[str, str | None, str]]:
                rows = await message_rows(db, journey_id)
                assert rows.get(("nudge", "ios"), ("pending",))[0] == "sent"
                return rows

            # Time stands still until we wait for the result: the split waits its hour after this report.
            rows = await assert_eventually(pushed, timeout=60)
            accepted, unknown = await apply_reports(
                state, "SMS", [{"MessageId": rows[("code", "sms1")][2], "Status": "DELIVERED"}]
            )
            assert (accepted, unknown) == (1, [])
            handle = time_skipping_env.client.get_workflow_handle(
                names.journey_workflow_id(app_id, journey_id)
            )
            assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
            await record_histories(
                time_skipping_env.client, [handle.id, f"{handle.id}/cohort/0"], "sms_push_split"
            )

            # The SMS provider got the code (rendered, number over sender id, ledger id as idempotency key),
            # then the thanks after the delivery report sent sms1 down the Yes branch.
            got = sink.delivered_to(GOOD_NUMBER)
            assert [d.payload["Message"]["Body"] for d in got] == ["Hi SMS1, your code is C-sms1", "Thanks!"]
            first = got[0].payload
            assert first["Message"]["OriginationNumber"] == "+15550000000"
            assert "SenderId" not in first["Message"]
            assert first["Channel"] == "SMS" and first["EndpointId"] == "sms1"
            rows = await message_rows(db, journey_id)
            assert got[0].key == rows[("code", "sms1")][2]
            assert rows[("code", "sms2")][0] == "failed"

            # Push: each endpoint gets its service's block over Default, with the activity's TimeToLive.
            lines = [json.loads(line) for line in push_file.read_text().splitlines()]
            by_address = {line["Address"]: line["Message"] for line in lines}
            assert by_address == {
                "apns-token-1": {
                    "Title": "Hello",
                    "Body": "Apple C-ios",
                    "Sound": "default",
                    "TimeToLive": 60,
                },
                "gcm-token-1": {"Title": "Hello", "Body": "Default C-android", "TimeToLive": 60},
            }

            code = await metrics(state, app_id, journey_id, "code")
            assert code["SUCCESS"] == "1"
            assert code["PERMANENT_FAILURE"] == "1"
            assert code["ENDPOINT_MISSING_CHANNEL"] == "3", "the email and push endpoints get no SMS"
            nudge = await metrics(state, app_id, journey_id, "nudge")
            assert nudge["SUCCESS"] == "2" and nudge["ENDPOINT_MISSING_CHANNEL"] == "3"
            split = await metrics(state, app_id, journey_id, "gotit")
            assert split["Branch_1"] == "1" and split["Branch_2"] == "4"
            assert (await metrics(state, app_id, journey_id, "thanks"))["SUCCESS"] == "1"
            assert sink.delivered_to(BAD_NUMBER) == []
    finally:
        sink.stop()


def sms_only_journey(segment_id: str, activities: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "Name": "sms",
        "State": "ACTIVE",
        "StartActivity": next(iter(activities)),
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": activities,
        **extra,
    }


async def run_journey(state: AppState, env: WorkflowEnvironment, app_id: str, request: dict[str, Any]) -> str:
    created = await call(state, "CreateJourney", ApplicationId=app_id, WriteJourneyRequest=request)
    journey_id: str = created["JourneyResponse"]["Id"]
    handle = env.client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id))
    assert await skip_time_until_done(env, handle) == "COMPLETED"
    return journey_id


async def sms_audience(state: AppState, zones: dict[str, str]) -> Audience:
    audience = await app_with_audience(state, members=0, templates=())
    await call(
        state,
        "UpdateSmsChannel",
        ApplicationId=audience.app_id,
        SMSChannelRequest={"Enabled": True, "SenderId": "SOJOURN"},
    )
    await add_endpoints(
        state,
        audience.app_id,
        {
            endpoint_id: {
                "ChannelType": "SMS",
                "Address": f"+1555010{i:04d}",
                "Demographic": {"Timezone": zone},
            }
            for i, (endpoint_id, zone) in enumerate(zones.items())
        },
    )
    await sms_and_push_templates(state)
    return audience


async def test_quiet_time_and_caps_apply_to_sms(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    sms_file = tmp_path / "sms.jsonl"
    async with channel_stack(
        db, time_skipping_env, smtp_server, sms_provider_url=f"file://{sms_file}"
    ) as state:
        # quiet: in its quiet time now (UTC); away: twelve hours ahead, outside it.
        audience = await sms_audience(state, {"quiet": "Etc/UTC", "away": "Etc/GMT-12"})
        now = datetime.now(UTC)
        start = (now - timedelta(hours=1)).strftime("%H:00")
        end = (now + timedelta(hours=2)).strftime("%H:00")
        journey_id = await run_journey(
            state,
            time_skipping_env,
            audience.app_id,
            sms_only_journey(
                audience.segment_id,
                {
                    "first": {"SMS": {"TemplateName": "code", "NextActivity": "second"}},
                    "second": {"SMS": {"TemplateName": "thanks"}},
                },
                QuietTime={"Start": start, "End": end},
                WaitForQuietTime=False,
                Limits={"TotalCap": 1},
            ),
        )
        sent = [json.loads(line) for line in sms_file.read_text().splitlines()]
        assert [(m["EndpointId"], m["Message"]["Body"]) for m in sent] == [
            ("away", "Hi AWAY, your code is C-away")
        ]
        first = await metrics(state, audience.app_id, journey_id, "first")
        assert first["SUCCESS"] == "1" and first["QUIET_TIME"] == "1"
        second = await metrics(state, audience.app_id, journey_id, "second")
        assert second["TOTAL_CAP"] == "1" and second["QUIET_TIME"] == "1"
        assert "SUCCESS" not in second


async def test_unconfigured_providers_fail_every_message_with_a_reason(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    async with channel_stack(db, time_skipping_env, smtp_server) as state:
        audience = await sms_audience(state, {"a": "Etc/UTC", "b": "Etc/UTC"})
        await add_endpoints(state, audience.app_id, {"ios": {"ChannelType": "APNS", "Address": "tok"}})
        journey_id = await run_journey(
            state,
            time_skipping_env,
            audience.app_id,
            sms_only_journey(
                audience.segment_id,
                {
                    "code": {"SMS": {"TemplateName": "code", "NextActivity": "nudge"}},
                    "nudge": {"PUSH": {"TemplateName": "nudge"}},
                },
            ),
        )
        rows = await message_rows(db, journey_id)
        assert rows[("code", "a")][0] == "failed"
        assert "SOJOURN_SMS_PROVIDER_URL" in (rows[("code", "a")][1] or "")
        assert "SOJOURN_PUSH_PROVIDER_URL" in (rows[("nudge", "ios")][1] or "")
        assert (await metrics(state, audience.app_id, journey_id, "code"))["UNSUPPORTED_CHANNEL"] == "2"
        assert (await metrics(state, audience.app_id, journey_id, "nudge"))["UNSUPPORTED_CHANNEL"] == "1"

        # An app without an SMS channel cannot send SMS, whatever the provider.
        await call(state, "DeleteSmsChannel", ApplicationId=audience.app_id)
        journey_id = await run_journey(
            state,
            time_skipping_env,
            audience.app_id,
            sms_only_journey(audience.segment_id, {"code": {"SMS": {"TemplateName": "code"}}}),
        )
        rows = await message_rows(db, journey_id)
        assert "UpdateSmsChannel" in (rows[("code", "a")][1] or "")


async def test_quiet_time_holds_an_sms_until_it_ends(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    sms_file = tmp_path / "sms.jsonl"
    async with channel_stack(
        db, time_skipping_env, smtp_server, sms_provider_url=f"file://{sms_file}"
    ) as state:
        audience = await sms_audience(state, {"quiet": "Etc/UTC", "away": "Etc/GMT-12"})
        now = datetime.now(UTC)
        start = (now - timedelta(hours=1)).strftime("%H:00")
        end = (now + timedelta(hours=2)).strftime("%H:00")
        journey_id = await run_journey(
            state,
            time_skipping_env,
            audience.app_id,
            sms_only_journey(
                audience.segment_id,
                {"first": {"SMS": {"TemplateName": "code"}}},
                QuietTime={"Start": start, "End": end},
                WaitForQuietTime=True,
            ),
        )
        lines = [json.loads(line) for line in sms_file.read_text().splitlines()]
        assert [m["EndpointId"] for m in lines] == ["away", "quiet"], (
            "the quiet one last, once its quiet time ended"
        )
        assert {m["Message"]["SenderId"] for m in lines} == {"SOJOURN"}, "the SMS channel's sender by default"
        first = await metrics(state, audience.app_id, journey_id, "first")
        assert first["SUCCESS"] == "2" and first["QUIET_TIME_WAIT"] == "1"
        async with db.connect() as conn:
            lane = await conn.scalar(
                text("SELECT lane FROM participants WHERE journey_id = :j AND endpoint_id = 'quiet'"),
                {"j": journey_id},
            )
        assert str(lane).startswith("0.q")
