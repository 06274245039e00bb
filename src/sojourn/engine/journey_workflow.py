"""JourneyWorkflow: one per journey. Owns the lifecycle and entry; starts a CohortWorkflow per batch of entrants.

Lifecycle: wait for the start time; admit entrants (the entry segment's members at start, or event-triggered
entrants as PutEvents rings the doorbell) in cohorts; forward pause/resume/cancel to running cohorts; close
entry at the end time or the 540-day limit; finish when the last cohort is done. Continues-as-new to keep its
own history small.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from sojourn.engine import names
    from sojourn.engine.cohort_workflow import CohortWorkflow
    from sojourn.engine.inputs import (
        AdmitInput,
        CohortInput,
        CohortsCancel,
        CohortSpec,
        EnrollInput,
        JourneyCarry,
        JourneyFinish,
        JourneyInput,
        JourneyPlan,
        JourneyRef,
    )

ACTIVITY_TIMEOUT = timedelta(minutes=10)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# Without a doorbell, look for event entrants anyway (a lost signal never strands an entrant): soon at first,
# then less and less often while nothing arrives, so an idle journey costs a few workflow tasks an hour.
INTAKE_POLL_FIRST = timedelta(seconds=30)
INTAKE_POLL_MAX = timedelta(hours=1)
# Histories recorded before segment refresh and the CLOSED state replay without them.
REFRESH_AND_CLOSE = "segment-refresh-and-closed-state"
# Waits for cohorts also ask the ledger now and then which cohorts are done, in case a cohort_done signal was
# lost; histories recorded before this replay without it.
RECONCILE_COHORTS = "reconcile-finished-cohorts"
RECONCILE_FIRST = timedelta(minutes=1)
RECONCILE_MAX = timedelta(hours=1)


@workflow.defn(name="JourneyWorkflow")
class JourneyWorkflow:
    """The lifecycle of one journey. Signals: ``set_state``, ``new_version``, ``doorbell``, ``cohort_done``."""

    def __init__(self) -> None:
        self.state = "ACTIVE"
        self.active: set[int] = set()
        self.finished: set[int] = set()
        self.next_cohort_no = 0
        self.pending: list[CohortSpec] = []
        self.doorbell_rang = False
        self.version_changed = False
        self.segment_updated = False
        self.plan: JourneyPlan | None = None

    @workflow.signal
    async def set_state(self, state: str) -> None:
        """PAUSED, ACTIVE (resume) or CANCELLED, from UpdateJourneyState; forwarded to every running cohort."""
        if self.state == "CANCELLED":
            return
        self.state = state
        for cohort_no in sorted(self.active):
            await self._cohort_handle(cohort_no).signal(CohortWorkflow.set_state, state)

    @workflow.signal
    def new_version(self) -> None:
        """UpdateJourney made a new version: new entrants get it."""
        self.version_changed = True

    @workflow.signal
    def segment_updated_signal(self) -> None:
        """UpdateSegment changed the entry segment (acted on with RefreshOnSegmentUpdate)."""
        self.segment_updated = True

    @workflow.signal
    def doorbell(self) -> None:
        """PutEvents queued event-triggered entrants for this journey."""
        self.doorbell_rang = True

    @workflow.signal
    def cohort_done(self, cohort_no: int) -> None:
        """A cohort finished."""
        self.finished.add(cohort_no)
        self.active.discard(cohort_no)

    @workflow.query
    def status(self) -> dict[str, object]:
        """State, version and running cohorts."""
        return {
            "state": self.state,
            "version": self.plan.version if self.plan else None,
            "cohorts": sorted(self.active),
        }

    @workflow.run
    async def run(self, inp: JourneyInput) -> str:
        """Run the journey to its end.

        Returns:
            The final state (COMPLETED or CANCELLED).
        """
        self.inp = inp
        enrolled = False
        if inp.carried is not None:
            self.state = inp.carried.state
            self.active = set(inp.carried.active_cohorts)
            enrolled = inp.carried.enrolled
            self.next_cohort_no = inp.carried.next_cohort_no
            self.pending = list(inp.carried.pending)
            self.plan = inp.carried.plan
        if self.plan is None:
            self.plan = await self._load_plan()
            if self.plan.state in ("PAUSED", "CANCELLED"):
                # The journey changed state before its workflow first ran.
                self.state = self.plan.state
        plan = self.plan

        if not enrolled:
            self._details(f"scheduled: entries start at {plan.start_at.isoformat(timespec='seconds')}")
            await self._wait_until_start()
        if self.state != "CANCELLED" and plan.entry == "segment" and not enrolled:
            await workflow.wait_condition(lambda: self.state != "PAUSED")
            if self.state != "CANCELLED":
                await self._enroll_segment()
            enrolled = True
        await self._start_pending()
        if plan.entry == "event":
            enrolled = True
            await self._take_event_entrants()
        if workflow.patched(REFRESH_AND_CLOSE):
            if plan.entry == "segment" and (plan.refresh_every or plan.refresh_on_update):
                await self._refresh_until_end()
            if self.state != "CANCELLED":
                await workflow.execute_activity(
                    "close_entry",
                    JourneyFinish(app_id=inp.app_id, journey_id=inp.journey_id, state="CLOSED"),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=RETRY,
                )

        self._details("entry closed; waiting for running cohorts to finish")
        await self._wait_for_cohorts(lambda: not self.active)
        final = "CANCELLED" if self.state == "CANCELLED" else "COMPLETED"
        await workflow.execute_activity(
            "finish_journey",
            JourneyFinish(app_id=inp.app_id, journey_id=inp.journey_id, state=final),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self._details(f"{final.lower()}")
        return final

    async def _load_plan(self) -> JourneyPlan:
        return await workflow.execute_activity(
            "load_journey_plan",
            JourneyRef(app_id=self.inp.app_id, journey_id=self.inp.journey_id),
            result_type=JourneyPlan,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _wait_until_start(self) -> None:
        assert self.plan is not None
        delay = self.plan.start_at - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self.state == "CANCELLED", timeout=delay)
            except TimeoutError:
                pass

    async def _refresh_until_end(self) -> None:
        """Re-read the entry segment every RefreshFrequency (or when it is updated) until the end time."""
        assert self.plan is not None
        while self.state != "CANCELLED":
            plan = self.plan
            remaining = plan.end_at - workflow.now()
            if remaining <= timedelta(0):
                return
            timeout = min(remaining, plan.refresh_every) if plan.refresh_every else remaining
            self._details(
                f"next segment refresh by {(workflow.now() + timeout).isoformat(timespec='seconds')}"
            )
            try:
                await workflow.wait_condition(
                    lambda: self._refresh_asked() or self.version_changed or self.state == "CANCELLED",
                    timeout=timeout,
                )
            except TimeoutError:
                pass
            if self.state == "CANCELLED" or workflow.now() >= plan.end_at:
                return
            if self.version_changed:
                self.version_changed = False
                self.plan = await self._load_plan()
                if not (self.segment_updated and self.plan.refresh_on_update):
                    continue
            self.segment_updated = False
            await workflow.wait_condition(lambda: self.state != "PAUSED")
            if self.state == "CANCELLED":
                return
            await self._enroll_segment(refresh=True)
            await self._start_pending()
            if workflow.info().get_current_history_length() > self.plan.history_limit:
                await self._continue_as_new()

    def _refresh_asked(self) -> bool:
        return self.segment_updated and self.plan is not None and self.plan.refresh_on_update

    async def _enroll_segment(self, *, refresh: bool = False) -> None:
        assert self.plan is not None and self.plan.segment_id is not None
        self._details("refreshing the entry segment" if refresh else "enrolling the entry segment's members")
        cohorts: list[CohortSpec] = await workflow.execute_activity(
            "enroll_segment",
            EnrollInput(
                app_id=self.plan.app_id,
                journey_id=self.plan.journey_id,
                version=self.plan.version,
                segment_id=self.plan.segment_id,
                start_activity=str(self.plan.definition.get("StartActivity")),
                cohort_size=self.plan.cohort_size,
                first_cohort_no=self.next_cohort_no,
                refresh=refresh,
                local_time=bool(self.plan.definition.get("LocalTime")),
                limits=self.plan.definition.get("Limits") or {},
                now=workflow.now(),
            ),
            result_type=list[CohortSpec],
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        if cohorts:
            self.next_cohort_no = max(c.cohort_no for c in cohorts) + 1
        self.pending = list(cohorts)

    async def _start_pending(self) -> None:
        """Start enrolled cohorts, at most ``max_cohorts_in_flight`` running at a time."""
        assert self.plan is not None
        limit = self.plan.max_cohorts_in_flight
        while self.pending and self.state != "CANCELLED":
            self._details(f"starting cohorts: {len(self.pending)} waiting their turn")
            await self._wait_for_cohorts(lambda: len(self.active) < limit or self.state == "CANCELLED")
            if self.state == "CANCELLED":
                break
            await self._start_cohort(self.pending.pop(0))
            if workflow.info().get_current_history_length() > self.plan.history_limit:
                await self._continue_as_new()
        if self.pending:
            await workflow.execute_activity(
                "cancel_cohorts",
                CohortsCancel(
                    journey_id=self.plan.journey_id, cohort_nos=[c.cohort_no for c in self.pending]
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
            self.pending = []

    async def _take_event_entrants(self) -> None:
        assert self.plan is not None
        poll = INTAKE_POLL_FIRST
        while self.state != "CANCELLED":
            remaining = self.plan.end_at - workflow.now()
            if remaining <= timedelta(0):
                return
            if self.state != "PAUSED":
                await self._admit_waiting_entrants()
            self._details(f"taking event entrants until {self.plan.end_at.isoformat(timespec='seconds')}")
            if workflow.info().get_current_history_length() > self.plan.history_limit:
                await self._continue_as_new()
            try:
                await workflow.wait_condition(
                    lambda: self.doorbell_rang or self.version_changed or self.state == "CANCELLED",
                    timeout=min(remaining, poll),
                )
                poll = INTAKE_POLL_FIRST
            except TimeoutError:
                poll = min(poll * 2, INTAKE_POLL_MAX)
            self.doorbell_rang = False
            if self.version_changed:
                self.version_changed = False
                self.plan = await self._load_plan()

    async def _admit_waiting_entrants(self) -> None:
        assert self.plan is not None
        while True:
            spec: CohortSpec | None = await workflow.execute_activity(
                "admit_intake",
                AdmitInput(
                    app_id=self.plan.app_id,
                    journey_id=self.plan.journey_id,
                    version=self.plan.version,
                    start_activity=str(self.plan.definition.get("StartActivity")),
                    cohort_size=self.plan.cohort_size,
                    cohort_no=self.next_cohort_no,
                    limits=self.plan.definition.get("Limits") or {},
                    segment_id=self.plan.segment_id,
                    now=workflow.now(),
                ),
                result_type=CohortSpec | None,  # type: ignore[arg-type]
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
            if spec is None:
                return
            self.next_cohort_no += 1
            if spec.size > 0:
                await self._start_cohort(spec)
            if spec.claimed < self.plan.cohort_size:
                return

    async def _start_cohort(self, spec: CohortSpec) -> None:
        plan = self.plan
        assert plan is not None
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(names.APP_ID, plan.app_id),
                SearchAttributePair(names.JOURNEY_ID, plan.journey_id),
                SearchAttributePair(names.SOJOURN_KIND, "cohort"),
            ]
        )
        await workflow.start_child_workflow(
            CohortWorkflow.run,
            CohortInput(
                app_id=plan.app_id,
                journey_id=plan.journey_id,
                version=plan.version,
                cohort_no=spec.cohort_no,
                size=spec.size,
                definition=plan.definition,
                deadline=spec.deadline or plan.end_at,
                not_before=spec.not_before,
            ),
            id=names.cohort_workflow_id(plan.app_id, plan.journey_id, spec.cohort_no),
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=attributes if self.inp.observe else None,
            static_summary=f"cohort {spec.cohort_no}: {spec.size} participants of journey {plan.journey_id} v{plan.version}",
        )
        if spec.cohort_no not in self.finished:
            self.active.add(spec.cohort_no)
        if self.state == "PAUSED":
            await self._cohort_handle(spec.cohort_no).signal(CohortWorkflow.set_state, "PAUSED")

    async def _wait_for_cohorts(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()``, which cohort_done signals make true; ask the ledger too, with a backing-off poll.

        A cohort whose participants are all gone from the journey has nothing left to do, so it counts as done
        even if its signal never arrives.
        """
        if not workflow.patched(RECONCILE_COHORTS):
            await workflow.wait_condition(done)
            return
        poll = RECONCILE_FIRST
        while not done():
            try:
                await workflow.wait_condition(done, timeout=poll)
                return
            except TimeoutError:
                pass
            assert self.plan is not None
            finished: list[int] = await workflow.execute_activity(
                "finished_cohorts",
                CohortsCancel(journey_id=self.plan.journey_id, cohort_nos=sorted(self.active)),
                result_type=list[int],
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
            )
            for cohort_no in finished:
                self.finished.add(cohort_no)
                self.active.discard(cohort_no)
            poll = min(poll * 2, RECONCILE_MAX)

    def _cohort_handle(self, cohort_no: int) -> workflow.ExternalWorkflowHandle[CohortWorkflow]:
        assert self.plan is not None
        return workflow.get_external_workflow_handle_for(
            CohortWorkflow.run, names.cohort_workflow_id(self.plan.app_id, self.plan.journey_id, cohort_no)
        )

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            JourneyInput(
                app_id=self.inp.app_id,
                journey_id=self.inp.journey_id,
                observe=self.inp.observe,
                carried=JourneyCarry(
                    state=self.state,
                    active_cohorts=sorted(self.active),
                    enrolled=True,
                    plan=self.plan,
                    next_cohort_no=self.next_cohort_no,
                    pending=self.pending,
                ),
            )
        )

    def _details(self, what: str) -> None:
        plan = self.plan
        head = f"journey {plan.journey_id} v{plan.version}: " if plan else ""
        workflow.set_current_details(f"{head}{what}\nstate {self.state}; running cohorts: {len(self.active)}")
