"""CohortWorkflow: moves a batch of participants that entered together through the journey graph.

Each step is one activity call for a whole lane (a sub-cohort): set-based SQL and batched sends. Splits and
holdouts divide a lane into new lanes that go on in parallel. Per-participant truth stays in Postgres; this
workflow's history carries only lane names and counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sojourn.domain.journeys import JourneyDefinition
    from sojourn.engine import names
    from sojourn.engine.inputs import CohortInput, LaneEnd, StepInput, StepResult

STEP_TIMEOUT = timedelta(minutes=30)
# Steps heartbeat at least once per send batch; a worker that dies mid-step is noticed this fast.
STEP_HEARTBEAT = timedelta(seconds=20)
# The definition's settings a send step needs to apply quiet time, open hours and closed days.
SENDING_SETTINGS = {
    "QuietTime",
    "WaitForQuietTime",
    "SendingSchedule",
    "OpenHours",
    "ClosedDays",
    "Schedule",
    "TimezoneEstimationMethods",
}
STEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# Participants released by their own events go ahead of the task queue's backlog of batch steps (priority 1
# of Temporal's 1-5; everything else runs at the default 3): the release and the step right after it.
URGENT = Priority(priority_key=1)
# Releases run as local activities inside the workflow task that took the signal (patched in; see
# ``_await_events``): no task-queue round trip and no wait for one of the worker's activity slots.
RELEASE_IN_WORKFLOW_TASK = "release-as-local-activity"
RELEASE_TIMEOUT = timedelta(minutes=1)


@workflow.defn(name="CohortWorkflow")
class CohortWorkflow:
    """Runs one cohort of a journey; pause/resume/cancel arrive as signals from the JourneyWorkflow."""

    def __init__(self) -> None:
        self.paused = False
        self.cancelled = False
        self.waiting: dict[str, str] = {}
        # Lanes told that events their waiting participants wait for arrived (wait-for-event splits).
        self.bells: set[str] = set()
        # Lanes released early from a wait-for-event split, running beside the lane that waits on.
        self.spawned: list[asyncio.Task[None]] = []

    @workflow.signal
    def set_state(self, state: str) -> None:
        """ACTIVE, PAUSED or CANCELLED, forwarded by the journey."""
        self.paused = state == "PAUSED"
        self.cancelled = self.cancelled or state == "CANCELLED"

    @workflow.signal
    def events_arrived(self, lane: str) -> None:
        """Events arrived for participants of ``lane`` waiting at a wait-for-event split (from the event path)."""
        self.bells.add(lane)

    @workflow.query
    def lanes(self) -> dict[str, str]:
        """What each live lane is doing right now."""
        return dict(self.waiting)

    @workflow.run
    async def run(self, inp: CohortInput) -> int:
        """Move the cohort from the start activity to the end of every branch.

        Returns:
            The number of participants the cohort started with.
        """
        self.inp = inp
        self.definition = JourneyDefinition.model_validate(inp.definition)
        self.sending = self.definition.model_dump(mode="json", exclude_none=True, include=SENDING_SETTINGS)
        start = self.definition.StartActivity
        not_before = inp.not_before
        if not_before is not None and start is not None and not_before > workflow.now():
            # LocalTime: wait for the members' own clocks to show the journey's start.
            if not await self._sleep("0", start, not_before - workflow.now()):
                await self._end_lane("0", "cancelled" if self.cancelled else "ended", [])
                start = None
        await self._run_lane("0", start)
        while self.spawned:
            running, self.spawned = self.spawned, []
            await asyncio.gather(*running)
        await self._notify_journey()
        return inp.size

    async def _run_lane(
        self, lane: str, activity_id: str | None, resume_at: datetime | None = None, urgent: bool = False
    ) -> None:
        waited: list[str] = []
        step = 0
        if resume_at is not None and activity_id is not None:
            # Held back by quiet time or closed hours: run the same activity again once released.
            if not await self._sleep(lane, activity_id, resume_at - workflow.now()):
                await self._end_lane(lane, "cancelled" if self.cancelled else "ended", [])
                return
        while activity_id is not None:
            if not await self._gate(lane, waited):
                return
            delay, waits, next_id = self._plan_delays(activity_id)
            if delay > timedelta(0):
                if not await self._sleep(lane, activity_id, delay):
                    await self._end_lane(lane, "cancelled" if self.cancelled else "ended", [*waited, *waits])
                    return
                urgent = False  # released participants who then wait are no longer in a hurry
            waited += waits
            activity_id = next_id
            if activity_id is None:
                break
            if not await self._gate(lane, waited):
                return
            act = self.definition.Activities[activity_id]
            if act.waits_for_events:
                if not await self._await_events(lane, activity_id, waited):
                    return
                waited = []
            self.waiting[lane] = f"running {act.kind} activity '{activity_id}'"
            self._details()
            result: StepResult = await workflow.execute_activity(
                "run_step",
                StepInput(
                    app_id=self.inp.app_id,
                    journey_id=self.inp.journey_id,
                    version=self.inp.version,
                    cohort_no=self.inp.cohort_no,
                    lane=lane,
                    activity_id=activity_id,
                    activity=act.model_dump(mode="json", exclude_none=True),
                    waited=waited,
                    visit=f"{lane}:{step}",
                    now=workflow.now(),
                    limits=self.definition.Limits.model_dump(exclude_none=True)
                    if self.definition.Limits
                    else {},
                    sending=self.sending,
                ),
                result_type=StepResult,
                start_to_close_timeout=STEP_TIMEOUT,
                heartbeat_timeout=STEP_HEARTBEAT,
                retry_policy=STEP_RETRY,
                summary=f"{act.kind} {activity_id} (lane {lane})",
                priority=URGENT if urgent else Priority.default,
            )
            waited, step, urgent = [], step + 1, False
            live = [b for b in result.branches if b.count > 0]
            self.waiting.pop(lane, None)
            if len(live) == 1 and live[0].lane == lane and live[0].resume_at is None:
                activity_id = live[0].next_activity
                continue
            await asyncio.gather(
                *(self._run_lane(b.lane, b.next_activity, b.resume_at) for b in live if b.next_activity)
            )
            return
        if waited:
            # The lane ended on a Wait: its members leave the journey now.
            await self._end_lane(lane, "completed", waited)
        self.waiting.pop(lane, None)

    def _plan_delays(self, activity_id: str) -> tuple[timedelta, list[str], str | None]:
        """The time to wait before the lane's next step, as one timer.

        Consecutive Wait activities, and the evaluation wait of a split right after them, are added up so the
        lane sleeps once (fewer history events). Returns the delay, the Wait activities it covers, and the
        activity to run after it (None when the lane ends on a Wait).
        """
        now = workflow.now()
        due = now
        waits: list[str] = []
        current: str | None = activity_id
        while current is not None:
            act = self.definition.Activities[current]
            if act.Wait is not None and act.Wait.WaitTime is not None:
                due += act.Wait.WaitTime.delay(due)
                waits.append(current)
                current = act.Wait.NextActivity
                continue
            evaluation = act.evaluation_wait
            # A wait-for-event split waits on its own, so participants can leave it early.
            if evaluation is not None and not act.waits_for_events:
                due += evaluation.delay(due)
            break
        return due - now, waits, current

    def _step_input(self, lane: str, activity_id: str, **fields: Any) -> StepInput:
        return StepInput(
            app_id=self.inp.app_id,
            journey_id=self.inp.journey_id,
            version=self.inp.version,
            cohort_no=self.inp.cohort_no,
            lane=lane,
            activity_id=activity_id,
            activity=self.definition.Activities[activity_id].model_dump(mode="json", exclude_none=True),
            now=workflow.now(),
            **fields,
        )

    async def _await_events(self, lane: str, activity_id: str, waited: list[str]) -> bool:
        """Wait out a wait-for-event split's evaluation time, releasing members as their events arrive.

        Returns:
            True when the wait is over (the split then evaluates the rest); False if the lane ended.
        """
        if waited:
            await workflow.execute_activity(
                "arrive",
                self._step_input(lane, activity_id, waited=waited),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=STEP_RETRY,
                summary=f"lane {lane} arrives at {activity_id}",
            )
        evaluation = self.definition.Activities[activity_id].evaluation_wait
        delay = evaluation.delay(workflow.now()) if evaluation is not None else timedelta(0)
        releases = 0

        async def release() -> None:
            nonlocal releases
            releases += 1
            inp = self._step_input(lane, activity_id, target_lane=f"{lane}.e{releases}")
            summary = f"release lane {lane} at {activity_id}"
            result: StepResult
            if workflow.patched(RELEASE_IN_WORKFLOW_TASK):
                # A release is one short transaction: run it in this workflow task, so the released lane's
                # next step is scheduled in the same task's completion (measured: the round trip through
                # the task queue, an activity slot and a second workflow task was most of a release).
                result = await workflow.execute_local_activity(
                    "release_waiting",
                    inp,
                    result_type=StepResult,
                    start_to_close_timeout=RELEASE_TIMEOUT,
                    retry_policy=STEP_RETRY,
                    summary=summary,
                )
            else:
                result = await workflow.execute_activity(
                    "release_waiting",
                    inp,
                    result_type=StepResult,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                    summary=summary,
                    priority=URGENT,
                )
            for branch in result.branches:
                if branch.count > 0 and branch.next_activity is not None:
                    self.spawned.append(
                        asyncio.create_task(self._run_lane(branch.lane, branch.next_activity, urgent=True))
                    )

        self.bells.discard(lane)
        if delay > timedelta(0) and not await self._sleep(lane, activity_id, delay, bell=release):
            await self._end_lane(lane, "cancelled" if self.cancelled else "ended", [])
            return False
        return True

    async def _gate(self, lane: str, waited: list[str]) -> bool:
        """Hold while the journey is paused; False when it was cancelled (the lane's members are released)."""
        if self.paused and not self.cancelled:
            self.waiting[lane] = "paused"
            self._details()
            await workflow.wait_condition(lambda: not self.paused or self.cancelled)
        if self.cancelled:
            await self._end_lane(lane, "cancelled", waited)
            return False
        return True

    async def _sleep(
        self,
        lane: str,
        activity_id: str,
        delay: timedelta,
        bell: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Sleep ``delay`` of journey time: the clock stops while paused. False if cancelled or past the deadline.

        Args:
            bell: Called (while the clock runs on) each time the lane is told events arrived.
        """
        remaining = delay
        while remaining > timedelta(0):
            until = workflow.now() + remaining
            if until > self.inp.deadline:
                remaining = self.inp.deadline - workflow.now()
                if remaining <= timedelta(0):
                    return False
            self.waiting[lane] = (
                f"waiting at '{activity_id}' until {(workflow.now() + remaining).isoformat(timespec='seconds')}"
            )
            self._details()
            started = workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: self.paused or self.cancelled or (bell is not None and lane in self.bells),
                    timeout=remaining,
                )
            except TimeoutError:
                remaining = timedelta(0)
                break
            if self.cancelled:
                return False
            if bell is not None and lane in self.bells and not self.paused:
                self.bells.discard(lane)
                await bell()
                remaining -= workflow.now() - started
                continue
            remaining -= workflow.now() - started
            self.waiting[lane] = f"paused at '{activity_id}' with {remaining} left"
            self._details()
            await workflow.wait_condition(lambda: not self.paused or self.cancelled)
            if self.cancelled:
                return False
        return workflow.now() < self.inp.deadline

    async def _end_lane(self, lane: str, status: str, waited: list[str]) -> None:
        await workflow.execute_activity(
            "end_lane",
            LaneEnd(
                app_id=self.inp.app_id,
                journey_id=self.inp.journey_id,
                cohort_no=self.inp.cohort_no,
                lane=lane,
                status=status,
                waited=waited,
            ),
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=STEP_RETRY,
            summary=f"lane {lane} leaves: {status}",
        )
        self.waiting.pop(lane, None)

    def _details(self) -> None:
        lines = [
            f"cohort {self.inp.cohort_no} of journey {self.inp.journey_id} ({self.inp.size} participants)"
        ]
        lines += [f"- lane {lane}: {what}" for lane, what in sorted(self.waiting.items())]
        workflow.set_current_details("\n".join(lines))

    async def _notify_journey(self) -> None:
        handle = workflow.get_external_workflow_handle(
            names.journey_workflow_id(self.inp.app_id, self.inp.journey_id)
        )
        try:
            await handle.signal("cohort_done", self.inp.cohort_no)
        except Exception:
            workflow.logger.warning("journey workflow did not take the cohort_done signal")
