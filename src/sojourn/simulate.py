"""``sojourn journeys simulate``: run a journey against a synthetic audience on the time-skipping server.

Everything is real but the audience and the mail server: a throw-away PostgreSQL (or the one given), the
Temporal time-skipping test server, sojourn's own worker and API handlers. Emails go to a transport that
sends nothing and, in place of people, records an open for a share of the messages and a click for a share of
the openers (chosen by a hash of the message id, so a run is reproducible). Days of waits pass in seconds;
the report is the journey's own execution metrics, per activity.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from sojourn.api.handlers import HANDLERS
from sojourn.api.server import RequestContext
from sojourn.api.state import AppState
from sojourn.channels.email import CommitFn, OutgoingEmail, SendResult
from sojourn.domain.journeys import JourneyDefinition, template_names
from sojourn.engine import names
from sojourn.engine.worker import build_worker
from sojourn.settings import Settings
from sojourn.store import journeys_repo
from sojourn.store.db import create_engine
from sojourn.store.events_repo import EventRow, record_events

DEFAULT_ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "",  # no time zone: quiet time does not apply to them
)


@dataclass(frozen=True)
class Audience:
    """The synthetic audience: its size, time zones and how it engages.

    Attributes:
        size: Endpoints to create.
        zones: ``Demographic.Timezone`` values, assigned round-robin ("" for none).
        open_rate: Share of delivered emails that get opened.
        click_rate: Share of opened emails that get clicked.
    """

    size: int = 1000
    zones: Sequence[str] = DEFAULT_ZONES
    open_rate: float = 0.3
    click_rate: float = 0.3


@dataclass
class Report:
    """What a simulation measured: the journey's metrics and each activity's."""

    journey: dict[str, int]
    activities: dict[str, dict[str, int]]
    definition: JourneyDefinition
    elapsed_journey_time: str = ""
    notes: list[str] = field(default_factory=list)


def _share(message_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}/{message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class EngagingTransport:
    """Sends nothing; records opens and clicks for a reproducible share of the messages, as recipients would."""

    def __init__(self, db: AsyncEngine, audience: Audience) -> None:
        self.db = db
        self.audience = audience
        self.app_by_message: dict[str, tuple[str, str]] = {}

    async def send_batch(self, messages: Sequence[OutgoingEmail], commit: CommitFn) -> dict[str, SendResult]:
        """Commit every message as sent, then record the simulated engagement with it."""
        await commit([m.message_id for m in messages])
        rows = await self._engagement(messages)
        if rows:
            async with self.db.begin() as conn:
                await record_events(conn, rows)
        return {m.message_id: SendResult(True, 250, "simulated") for m in messages}

    async def _engagement(self, messages: Sequence[OutgoingEmail]) -> list[EventRow]:
        from sqlalchemy import text

        opened = [m.message_id for m in messages if _share(m.message_id, "open") < self.audience.open_rate]
        if not opened:
            return []
        async with self.db.connect() as conn:
            owners = {
                r.message_id: (r.app_id, r.endpoint_id)
                for r in await conn.execute(
                    text("SELECT message_id, app_id, endpoint_id FROM messages WHERE message_id = ANY(:ids)"),
                    {"ids": opened},
                )
            }
        now = datetime.now(UTC)
        rows: list[EventRow] = []
        for message_id in opened:
            app_id, endpoint_id = owners[message_id]
            kinds = ["_email.open"]
            if _share(message_id, "click") < self.audience.click_rate:
                kinds.append("_email.click")
            rows += [
                EventRow(app_id, endpoint_id, f"sim-{kind}-{message_id}", kind, now, message_id=message_id)
                for kind in kinds
            ]
        return rows

    async def close(self) -> None:
        """Nothing to release."""


async def _call(state: AppState, operation: str, **params: Any) -> dict[str, Any]:
    ctx = RequestContext(request_id=uuid.uuid4().hex, operation=operation, service="pinpoint", state=state)
    return await HANDLERS[operation](ctx, params)


async def _seed(state: AppState, definition: JourneyDefinition, audience: Audience) -> tuple[str, str]:
    """An app with an email channel, stand-in templates, the audience and a segment of all of it."""
    app = await _call(state, "CreateApp", CreateApplicationRequest={"Name": f"simulate-{definition.Name}"})
    app_id = str(app["ApplicationResponse"]["Id"])
    await _call(
        state,
        "UpdateEmailChannel",
        ApplicationId=app_id,
        EmailChannelRequest={
            "FromAddress": "simulate@sojourn.invalid",
            "Identity": "sojourn.invalid",
            "Enabled": True,
        },
    )
    for name, _ in sorted(template_names(definition), key=lambda t: t[0]):
        try:
            await _call(state, "GetEmailTemplate", TemplateName=name)
        except Exception:
            await _call(
                state,
                "CreateEmailTemplate",
                TemplateName=name,
                EmailTemplateRequest={"Subject": name, "HtmlPart": f"<p>{name}</p>", "TextPart": name},
            )
    zones = list(audience.zones) or [""]
    for start in range(0, audience.size, 100):
        items = [
            {
                "Id": f"sim{i}",
                "ChannelType": "EMAIL",
                "Address": f"sim{i}@simulate.invalid",
                "Attributes": {"simulated": ["yes"]},
                **({"Demographic": {"Timezone": zones[i % len(zones)]}} if zones[i % len(zones)] else {}),
            }
            for i in range(start, min(start + 100, audience.size))
        ]
        await _call(state, "UpdateEndpointsBatch", ApplicationId=app_id, EndpointBatchRequest={"Item": items})
    segment = await _call(
        state,
        "CreateSegment",
        ApplicationId=app_id,
        WriteSegmentRequest={
            "Name": "simulated",
            "Dimensions": {"Attributes": {"simulated": {"AttributeType": "INCLUSIVE", "Values": ["yes"]}}},
        },
    )
    return app_id, str(segment["SegmentResponse"]["Id"])


def simulation_request(definition: JourneyDefinition, segment_id: str, now: datetime) -> dict[str, Any]:
    """The journey as it runs in the simulation: entered by the synthetic segment, starting now, active.

    An event-triggered journey is entered the same way (every simulated endpoint enters at the start).
    """
    body = definition.model_dump(mode="json", exclude_none=True)
    body["StartCondition"] = {"SegmentStartCondition": {"SegmentId": segment_id}}
    schedule = dict(body.get("Schedule") or {})
    schedule["StartTime"] = now.isoformat()
    body["Schedule"] = schedule
    body["State"] = "ACTIVE"
    body.pop("RefreshFrequency", None)
    body.pop("RefreshOnSegmentUpdate", None)
    return body


async def simulate(
    definition: JourneyDefinition,
    audience: Audience,
    *,
    database_url: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Run ``definition`` to its end against ``audience`` and report its metrics.

    Args:
        definition: The journey (from the DSL or the API).
        audience: The synthetic audience.
        database_url: A migrated PostgreSQL to work in; None starts a throw-away embedded one.
        progress: Called with a line of progress now and then.
    """
    with tempfile.TemporaryDirectory(prefix="sojourn-simulate-") as tmp:
        postgres = None
        if database_url is None:
            from sojourn.stack import EmbeddedPostgres, free_local_port
            from sojourn.store.migrate import upgrade_async

            progress("starting a throw-away PostgreSQL")
            postgres = EmbeddedPostgres(Path(tmp) / "pg", port=free_local_port())
            postgres.start()
            postgres.ensure_database("sojourn")
            database_url = postgres.url("sojourn")
            await upgrade_async(database_url)
        try:
            return await _simulate_in(definition, audience, database_url, progress)
        finally:
            if postgres is not None:
                postgres.stop()


