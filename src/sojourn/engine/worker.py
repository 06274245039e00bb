"""The sojourn worker: journey and cohort workflows plus their activities on one task queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from sojourn.channels.email import EmailTransport
from sojourn.channels.priority import Lane
from sojourn.channels.senders import SendLanes
from sojourn.engine.campaign_activities import CampaignActivities
from sojourn.engine.campaign_workflow import CampaignWorkflow
from sojourn.engine.client import connect
from sojourn.engine.cohort_workflow import CohortWorkflow
from sojourn.engine.journey_activities import JourneyActivities
from sojourn.engine.journey_workflow import JourneyWorkflow
from sojourn.engine.optin_workflow import DoubleOptInWorkflow
from sojourn.engine.privacy_activities import PrivacyActivities
from sojourn.engine.step_activities import StepActivities
from sojourn.engine.sunset_workflow import SunsetWorkflow
from sojourn.settings import Settings
from sojourn.store.db import create_engine

log = logging.getLogger(__name__)

WORKFLOWS: Sequence[type] = (
    JourneyWorkflow,
    CohortWorkflow,
    CampaignWorkflow,
    DoubleOptInWorkflow,
    SunsetWorkflow,
)


def build_worker(
    client: Client,
    db: AsyncEngine,
    settings: Settings,
    *,
    transport: EmailTransport | None = None,
    task_queue: str | None = None,
    extra_activities: Sequence[Any] = (),
    lanes: SendLanes | None = None,
) -> Worker:
    """A Temporal worker running sojourn's workflows and activities.

    Args:
        client: Connected Temporal client.
        db: The database engine the activities use.
        settings: Process settings.
        transport: Email transport (default: from ``settings.smtp_url``).
        task_queue: Override of ``settings.task_queue`` (tests use a random one).
        extra_activities: Custom activities of this deployment (from ``activities/``).
        lanes: The process's send lanes (default: built from ``settings``); journey emails take the
            transactional lane, campaign blasts the bulk lane.
    """
    lanes = lanes or SendLanes(settings)
    # Campaign blasts take the bulk lane, so a blast never delays a journey's or a direct send's messages.
    bulk = transport or lanes.email(Lane.BULK)
    transport = transport or lanes.email(Lane.TRANSACTIONAL)
    functions = named_functions(extra_activities)
    steps = StepActivities(db, settings, transport, lanes=lanes, custom_functions=functions)
    privacy = PrivacyActivities(db, settings, transport, lanes=lanes)
    campaigns = CampaignActivities(db, settings, bulk, hook_functions=functions, lanes=lanes)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            *JourneyActivities(db, settings).all(),
            *steps.all(),
            *campaigns.all(),
            *privacy.all(),
            *extra_activities,
        ],
        # Our models are deterministic and expensive to re-import per workflow: pass them through the sandbox.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("sojourn")
        ),
        max_concurrent_activities=50,
    )


def named_functions(functions: Sequence[Any]) -> dict[str, Any]:
    """Custom functions by activity name and Python name: what a campaign hook's LambdaFunctionName, a CUSTOM
    activity's DeliveryUri or a ContactCenter hand-off may name."""
    named: dict[str, Any] = {}
    for fn in functions:
        named[getattr(fn, "__name__", repr(fn))] = fn
        definition = getattr(fn, "__temporal_activity_definition", None)
        if definition is not None and definition.name:
            named[definition.name] = fn
    return named


def deployment_activities() -> list[Any]:
    """The custom activities of this deployment: ``ACTIVITIES`` of the ``activities`` package, if importable."""
    try:
        import activities
    except ModuleNotFoundError:
        return []
    return list(getattr(activities, "ACTIVITIES", []))


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the worker until ``stop`` is set (or forever)."""
    client = await connect(settings)
    db = create_engine(settings.database_url or "", pool_size=20)
    worker = build_worker(client, db, settings, extra_activities=deployment_activities())
    log.info("worker polling task queue %r on %s", settings.task_queue, settings.effective_temporal_address)
    async with worker:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    await db.dispose()
