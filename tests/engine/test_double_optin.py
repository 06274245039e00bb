"""Double opt-in: the form API, DoubleOptInWorkflow on the time-skipping server, the confirmation page."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from sojourn.api.app import create_app
from sojourn.api.state import AppState
from sojourn.channels.email import SmtpConfig, SmtpTransport
from sojourn.domain.optin import form_key, optin_workflow_id
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from sojourn.store import consent_repo
from tests.support.helpers import assert_eventually, skip_time_until_done
from tests.support.seed import app_with_audience, call
from tests.support.smtp import SmtpSink

CONSENT = "Weekly product news from Example Ltd. Unsubscribe at any time."
UA = "Mozilla/5.0 (test)"


@pytest_asyncio.fixture
async def stack(
    db: AsyncEngine, time_skipping_env: WorkflowEnvironment, smtp_server: SmtpSink
) -> AsyncIterator[tuple[AppState, httpx.AsyncClient]]:
    settings = Settings(
        task_queue=f"tq-{uuid.uuid4().hex}",
        temporal_search_attributes=False,
        smtp_url=smtp_server.url,
        public_url="https://news.example.com",
    )
    state = AppState(db=db, settings=settings)
    state.use_temporal(time_skipping_env.client)
    worker = build_worker(
        time_skipping_env.client,
        db,
        settings,
        transport=SmtpTransport(SmtpConfig.from_url(f"{smtp_server.url}?return_path=bounces@sojourn.test")),
    )
    app = create_app(settings, state)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with worker, httpx.AsyncClient(transport=transport, base_url="http://sojourn.test") as http:
        yield state, http


def _confirm_path(smtp_server: SmtpSink, address: str) -> str:
    (message,) = smtp_server.to(address)
    assert message.subject == "Please confirm your subscription" and CONSENT in message.text()
    # DSN bounces go to the bounce mailbox (the envelope sender), not to the From address.
    assert message.mail_from == "bounces@sojourn.test"
    assert "valid for 7 days" in message.text()
    match = re.search(r"https://news\.example\.com(/confirm/\S+)", message.text())
    assert match is not None
    return match.group(1)


async def _signup(http: httpx.AsyncClient, state: AppState, app_id: str, address: str) -> httpx.Response:
    return await http.post(
        f"/optin/{app_id}",
        json={
            "form_key": form_key(app_id, state.settings.consent_key),
            "address": address,
            "channel": "EMAIL",
            "user_id": "u-1",
            "attributes": {"plan": "pro"},
            "consent_text": CONSENT,
        },
        headers={"User-Agent": UA},
    )


async def _consent_rows(db: AsyncEngine, app_id: str) -> list[tuple[str, str | None, str | None, str | None]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT status, method, ip, user_agent FROM consent WHERE app_id = :a ORDER BY id"),
            {"a": app_id},
        )
        return [(r.status, r.method, r.ip, r.user_agent) for r in rows]


async def test_confirmed_on_day_three_is_subscribed(
    stack: tuple[AppState, httpx.AsyncClient],
    db: AsyncEngine,
    smtp_server: SmtpSink,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    state, http = stack
    audience = await app_with_audience(state, members=0, templates=())
    address = f"{uuid.uuid4().hex[:10]}@example.com"

    forbidden = await http.post(f"/optin/{audience.app_id}", json={"form_key": "wrong", "address": address})
    assert forbidden.status_code == 403 and "form-key" in forbidden.json()["message"]
    no_text = await http.post(
        f"/optin/{audience.app_id}",
        json={"form_key": form_key(audience.app_id, state.settings.consent_key), "address": address},
    )
    assert no_text.status_code == 400 and "consent_text" in no_text.json()["message"]

    first = await _signup(http, state, audience.app_id, address)
    assert first.status_code == 202 and first.json()["status"] == "pending_confirmation"
    endpoint_id = first.json()["endpoint_id"]

    async def mailed() -> None:
        assert len(smtp_server.to(address)) == 1

    await assert_eventually(mailed)
    # Signing up again while pending: the same workflow, no second email.
    assert (await _signup(http, state, audience.app_id, address)).status_code == 202
    path = _confirm_path(smtp_server, address)

    await time_skipping_env.sleep(timedelta(days=3))
    page = await http.get(path)
    assert page.status_code == 200 and "<form method='post'" in page.text
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, audience.app_id, endpoint_id, "EMAIL") == "pending"
    confirmed = await http.post(path, headers={"User-Agent": UA})
    assert confirmed.status_code == 200 and "confirmed" in confirmed.text

    handle = time_skipping_env.client.get_workflow_handle(optin_workflow_id(audience.app_id, address))
    assert await skip_time_until_done(time_skipping_env, handle) == "granted"
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, audience.app_id, endpoint_id, "EMAIL") == "granted"
    rows = await _consent_rows(db, audience.app_id)
    assert rows[-1] == ("granted", "double_opt_in", "127.0.0.1", UA)
    assert {r[0] for r in rows[:-1]} == {"pending"}
    endpoint = await call(state, "GetEndpoint", ApplicationId=audience.app_id, EndpointId=endpoint_id)
    assert endpoint["EndpointResponse"]["Address"] == address
    assert endpoint["EndpointResponse"]["Attributes"] == {"plan": ["pro"]}

    again = await _signup(http, state, audience.app_id, address)
    assert again.status_code == 200 and again.json()["status"] == "confirmed"
    assert "Already confirmed" in (await http.post(path)).text
    assert len(smtp_server.to(address)) == 1
    assert (await http.post(path[:-3] + "abc")).status_code == 400
    async with db.connect() as conn:
        ledger = (
            await conn.execute(
                text("SELECT status FROM messages WHERE app_id = :a AND activity_id = 'optin-confirmation'"),
                {"a": audience.app_id},
            )
        ).all()
    assert [r.status for r in ledger] == ["sent"]


async def test_unconfirmed_expires_after_seven_days_and_gets_no_journey_email(
    stack: tuple[AppState, httpx.AsyncClient],
    db: AsyncEngine,
    smtp_server: SmtpSink,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    state, http = stack
    audience = await app_with_audience(state, members=1, templates=("welcome",))
    address = f"{uuid.uuid4().hex[:10]}@example.com"
    # An HTML form post (what a sign-up page sends) gets a page back.
    response = await http.post(
        f"/optin/{audience.app_id}",
        data={
            "form_key": form_key(audience.app_id, state.settings.consent_key),
            "address": address,
            "consent_text": CONSENT,
            "attributes": '{"plan": ["pro"]}',
        },
    )
    assert response.status_code == 202 and "Check your inbox" in response.text
    async with db.connect() as conn:
        (endpoint_id,) = await consent_repo.endpoint_ids_for_address(conn, audience.app_id, address)

    async def mailed() -> None:
        assert len(smtp_server.to(address)) == 1

    await assert_eventually(mailed)
    path = _confirm_path(smtp_server, address)

    # The pending endpoint is in the segment (plan=pro) but a journey does not mail it.
    request = {
        "Name": "hello",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": {"SegmentStartCondition": {"SegmentId": audience.segment_id}},
        "Schedule": {"StartTime": "2020-01-01T00:00:00Z"},
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "welcome"}}},
    }
    created = await call(state, "CreateJourney", ApplicationId=audience.app_id, WriteJourneyRequest=request)
    journey_id = created["JourneyResponse"]["Id"]
    journey = time_skipping_env.client.get_workflow_handle(
        names.journey_workflow_id(audience.app_id, journey_id)
    )
    assert await skip_time_until_done(time_skipping_env, journey) == "COMPLETED"
    metrics = await call(
        state,
        "GetJourneyExecutionActivityMetrics",
        ApplicationId=audience.app_id,
        JourneyId=journey_id,
        JourneyActivityId="welcome",
    )
    assert metrics["JourneyExecutionActivityMetricsResponse"]["Metrics"] == {
        "SUCCESS": "1",
        "PENDING_CONFIRMATION": "1",
    }
    assert [m.subject for m in smtp_server.to(address)] == ["Please confirm your subscription"]

    handle = time_skipping_env.client.get_workflow_handle(optin_workflow_id(audience.app_id, address))
    assert await skip_time_until_done(time_skipping_env, handle) == "expired"
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, audience.app_id, endpoint_id, "EMAIL") == "expired"
    status, method, _, _ = (await _consent_rows(db, audience.app_id))[-1]
    assert (status, method) == ("expired", "double_opt_in")
    late = await http.post(path)
    assert late.status_code == 410
