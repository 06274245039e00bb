"""ContactCenter on the time-skipping server: participants who left the entry segment, or would no longer take
the split branch they took, are removed just before the hand-off; the rest go to a real local webhook."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from tests.support.helpers import assert_eventually, record_histories, skip_time_until_done
from tests.support.seed import app_with_audience, call
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookSink

SECRET = "contact-center-secret"


def cc_journey(segment_id: str, hand_off: str) -> dict[str, Any]:
    vip = {"Attributes": {"vip": {"AttributeType": "INCLUSIVE", "Values": ["yes"]}}}
    return {
        "Name": "callback",
        "State": "ACTIVE",
        "StartActivity": "isvip",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "JourneyChannelSettings": {"ConnectCampaignArn": hand_off},
        "Activities": {
            "isvip": {
                "ConditionalSplit": {
                    "Condition": {"Conditions": [{"SegmentDimensions": vip}], "Operator": "ALL"},
                    "TrueActivity": "later",
                }
            },
            "later": {"Wait": {"WaitTime": {"WaitFor": "PT1H"}, "NextActivity": "call"}},
            "call": {"ContactCenter": {}},
        },
    }


async def test_re_evaluation_removes_who_no_longer_qualifies(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> None:
    sink = WebhookSink(secret=SECRET).start()
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}",
        temporal_search_attributes=False,
        smtp_url=smtp_server.url,
        custom_provider_secret=SECRET,
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(time_skipping_env.client)
    worker = build_worker(
        time_skipping_env.client, db, settings, transport=SmtpTransport(SmtpConfig.from_url(smtp_server.url))
    )
    try:
        async with worker:
            audience = await app_with_audience(state, members=0, templates=())
            app_id = audience.app_id
            phones = {f"v{i}": f"+1555020000{i}" for i in range(1, 5)} | {"v5": "555-0205"}  # v5: not E.164
            await call(
                state,
                "UpdateEndpointsBatch",
                ApplicationId=app_id,
                EndpointBatchRequest={
                    "Item": [
                        {
                            "Id": endpoint_id,
                            "ChannelType": "VOICE",
                            "Address": phone,
                            "Attributes": {"plan": ["pro"], "vip": ["no" if endpoint_id == "v4" else "yes"]},
                        }
                        for endpoint_id, phone in phones.items()
                    ]
                },
            )
            created = await call(
                state,
                "CreateJourney",
                ApplicationId=app_id,
                WriteJourneyRequest=cc_journey(audience.segment_id, f"{sink.url}/dial"),
            )
            journey_id = created["JourneyResponse"]["Id"]

            async def waiting() -> None:
                async with db.connect() as conn:
                    n = await conn.scalar(
                        text(
                            "SELECT count(*) FROM participants WHERE journey_id = :j AND position = 'later'"
                        ),
                        {"j": journey_id},
                    )
                assert n == 4

            await assert_eventually(waiting, timeout=60)
            # While they wait: v2 leaves the entry segment, v3 is no longer a VIP (its split branch no longer holds).
            await call(
                state,
                "UpdateEndpoint",
                ApplicationId=app_id,
                EndpointId="v2",
                EndpointRequest={"Attributes": {"plan": ["free"]}},
            )
            await call(
                state,
                "UpdateEndpoint",
                ApplicationId=app_id,
                EndpointId="v3",
                EndpointRequest={"Attributes": {"vip": ["no"]}},
            )
            handle = time_skipping_env.client.get_workflow_handle(
                names.journey_workflow_id(app_id, journey_id)
            )
            assert await skip_time_until_done(time_skipping_env, handle) == "COMPLETED"
            await record_histories(
                time_skipping_env.client, [handle.id, f"{handle.id}/cohort/0"], "contact_center_reevaluation"
            )

            calls = [d.payload for d in sink.deliveries.values()]
            assert len(calls) == 1
            assert set(calls[0]["Endpoints"]) == {"v1"}
            assert calls[0]["ConnectCampaignArn"] == f"{sink.url}/dial"
            assert calls[0]["Endpoints"]["v1"]["Address"] == phones["v1"]
            metrics = await call(
                state,
                "GetJourneyExecutionActivityMetrics",
                ApplicationId=app_id,
                JourneyId=journey_id,
                JourneyActivityId="call",
            )
            got = metrics["JourneyExecutionActivityMetricsResponse"]["Metrics"]
            assert got["REMOVED_DUE_TO_REEVALUATION"] == "2" and got["SUCCESS"] == "1"
            assert got["CONTACT_CENTER_FAILURE"] == "1", "v5's number cannot be dialled"
            async with db.connect() as conn:
                lanes = dict(
                    (
                        await conn.execute(
                            text(
                                "SELECT endpoint_id, lane FROM participants WHERE journey_id = :j AND status = 'completed'"
                            ),
                            {"j": journey_id},
                        )
                    ).all()
                )
            assert (
                lanes["v2"].endswith(".r") and lanes["v3"].endswith(".r") and not lanes["v1"].endswith(".r")
            )
    finally:
        sink.stop()