async def _simulate_in(
    definition: JourneyDefinition, audience: Audience, database_url: str, progress: Callable[[str], None]
) -> Report:
    from sojourn.stack import temporal_test_server_path

    db = create_engine(database_url)
    progress("starting the time-skipping Temporal server")
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server_path()
    )
    try:
        settings = Settings(
            task_queue=f"simulate-{uuid.uuid4().hex}", temporal_search_attributes=False, smtp_url="null://"
        )
        state = AppState(db=db, settings=settings)
        state.use_temporal(env.client)
        async with build_worker(env.client, db, settings, transport=EngagingTransport(db, audience)):
            progress(f"creating {audience.size} simulated endpoints")
            app_id, segment_id = await _seed(state, definition, audience)
            started = await env.get_current_time()
            created = await _call(
                state,
                "CreateJourney",
                ApplicationId=app_id,
                WriteJourneyRequest=simulation_request(definition, segment_id, started),
            )
            journey_id = str(created["JourneyResponse"]["Id"])
            progress("running the journey (its waits pass in skipped time)")
            handle = env.client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id))
            skipping: Any = env  # the time-skipping environment (its type is private to the SDK)
            async with skipping.time_skipping_unlocked():
                await handle.result()
            run = await handle.describe()
        async with db.connect() as conn:
            journey = await journeys_repo.journey_metrics(conn, journey_id)
            activities = {
                aid: await journeys_repo.activity_metrics(conn, journey_id, aid, act.metric_type)
                for aid, act in definition.Activities.items()
            }
        took = (run.close_time - run.start_time) if run.close_time and run.start_time else None
        return Report(journey, activities, definition, elapsed_journey_time=str(took or "unknown"))
    finally:
        await env.shutdown()
        await db.dispose()


def render_report(
    report: Report, tree: Callable[[JourneyDefinition, Mapping[str, Mapping[str, str]]], list[str]]
) -> list[str]:
    """The lines ``sojourn journeys simulate`` prints: journey totals, then the graph with per-activity counts."""
    lines = [
        f"simulated journey {report.definition.Name}: {report.elapsed_journey_time} of journey time",
        "  " + ", ".join(f"{k} {v}" for k, v in sorted(report.journey.items())),
    ]
    lines += tree(
        report.definition, {a: {k: str(v) for k, v in m.items()} for a, m in report.activities.items()}
    )
    return lines
