"""CampaignWorkflow: one per campaign (``campaign/{app_id}/{campaign_id}``). Owns the schedule, runs the runs.

It loops over the schedule's run times with workflow timers; each run is one ``send_campaign_slice`` activity
(one per time zone for local-time campaigns) that streams the segment as it is at that moment, or, with
several worker processes (``plan.parts``), as many concurrent activities, each sending the members of one
CohortId residue, which the task queue spreads over the processes. EVENT campaigns
instead take the endpoints PutEvents queued (a ``doorbell`` signal wakes the workflow; it also polls).
``updated`` (UpdateCampaign) makes it reload the campaign before its next run; a pause holds the next runs
(runs that fall due during the pause are skipped); DeleteCampaign cancels it. Missed runs after downtime
follow :func:`sojourn.domain.campaign_schedule.due_run`. It continues-as-new every few runs.

Behind workflow patches (running campaigns replay unchanged): a campaign the plan says is INVALID (a template it
uses is gone, its channel is missing or disabled) records INVALID and runs nothing until an update or an hourly
reload finds it runnable (runs that fell due meanwhile are skipped, as after a pause); an A/B treatment with its
own Schedule.StartTime sends its share of each run that long after the run
(:func:`sojourn.domain.campaign_schedule.treatment_slices`).
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sojourn.domain.campaign_schedule import (
        LocalSlice,
        Run,
        TreatmentSlice,
        due_run,
        local_slices,
        next_run,
        treatment_slices,
    )
    from sojourn.engine.campaign_inputs import (
        CampaignCarry,
        CampaignInput,
        CampaignPlan,
        CampaignRef,
        CampaignStateChange,
        EventBatchInput,
        EventBatchResult,
        RunFinish,
        RunStart,
        SliceInput,
        SliceResult,
    )

ACTIVITY_TIMEOUT = timedelta(minutes=10)
# A run's send activity may take long (a million endpoints); it heartbeats every page.
SEND_TIMEOUT = timedelta(hours=6)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# A local-time run starts this long before its wall time in the schedule's zone: zones lie up to 26 hours apart.
LOCAL_TIME_LEAD = timedelta(hours=26)
# A slice that starts this much after its time is judged (quiet time, caps) at its real send time.
LATE_AFTER = timedelta(minutes=1)
# A paused campaign reloads itself this often, in case an UpdateCampaign signal was lost.
PAUSED_RELOAD = timedelta(hours=1)
EVENT_POLL_FIRST = timedelta(seconds=30)
EVENT_POLL_MAX = timedelta(hours=1)
EVENT_BATCH = 500
# Workflow patches (see tests/engine/histories): an INVALID campaign waits instead of running; treatments with
# their own Schedule send their share of each run at their own time; a run's audience is sent in
# ``plan.parts`` concurrent activities (one per worker process).
INVALID_PATCH = "campaign-invalid-state"
TREATMENT_SCHEDULES_PATCH = "campaign-treatment-schedules"
SEND_IN_PARTS = "campaign-send-in-parts"


@workflow.defn(name="CampaignWorkflow")
class CampaignWorkflow:
    """The lifecycle of one campaign. Signals: ``updated``, ``doorbell``."""

    def __init__(self) -> None:
        self.changed = False
        self.doorbell_rang = False
        self.status = ""
        self.last_done: datetime | None = None
        self.ran = False
        self.batch_no = 0
        self.handled = 0
        self.plan: CampaignPlan | None = None
        # The plan was loaded since the workflow last waited (so a due run may use it as it is).
        self.fresh = False

    @workflow.signal
    def updated(self) -> None:
        """UpdateCampaign stored a new version (or paused/resumed): reload before the next run."""
        self.changed = True

    @workflow.signal
    def doorbell(self) -> None:
        """PutEvents queued endpoints for this EVENT campaign."""
        self.doorbell_rang = True

    @workflow.query
    def state(self) -> dict[str, object]:
        """Status, version and the last run handled."""
        return {
            "status": self.status,
            "version": self.plan.version if self.plan else None,
            "last_run": self.last_done.isoformat() if self.last_done else None,
        }

    @workflow.run
    async def run(self, inp: CampaignInput) -> str:
        """Run the campaign to its end.

        Returns:
            COMPLETED, or DELETED when the campaign or its segment was deleted.
        """
        self.inp = inp
        carried = inp.carried or CampaignCarry()
        self.last_done, self.ran, self.batch_no = carried.last_done, carried.ran, carried.next_event_batch
        self.plan = await self._load()
        while True:
            if self.changed:
                self.changed = False
                self.plan = await self._load()
            plan = self.plan
            if plan.deleted:
                return "DELETED"
            if plan.paused:
                self._details("paused")
                try:
                    await workflow.wait_condition(lambda: self.changed, timeout=PAUSED_RELOAD)
                except TimeoutError:
                    pass
                self.changed = False
                self.plan = await self._load()
                self.status = ""  # UpdateCampaign wrote PAUSED; record the status again
                if not self.plan.paused:
                    # Runs that fell due during the pause are skipped: resume with the next future run.
                    now = workflow.now()
                    self.last_done = max(self.last_done, now) if self.last_done else now
                continue
            if plan.invalid and workflow.patched(INVALID_PATCH):
                await self._wait_while_invalid(plan)
                continue
            if self.handled >= plan.runs_per_history:
                await self._continue_as_new()
            if plan.frequency in ("EVENT", "IN_APP_EVENT"):
                if await self._take_events(plan):
                    return await self._finish("COMPLETED")
                continue
            outcome = await self._next_scheduled(plan)
            if outcome is not None:
                return outcome

    async def _wait_while_invalid(self, plan: CampaignPlan) -> None:
        """INVALID: run nothing until an update (or an hourly reload) finds the campaign runnable again.

        Runs that fall due meanwhile are skipped, as during a pause.
        """
        await self._set_status("INVALID")
        self._details(f"invalid: {plan.invalid}")
        try:
            await workflow.wait_condition(lambda: self.changed, timeout=PAUSED_RELOAD)
        except TimeoutError:
            pass
        self.changed = False
        self.plan = await self._load()
        if not self.plan.invalid:
            self.status = ""
            now = workflow.now()
            self.last_done = max(self.last_done, now) if self.last_done else now

    async def _next_scheduled(self, plan: CampaignPlan) -> str | None:
        """Run what is due now, or wait for the next run (or a change). Returns the end state when over."""
        rule = plan.rule()
        now = workflow.now()
        due = due_run(rule, self.last_done, now)
        if due.run is not None and not self.fresh:
            # Reload before running: a change whose signal got lost still applies from this run.
            self.changed = True
            return None
        if due.run is not None:
            return await self._run_and_record(plan, due.run, due.missed)
        if due.missed:
            # Every due run is too late to run (see due_run): skip them all.
            self.last_done = now
            return None
        upcoming = next_run(rule, self.last_done)
        if upcoming is None:
            return await self._finish("COMPLETED")
        await self._set_status("PENDING_NEXT_RUN" if self.ran else "SCHEDULED")
        wake = upcoming.at - (LOCAL_TIME_LEAD if plan.local_time else timedelta(0))
        self._details(f"next run {upcoming.no} at {upcoming.at.isoformat(timespec='seconds')}")
        if wake > now:
            self.fresh = False
            try:
                await workflow.wait_condition(lambda: self.changed, timeout=wake - now)
            except TimeoutError:
                pass
        if self.changed:
            return None
        if plan.local_time:
            # Woken ahead of the run for the earliest zones: reload, and run only if the run still stands.
            self.plan = await self._load()
            if (
                self.plan.paused
                or self.plan.deleted
                or next_run(self.plan.rule(), self.last_done) != upcoming
            ):
                return None
            return await self._run_and_record(self.plan, upcoming, 0)
        return None

    async def _run_and_record(self, plan: CampaignPlan, run: Run, missed: int) -> str | None:
        outcome = await self._execute(plan, run, missed)
        self.last_done = run.at
        self.ran = True
        self.handled += 1
        return outcome

    async def _execute(self, plan: CampaignPlan, run: Run, missed: int) -> str | None:
        """One run: record it, send each slice at its time, close it. Returns DELETED if the segment is gone."""
        run_key = f"v{plan.version}-{run.no}"
        slices: list[LocalSlice]
        if plan.local_time:
            zones: list[str] = await workflow.execute_activity(
                "campaign_zones",
                plan,
                result_type=list[str],
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
            slices = local_slices(run.at, plan.rule(), zones)
        else:
            slices = [LocalSlice(run.at, ())]
        await workflow.execute_activity(
            "start_campaign_run",
            RunStart(
                plan=plan,
                run_key=run_key,
                scheduled_at=run.at,
                started_at=workflow.now(),
                timezones_total=len(slices),
                missed=missed,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self.status = "EXECUTING"
        holdout, done = 0, 0
        stopped = missing = False
        sends = [TreatmentSlice(piece.at, piece.zones, None) for piece in slices]
        if plan.treatment_delays and workflow.patched(TREATMENT_SCHEDULES_PATCH):
            sends = treatment_slices(slices, plan.treatment_delays)
        for piece in sends:
            delay = piece.at - workflow.now()
            if delay > timedelta(0):
                self._details(f"run {run.no}: next send at {piece.at.isoformat(timespec='seconds')}")
                await workflow.sleep(delay)
            self._details(
                f"run {run.no}: sending"
                + (f" to {', '.join(piece.zones)}" if plan.local_time else "")
                + (f" treatments {', '.join(map(str, piece.treatments))}" if piece.treatments else "")
            )
            inp = SliceInput(
                plan=plan,
                run_key=run_key,
                scheduled_at=run.at,
                send_at=self._send_instant(piece.at),
                zones=list(piece.zones) if plan.local_time else None,
                treatments=list(piece.treatments) if piece.treatments is not None else None,
                count_holdout=piece.holdout,
            )
            result: SliceResult
            if plan.parts > 1 and workflow.patched(SEND_IN_PARTS):
                parts = await asyncio.gather(
                    *(
                        self._send_slice(inp.model_copy(update={"part": part, "parts": plan.parts}))
                        for part in range(plan.parts)
                    )
                )
                result = functools.reduce(SliceResult.plus, parts)
            else:
                result = await self._send_slice(inp)
            holdout += result.holdout
            stopped |= result.stopped
            missing |= result.segment_missing
            # A zone slice counts as done once (its first send, when treatments send at different times).
            done += 1 if piece.holdout else 0
            if missing:
                break
        extra = {"HOLDOUT": holdout} if holdout else {}
        if stopped:
            extra["MAXIMUM_DURATION_EXCEEDED"] = 1
        if missing:
            extra["SEGMENT_DELETED"] = 1
        await workflow.execute_activity(
            "finish_campaign_run",
            RunFinish(
                plan=plan,
                run_key=run_key,
                ended_at=workflow.now(),
                timezones_completed=done,
                extra=extra,
                result="FAIL" if stopped or missing else "SUCCESS",
            ),
            result_type=dict[int, dict[str, int]],
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        if missing:
            await self._finish("DELETED")
            self.plan = plan.model_copy(update={"deleted": True})
        return "DELETED" if missing else None

    async def _send_slice(self, inp: SliceInput) -> SliceResult:
        result: SliceResult = await workflow.execute_activity(
            "send_campaign_slice",
            inp,
            result_type=SliceResult,
            start_to_close_timeout=SEND_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        return result

    def _send_instant(self, scheduled: datetime) -> datetime:
        """The instant a slice is sent at: its scheduled one, or now when it runs late (missed, resumed)."""
        now = workflow.now()
        return scheduled if now - scheduled < LATE_AFTER else now

    async def _take_events(self, plan: CampaignPlan) -> bool:
        """Send to event-triggered endpoints until the end time (True) or a change to reload (False)."""
        poll = EVENT_POLL_FIRST
        while not self.changed:
            now = workflow.now()
            if plan.end is not None and now >= plan.end:
                return True
            if now < plan.start:
                await self._set_status("SCHEDULED")
                try:
                    await workflow.wait_condition(lambda: self.changed, timeout=plan.start - now)
                except TimeoutError:
                    pass
                continue
            await self._set_status("EXECUTING")
            while True:
                result: EventBatchResult = await workflow.execute_activity(
                    "send_event_batch",
                    EventBatchInput(
                        plan=plan, batch_no=self.batch_no, now=workflow.now(), batch_size=EVENT_BATCH
                    ),
                    result_type=EventBatchResult,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=RETRY,
                )
                if result.claimed == 0:
                    break
                self.batch_no += 1
                self.handled += 1
                if result.segment_missing:
                    await self._finish("DELETED")
                    self.plan = plan.model_copy(update={"deleted": True})
                    return False
                if result.claimed < EVENT_BATCH:
                    break
            if self.handled >= plan.runs_per_history:
                return False
            self._details(f"waiting for events (batch {self.batch_no} next)")
            remaining = (plan.end - workflow.now()) if plan.end is not None else EVENT_POLL_MAX
            try:
                await workflow.wait_condition(
                    lambda: self.doorbell_rang or self.changed,
                    timeout=max(timedelta(seconds=1), min(remaining, poll)),
                )
                poll = EVENT_POLL_FIRST
            except TimeoutError:
                poll = min(poll * 2, EVENT_POLL_MAX)
            self.doorbell_rang = False
        return False

    async def _load(self) -> CampaignPlan:
        self.fresh = True
        return await workflow.execute_activity(
            "load_campaign_plan",
            CampaignRef(app_id=self.inp.app_id, campaign_id=self.inp.campaign_id),
            result_type=CampaignPlan,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _set_status(self, status: str) -> None:
        if status == self.status:
            return
        await workflow.execute_activity(
            "set_campaign_state",
            CampaignStateChange(app_id=self.inp.app_id, campaign_id=self.inp.campaign_id, state=status),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self.status = status

    async def _finish(self, status: str) -> str:
        await self._set_status(status)
        self._details(status.lower())
        return status

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            CampaignInput(
                app_id=self.inp.app_id,
                campaign_id=self.inp.campaign_id,
                observe=self.inp.observe,
                carried=CampaignCarry(last_done=self.last_done, ran=self.ran, next_event_batch=self.batch_no),
            )
        )

    def _details(self, what: str) -> None:
        plan = self.plan
        head = f"campaign {plan.campaign_id} v{plan.version}: " if plan else ""
        workflow.set_current_details(f"{head}{what}")
