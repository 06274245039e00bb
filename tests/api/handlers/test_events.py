"""PutEvents: per-item results, endpoint upserts, and nothing lost of what was accepted."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from sojourn.api.handlers.events import wake_waiting_lanes
from sojourn.api.state import AppState
from sojourn.engine import names
from sojourn.settings import Settings
from sojourn.store.event_waits import WaitingLane
from tests.support.seed import call

STAMP = "2026-11-23T10:00:00Z"


async def test_items_are_answered_one_by_one(db: AsyncEngine) -> None:
    state = AppState(db=db, settings=Settings())
    app_id = (await call(state, "CreateApp", CreateApplicationRequest={"Name": "events"}))[
        "ApplicationResponse"
    ]["Id"]
    batch = {
        "good": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": "good@example.com"},
            "Events": {
                "e1": {"EventType": "signup", "Timestamp": STAMP},
                "e2": {"EventType": "", "Timestamp": STAMP},
            },
        },
        "bad": {
            "Endpoint": {"ChannelType": "EMAIL", "Attributes": {"plan": ["x" * 101]}},
            "Events": {"e3": {"EventType": "signup", "Timestamp": STAMP}},
        },
    }
    out = await call(state, "PutEvents", ApplicationId=app_id, EventsRequest={"BatchItem": batch})
    results = out["EventsResponse"]["Results"]
    assert results["good"]["EndpointItemResponse"] == {"StatusCode": 202, "Message": "Accepted"}
    assert results["good"]["EventsItemResponse"]["e1"] == {"StatusCode": 202, "Message": "Accepted"}
    assert results["good"]["EventsItemResponse"]["e2"] == {
        "StatusCode": 400,
        "Message": "EventType is required",
    }
    assert results["bad"]["EndpointItemResponse"]["StatusCode"] == 400
    assert "plan" in results["bad"]["EndpointItemResponse"]["Message"]
    assert results["bad"]["EventsItemResponse"]["e3"]["StatusCode"] == 400
    async with db.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT endpoint_id, event_type FROM events WHERE app_id = :a"), {"a": app_id}
            )
        ).all()
        endpoint = await call(state, "GetEndpoint", ApplicationId=app_id, EndpointId="good")
    assert stored == [("good", "signup")]
    assert endpoint["EndpointResponse"]["Address"] == "good@example.com"


@workflow.defn(name="LaneBellRecorder")
class LaneBellRecorder:
    """Stands in for a cohort: records the lanes it is told about."""

    def __init__(self) -> None:
        self.woken: list[str] = []

    @workflow.signal
    def events_arrived(self, lane: str) -> None:
        self.woken.append(lane)

    @workflow.query
    def lanes(self) -> list[str]:
        return sorted(self.woken)

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_every_waiting_lane_is_woken_even_when_a_signal_fails(
    db: AsyncEngine, dev_env: WorkflowEnvironment
) -> None:
    state = AppState(db=db, settings=Settings())
    state.use_temporal(dev_env.client)
    queue = f"tq-{uuid.uuid4().hex}"
    app_id = f"app-{uuid.uuid4().hex[:8]}"
    async with Worker(
        dev_env.client,
        task_queue=queue,
        workflows=[LaneBellRecorder],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handles = [
            await dev_env.client.start_workflow(
                LaneBellRecorder.run, id=names.cohort_workflow_id(app_id, "j", n), task_queue=queue
            )
            for n in range(20)
        ]
        lanes = {WaitingLane("j", n, "0.1") for n in range(20)} | {WaitingLane("j", 3, "0.2")}
        # A cohort that has finished (no workflow to signal) is sorted first: it must not stop the others.
        lanes.add(WaitingLane("a-finished", 0, "0"))
        await wake_waiting_lanes(state, app_id, lanes)
        for n, handle in enumerate(handles):
            assert await handle.query(LaneBellRecorder.lanes) == (["0.1", "0.2"] if n == 3 else ["0.1"])
        for handle in handles:
            await handle.terminate()
