"""Campaign send activities on the real PostgreSQL: caps under concurrent sends, MaximumDuration, the FILTER hook."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from sojourn.api.handlers import HANDLERS
from sojourn.api.server import RequestContext
from sojourn.api.state import AppState
from sojourn.channels.email import NullTransport, SmtpConfig, SmtpTransport
from sojourn.engine.campaign_activities import CampaignActivities, quiet_reason
from sojourn.engine.campaign_hook import CampaignHook, HookFailed
from sojourn.engine.campaign_inputs import CampaignPlan, CampaignRef, SliceInput, SliceResult
from sojourn.settings import Settings
from sojourn.store.db import create_engine
from tests.support.campaigns import (
    campaign_messages,
    create_campaign,
    email_campaign,
    status_counts,
    zoned_audience,
)
from tests.support.hook_server import HookServer, running_hook_server
from tests.support.seed import call
from tests.support.smtp import SmtpSink

AT = datetime(2027, 6, 1, 12, tzinfo=UTC)


@pytest_asyncio.fixture
async def state(db: AsyncEngine, time_skipping_env: WorkflowEnvironment) -> AsyncIterator[AppState]:
    # No worker polls this queue: the campaigns' workflows wait, and the tests drive the activities directly.
    settings = Settings(task_queue="idle-campaigns", temporal_search_attributes=False, smtp_url="null://")
    app_state = AppState(db=db, settings=settings)
    app_state.use_temporal(time_skipping_env.client)
    yield app_state


async def plan_of(acts: CampaignActivities, app_id: str, campaign_id: str) -> CampaignPlan:
    plan: CampaignPlan = await ActivityEnvironment().run(
        acts.load_campaign_plan, CampaignRef(app_id=app_id, campaign_id=campaign_id)
    )
    return plan


async def send(acts: CampaignActivities, plan: CampaignPlan, run_key: str) -> SliceResult:
    result: SliceResult = await ActivityEnvironment().run(
        acts.send_campaign_slice, SliceInput(plan=plan, run_key=run_key, scheduled_at=AT, send_at=AT)
    )
    return result


@pytest.mark.parametrize("limits", [{"Total": 1}, {"Daily": 1}])
async def test_caps_hold_under_concurrent_send_activities_of_one_campaign(
    state: AppState, db: AsyncEngine, limits: dict[str, int]
) -> None:
    audience = await zoned_audience(state, [None] * 60)
    campaign_id = await create_campaign(
        state,
        audience.app_id,
        email_campaign(audience.segment_id, {"StartTime": "2030-01-01T00:00:00Z"}, Limits=limits),
    )
    acts = CampaignActivities(db, state.settings, NullTransport())
    plan = await plan_of(acts, audience.app_id, campaign_id)

    results = await asyncio.gather(*(send(acts, plan, f"v1-{run}") for run in range(4)))

    rows = await campaign_messages(db, campaign_id)
    assert Counter(r.endpoint_id for r in rows if r.status == "sent") == dict.fromkeys(audience.addresses, 1)
    reason = "TOTAL_CAP" if "Total" in limits else "DAILY_CAP"
    assert status_counts(rows) == Counter({"sent": 60, reason: 180})
    assert sum(r.sent for r in results) == 60


async def test_a_retried_send_sends_nothing_twice(state: AppState, db: AsyncEngine) -> None:
    audience = await zoned_audience(state, [None] * 7)
    campaign_id = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, {"StartTime": "2030-01-01T00:00:00Z"})
    )
    acts = CampaignActivities(db, state.settings, NullTransport())
    plan = await plan_of(acts, audience.app_id, campaign_id)
    first = await send(acts, plan, "v1-0")
    again = await send(acts, plan, "v1-0")
    assert (first.sent, again.sent) == (7, 0)
    assert status_counts(await campaign_messages(db, campaign_id)) == Counter({"sent": 7})


async def test_maximum_duration_stops_a_run_that_takes_too_long(state: AppState, db: AsyncEngine) -> None:
    audience = await zoned_audience(state, [None] * 20)
    campaign_id = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, {"StartTime": "2030-01-01T00:00:00Z"})
    )
    acts = CampaignActivities(db, state.settings, NullTransport())
    plan = await plan_of(acts, audience.app_id, campaign_id)
    # 5 messages a second for at most one second (below the API's 60 s minimum, to keep the test short).
    plan = plan.model_copy(update={"limits": {"MessagesPerSecond": 5, "MaximumDuration": 1}})
    result = await send(acts, plan, "v1-0")
    assert result.stopped and 0 < result.targeted < 20
    assert len(await campaign_messages(db, campaign_id)) == result.targeted


async def test_a_run_sent_in_parts_reaches_every_member_once(state: AppState, db: AsyncEngine) -> None:
    audience = await zoned_audience(state, [None] * 90)
    campaign_id = await create_campaign(
        state,
        audience.app_id,
        email_campaign(audience.segment_id, {"StartTime": "2030-01-01T00:00:00Z"}, HoldoutPercent=10),
    )
    acts = CampaignActivities(db, state.settings, NullTransport())
    plan = await plan_of(acts, audience.app_id, campaign_id)
    whole = SliceInput(plan=plan, run_key="v1-0", scheduled_at=AT, send_at=AT)
    parts = await asyncio.gather(
        *(
            ActivityEnvironment().run(
                acts.send_campaign_slice, whole.model_copy(update={"part": i, "parts": 3})
            )
            for i in range(3)
        )
    )
    rows = await campaign_messages(db, campaign_id)
    assert Counter(r.endpoint_id for r in rows).most_common(1)[0][1] == 1
    assert all(part.targeted > 0 for part in parts)
    total = parts[0].plus(parts[1]).plus(parts[2])
    assert total.sent == len(rows) == 90 - total.holdout and total.holdout > 0


async def test_messages_per_second_holds_for_two_workers_sending_parts_of_a_run(
    state: AppState, db: AsyncEngine
) -> None:
    """Two workers (each its own engine and pool) pace through one clock in Postgres, not each on its own."""
    audience = await zoned_audience(state, [None] * 60)
    campaign_id = await create_campaign(
        state, audience.app_id, email_campaign(audience.segment_id, {"StartTime": "2030-01-01T00:00:00Z"})
    )
    workers = [create_engine(db.url.render_as_string(hide_password=False), pool_size=2) for _ in range(2)]
    try:
        acts = [CampaignActivities(engine, state.settings, NullTransport()) for engine in workers]
        plan = await plan_of(acts[0], audience.app_id, campaign_id)
        plan = plan.model_copy(update={"limits": {"MessagesPerSecond": 20}})
        whole = SliceInput(plan=plan, run_key="v1-0", scheduled_at=AT, send_at=AT)
        results = await asyncio.gather(
            *(
                ActivityEnvironment().run(
                    a.send_campaign_slice, whole.model_copy(update={"part": i, "parts": 2})
                )
                for i, a in enumerate(acts)
            )
        )
    finally:
        for engine in workers:
            await engine.dispose()
    assert sum(r.sent for r in results) == 60
    async with db.connect() as conn:
        first, last = (
            await conn.execute(
                text("SELECT min(sent_at), max(sent_at) FROM messages WHERE campaign_id = :c"),
                {"c": campaign_id},
            )
        ).one()
    # 60 messages at 20/s: the last page of 20 may leave 2 s after the first, not before (each worker pacing
    # alone at 20/s would send its 30 within about 1 s).
    assert (last - first).total_seconds() >= 1.9


def test_quiet_reason_needs_a_known_zone_and_a_window() -> None:
    assert quiet_reason("Europe/London", AT.replace(hour=23), "22:00", "07:00") == "QUIET_TIME"
    assert quiet_reason(None, AT.replace(hour=23), "22:00", "07:00") is None
    assert quiet_reason("Europe/London", AT.replace(hour=23), None, None) is None


# --------------------------------------------------------------------------------------------------------
# The FILTER hook against a real https server


@pytest.fixture
def hook_server(tmp_path: Path) -> Iterator[HookServer]:
    with running_hook_server(tmp_path) as server:
        yield server


async def test_filter_hook_keeps_only_the_endpoints_it_returns(
    state: AppState, db: AsyncEngine, hook_server: HookServer
) -> None:
    audience = await zoned_audience(state, [None] * 60)
    body = email_campaign(
        audience.segment_id,
        {"StartTime": "2030-01-01T00:00:00Z"},
        Hook={"Mode": "FILTER", "LambdaFunctionName": hook_server.url},
    )
    campaign_id = await create_campaign(state, audience.app_id, body)
    acts = CampaignActivities(db, state.settings, NullTransport(), hook_tls=hook_server.client_tls())
    plan = await plan_of(acts, audience.app_id, campaign_id)
    result = await send(acts, plan, "v1-0")

    assert result.sent == 30
    rows = {r.endpoint_id: r.status_message or r.status for r in await campaign_messages(db, campaign_id)}
    assert rows == {f"ep{i}": "sent" if i % 2 == 0 else "HOOK_FILTERED" for i in range(60)}
    assert sorted(len(c["Endpoints"]) for c in hook_server.calls) == [10, 50]
    first = hook_server.calls[0]
    assert first["ApplicationId"] == audience.app_id and first["CampaignId"] == campaign_id
    assert first["TreatmentId"] == "0" and first["ActivityId"] == "v1-0-t0"
    assert first["ScheduledTime"] == "2027-06-01T12:00:00Z"


async def test_a_custom_function_hook_and_a_failing_one() -> None:
    seen: list[int] = []

    async def keep_first(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(len(event["Endpoints"]))
        return {k: v for k, v in event["Endpoints"].items() if k == "a"}

    def broken(_event: dict[str, Any]) -> Any:
        seen.append(-1)
        return ["not", "a", "map"]

    endpoints = {k: {"Id": k} for k in ("a", "b")}
    hook = CampaignHook("keep_first", {"keep_first": keep_first, "broken": broken})
    assert set(await hook.keep({"CampaignId": "c"}, endpoints)) == {"a"}
    with pytest.raises(HookFailed, match="failed 3 times"):
        await CampaignHook("broken", {"broken": broken}).keep({}, endpoints)
    assert seen == [2, -1, -1, -1]
    with pytest.raises(HookFailed, match="no custom function named 'missing'"):
        await CampaignHook("missing", {}).keep({}, endpoints)


async def test_list_mail_is_filtered_by_the_claim_itself(
    state: AppState, db: AsyncEngine, smtp_server: SmtpSink
) -> None:
    audience = await zoned_audience(state, [None] * 5)
    list_name = f"news{uuid.uuid4().hex[:8]}"
    await sesv2(
        state,
        "CreateContactList",
        ContactListName=list_name,
        Topics=[{"TopicName": "weekly", "DisplayName": "Weekly", "DefaultSubscriptionStatus": "OPT_OUT"}],
    )
    opted_in, _not_a_contact, opted_out, default, everything = (
        audience.addresses[f"ep{i}"] for i in range(5)
    )
    weekly = "weekly"
    await sesv2(
        state,
        "CreateContact",
        ContactListName=list_name,
        EmailAddress=opted_in.upper(),
        TopicPreferences=[{"TopicName": weekly, "SubscriptionStatus": "OPT_IN"}],
    )
    await sesv2(
        state,
        "CreateContact",
        ContactListName=list_name,
        EmailAddress=opted_out,
        TopicPreferences=[{"TopicName": weekly, "SubscriptionStatus": "OPT_OUT"}],
    )
    await sesv2(state, "CreateContact", ContactListName=list_name, EmailAddress=default)
    await sesv2(
        state,
        "CreateContact",
        ContactListName=list_name,
        EmailAddress=everything,
        TopicPreferences=[{"TopicName": weekly, "SubscriptionStatus": "OPT_IN"}],
    )
    async with db.begin() as conn:  # UnsubscribeAll without the account suppression that comes with it
        await conn.execute(
            text("UPDATE contacts SET unsubscribe_all = true WHERE list_name = :l AND email_address = :e"),
            {"l": list_name, "e": everything},
        )
    for name, topic in (("list_weekly", weekly), ("list_nothing", "no-such-topic")):
        await call(
            state,
            "CreateEmailTemplate",
            TemplateName=f"{name}_{list_name}",
            EmailTemplateRequest={
                "Subject": "This week, {{User.UserAttributes.FirstName}}",
                "HtmlPart": '<p>News</p><a href="https://example.com/read">Read</a>',
                "Headers": [
                    {
                        "Name": "X-SES-LIST-MANAGEMENT-OPTIONS",
                        "Value": f"contactListName={list_name}; topicName={topic}",
                    }
                ],
            },
        )
    acts = CampaignActivities(db, state.settings, SmtpTransport(SmtpConfig.from_url(smtp_server.url)))
    campaign_id = await create_campaign(
        state,
        audience.app_id,
        email_campaign(
            audience.segment_id,
            {"StartTime": "2030-01-01T00:00:00Z"},
            TemplateConfiguration={"EmailTemplate": {"Name": f"list_weekly_{list_name}"}},
        ),
    )
    result = await send(acts, await plan_of(acts, audience.app_id, campaign_id), "v1-0")

    unsubscribed = f"UNSUBSCRIBED: not subscribed to {list_name}/weekly"
    assert result.sent == 1
    assert status_counts(await campaign_messages(db, campaign_id)) == Counter({"sent": 1, unsubscribed: 4})
    (received,) = smtp_server.messages
    assert received.to == opted_in
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/u/" in received.message["List-Unsubscribe"]

    missing = await create_campaign(
        state,
        audience.app_id,
        email_campaign(
            audience.segment_id,
            {"StartTime": "2030-01-01T00:00:00Z"},
            TemplateConfiguration={"EmailTemplate": {"Name": f"list_nothing_{list_name}"}},
        ),
    )
    result = await send(acts, await plan_of(acts, audience.app_id, missing), "v1-0")
    reasons = status_counts(await campaign_messages(db, missing))
    assert result.sent == 0 and sum(reasons.values()) == 5
    assert all(reason.startswith("LIST_NOT_FOUND: TopicName 'no-such-topic'") for reason in reasons)


async def sesv2(state: AppState, operation: str, **params: object) -> dict[str, object]:
    """Run one sesv2 operation's handler, as the server would."""
    ctx = RequestContext(request_id=uuid.uuid4().hex, operation=operation, service="sesv2", state=state)
    return dict(await HANDLERS[f"sesv2:{operation}"](ctx, dict(params)))
