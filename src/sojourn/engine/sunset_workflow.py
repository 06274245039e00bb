"""SunsetWorkflow: one per app (id ``sunset/{app_id}``), unengaged removal once a day.

A durable loop rather than a Temporal Schedule: the policy lives in Postgres (``app_privacy``), each pass
reads it, so ``sojourn hygiene enable`` only stores the policy and makes sure the workflow runs; disabling it
ends the workflow at its next pass. Each day is one activity and one timer, then continue-as-new, so the
history never grows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from sojourn.engine import names
    from sojourn.engine.privacy_inputs import SunsetInput, SunsetResult

PASS_INTERVAL = timedelta(days=1)
ACTIVITY_TIMEOUT = timedelta(minutes=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10))


def sunset_workflow_id(app_id: str) -> str:
    """The id of the app's SunsetWorkflow."""
    return f"sunset/{app_id}"


@workflow.defn(name="SunsetWorkflow")
class SunsetWorkflow:
    """Daily unengaged removal for one app. Query ``last_pass``; signal ``run_now`` to skip the wait."""

    def __init__(self) -> None:
        self.last: SunsetResult | None = None
        self.wake = False

    @workflow.signal
    def run_now(self) -> None:
        """Run the next pass now instead of at the end of the day."""
        self.wake = True

    @workflow.query
    def last_pass(self) -> SunsetResult | None:
        """The result of this run's pass."""
        return self.last

    @workflow.run
    async def run(self, inp: SunsetInput) -> str:
        """One pass, a day's wait, continue-as-new; ends when the app's policy is disabled or gone."""
        self.last = await workflow.execute_activity(
            "sunset_pass",
            inp,
            result_type=SunsetResult,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        if not self.last.enabled:
            return "disabled"
        workflow.set_current_details(
            f"pass {inp.passes + 1}: {self.last.found} unengaged ({self.last.days} days), "
            f"{self.last.policy} applied to {self.last.applied}"
        )
        try:
            await workflow.wait_condition(lambda: self.wake, timeout=PASS_INTERVAL)
        except TimeoutError:
            pass
        workflow.continue_as_new(SunsetInput(app_id=inp.app_id, passes=inp.passes + 1))


async def ensure_sunset_workflow(client: Any, app_id: str, *, task_queue: str, observe: bool = True) -> str:
    """Start the app's SunsetWorkflow; if it runs already, wake it so a changed policy applies now.

    Args:
        client: A connected Temporal client.
        app_id: The app.
        task_queue: The worker's task queue.
        observe: Set the AppId/SojournKind search attributes (off for servers without them).

    Returns:
        The workflow id.
    """
    workflow_id = sunset_workflow_id(app_id)
    try:
        await client.start_workflow(
            SunsetWorkflow.run,
            SunsetInput(app_id=app_id),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(names.APP_ID, app_id), SearchAttributePair(names.SOJOURN_KIND, "sunset")]
            )
            if observe
            else None,
            static_summary=f"unengaged removal for app {app_id}",
        )
    except WorkflowAlreadyStartedError:
        # Running: its next pass reads the new policy; wake it so that pass is now.
        await client.get_workflow_handle(workflow_id).signal(SunsetWorkflow.run_now)
    return workflow_id
