"""Activities of the CohortWorkflow: every step of a journey is one set-based call over a lane of a cohort.

Steps are idempotent: they move rows only from the state the step expects, and sends go through the message
ledger's deterministic ids (see :mod:`sojourn.store.message_ledger` and :mod:`sojourn.channels.email`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from sojourn.channels.email import EmailTransport
from sojourn.channels.senders import SendLanes
from sojourn.domain.app_settings import ApplicationSettings
from sojourn.domain.journeys import Activity, ConditionSpec, JourneyDefinition
from sojourn.domain.participants import shared_zones
from sojourn.domain.sending_window import rules_for_journey, verdict
from sojourn.domain.timezones import participant_zone
from sojourn.engine import message_steps
from sojourn.engine.contact_center_step import contact_center_step
from sojourn.engine.custom_step import CustomFunction, custom_step
from sojourn.engine.email_batch import EmailBatchSender, email_problem
from sojourn.engine.inputs import Branch, LaneEnd, StepInput, StepResult
from sojourn.engine.split_sql import members_meeting
from sojourn.settings import Settings
from sojourn.store import journey_ledger as ledger
from sojourn.store import message_ledger, send_pacing
from sojourn.store.templates_repo import email_channel, load_email_template

log = logging.getLogger(__name__)

SEND_BATCH = 500


class StepActivities:
    """The journey graph's steps, bound to the database and the email transport."""

    def __init__(
        self,
        db: AsyncEngine,
        settings: Settings,
        transport: EmailTransport,
        *,
        lanes: SendLanes | None = None,
        custom_functions: Mapping[str, CustomFunction] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport
        self.sender = EmailBatchSender(db, settings, transport)
        # SMS and push journey steps send through the providers of the transactional lane.
        self.lanes = lanes or SendLanes(settings)
        # CUSTOM steps may call the deployment's custom activities by name.
        self.custom_functions = dict(custom_functions or {})

    def all(self) -> list[Any]:
        """Every activity callable, for the worker."""
        return [self.run_step, self.end_lane, self.arrive, self.release_waiting]

    @activity.defn(name="arrive")
    async def arrive(self, inp: StepInput) -> int:
        """Move a lane from the Wait activities it passed to ``inp.activity_id`` (which then waits itself)."""
        assert inp.activity_id is not None
        async with self.db.begin() as conn:
            await ledger.arrive(conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id, inp.waited)
            return len(
                await ledger.lane_members(conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id)
            )

    @activity.defn(name="release_waiting")
    async def release_waiting(self, inp: StepInput) -> StepResult:
        """Members waiting at a wait-for-event split whose condition now holds go down its TrueActivity at once.

        They move to ``inp.target_lane``; a retry finds them there and reports the same branch.
        """
        assert inp.activity_id is not None and inp.target_lane is not None and inp.activity is not None
        split = Activity.model_validate(inp.activity).ConditionalSplit
        assert split is not None
        async with self.db.begin() as conn:
            members, users = await ledger.lane_participants(
                conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id
            )
            met = await members_meeting(
                conn,
                inp.app_id,
                inp.journey_id,
                split.Condition,
                members,
                now=datetime.now(UTC),
                users=users,
            )
            if met:
                (moved,) = await ledger.split_by_members(
                    conn,
                    inp.journey_id,
                    inp.cohort_no,
                    inp.lane,
                    inp.activity_id,
                    [(inp.target_lane, split.TrueActivity, met)],
                )
                await ledger.add_counts(
                    conn,
                    inp.journey_id,
                    {(inp.activity_id, "Branch_1"): moved, (inp.activity_id, "ENTERED"): moved},
                    shard=inp.cohort_no,
                )
            released = await ledger.lane_size(conn, inp.journey_id, inp.cohort_no, inp.target_lane)
        return StepResult(
            branches=[Branch(lane=inp.target_lane, next_activity=split.TrueActivity, count=released)],
            processed=released,
            detail=f"{released} released by their events",
        )

    @activity.defn(name="run_step")
    async def run_step(self, inp: StepInput) -> StepResult:
        """Run one journey activity for one lane of a cohort."""
        assert inp.activity_id is not None and inp.activity is not None
        act = Activity.model_validate(inp.activity)
        started = time.perf_counter()
        result = await self._run_step(inp, act)
        log.debug(
            "journey %s cohort %s lane %s: %s %s moved %d in %.3fs",
            inp.journey_id,
            inp.cohort_no,
            inp.lane,
            act.kind,
            inp.activity_id,
            result.processed,
            time.perf_counter() - started,
        )
        return result

    async def _run_step(self, inp: StepInput, act: Activity) -> StepResult:
        assert inp.activity_id is not None
        if act.EMAIL is not None:
            return await self._email_step(inp, act)
        if act.SMS is not None or act.PUSH is not None:
            return await message_steps.provider_step(self, inp, act, shared_caps)
        if act.CUSTOM is not None:
            return await custom_step(self, inp, act, shared_caps, self.custom_functions)
        if act.ContactCenter is not None:
            return await contact_center_step(self, inp, act, shared_caps, self.custom_functions)
        if act.Holdout is not None:
            pct = act.Holdout.Percentage
            cut = pct * ledger.HASH_BUCKETS // 100
            return await self._bucket_step(
                inp,
                [
                    (0, cut, inp.lane, None, "held_out"),
                    (cut, ledger.HASH_BUCKETS, inp.lane, act.Holdout.NextActivity, "active"),
                ],
                metrics=("HELD_OUT", "CONTINUED"),
            )
        if act.RandomSplit is not None:
            ranges: list[tuple[int, int, str, str | None, str]] = []
            first = 0
            for i, branch in enumerate(act.RandomSplit.Branches):
                end = first + (branch.Percentage or 0) * ledger.HASH_BUCKETS // 100
                ranges.append((first, end, f"{inp.lane}.{i + 1}", branch.NextActivity, "active"))
                first = end
            return await self._bucket_step(
                inp, ranges, metrics=tuple(f"Branch_{i + 1}" for i in range(len(ranges)))
            )
        if act.ConditionalSplit is not None:
            split = act.ConditionalSplit
            return await self._split_step(inp, [split.Condition], [split.TrueActivity, split.FalseActivity])
        if act.MultiCondition is not None:
            multi = act.MultiCondition
            targets = [b.NextActivity for b in multi.Branches] + [multi.DefaultActivity]
            return await self._split_step(inp, multi.conditions(), targets)
        raise ValueError(f"activity {inp.activity_id}: {act.kind} is not supported")

    async def _bucket_step(
        self, inp: StepInput, ranges: Sequence[tuple[int, int, str, str | None, str]], metrics: Sequence[str]
    ) -> StepResult:
        assert inp.activity_id is not None
        async with self.db.begin() as conn:
            await ledger.arrive(conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id, inp.waited)
            moved = await ledger.split_by_buckets(
                conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id, ranges
            )
            counts = {(inp.activity_id, metric): n for metric, n in zip(metrics, moved, strict=True)}
            counts[(inp.activity_id, "ENTERED")] = sum(moved)
            await ledger.add_counts(conn, inp.journey_id, counts, shard=inp.cohort_no)
        branches = [
            Branch(lane=lane, next_activity=nxt, count=n)
            for (_, _, lane, nxt, status), n in zip(ranges, moved, strict=True)
            if status == "active" and nxt is not None
        ]
        return StepResult(branches=branches, processed=sum(moved))

    async def _split_step(
        self, inp: StepInput, conditions: Sequence[ConditionSpec | None], targets: Sequence[str | None]
    ) -> StepResult:
        """Branch ``i`` takes the members meeting ``conditions[i]`` and no earlier one; the last target the rest."""
        assert inp.activity_id is not None and len(targets) == len(conditions) + 1
        async with self.db.begin() as conn:
            await ledger.arrive(conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id, inp.waited)
            members, users = await ledger.lane_participants(
                conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id
            )
            remaining = set(members)
            chosen: list[set[tuple[str, int]] | None] = []
            for condition in conditions:
                # A user's endpoints meet a condition together, so the user goes down one branch whole.
                met = await members_meeting(
                    conn,
                    inp.app_id,
                    inp.journey_id,
                    condition,
                    sorted(remaining),
                    now=datetime.now(UTC),
                    users=users,
                )
                chosen.append(met)
                remaining -= met
            lanes = [f"{inp.lane}.{i + 1}" for i in range(len(targets))]
            counts = await ledger.split_by_members(
                conn,
                inp.journey_id,
                inp.cohort_no,
                inp.lane,
                inp.activity_id,
                [
                    (lane, target, picked)
                    for lane, target, picked in zip(lanes, targets, [*chosen, None], strict=True)
                ],
            )
            metrics = {(inp.activity_id, f"Branch_{i + 1}"): n for i, n in enumerate(counts)}
            metrics[(inp.activity_id, "ENTERED")] = sum(counts)
            await ledger.add_counts(conn, inp.journey_id, metrics, shard=inp.cohort_no)
        return StepResult(
            branches=[
                Branch(lane=lane, next_activity=target, count=n)
                for lane, target, n in zip(lanes, targets, counts, strict=True)
            ],
            processed=sum(counts),
            detail=", ".join(f"branch {i + 1}: {n}" for i, n in enumerate(counts)),
        )

    async def _email_step(self, inp: StepInput, act: Activity) -> StepResult:
        assert inp.activity_id is not None and act.EMAIL is not None
        email = act.EMAIL
        # Arrive, hold for quiet time, claim (caps and reachability) in one transaction, as every message step does.
        held = await message_steps.claim_lane(
            self, inp, channel="EMAIL", channel_sql="'EMAIL'", shared_caps=shared_caps
        )
        async with self.db.connect() as conn:
            template = await load_email_template(conn, email.TemplateName or "", email.TemplateVersion)
            channel = await email_channel(conn, inp.app_id)
        from_address = (email.MessageConfig.FromAddress if email.MessageConfig else None) or (
            channel or {}
        ).get("FromAddress")
        problem = email_problem(template, channel, from_address, email.TemplateName)
        sent = 0
        per_second = int(inp.limits.get("MessagesPerSecond") or 0)
        batch = min(SEND_BATCH, per_second) if per_second else SEND_BATCH
        activity.heartbeat(0)
        while True:
            async with self.db.connect() as conn:
                rows = await message_ledger.pending_journey_emails(
                    conn,
                    journey_id=inp.journey_id,
                    cohort_no=inp.cohort_no,
                    lane=inp.lane,
                    activity_id=inp.activity_id,
                    limit=batch,
                )
            if not rows:
                break
            if per_second and problem is None:
                await self._pace(f"journey:{inp.journey_id}", len(rows), per_second, sent)
            if problem is not None:
                async with self.db.begin() as conn:
                    await message_ledger.mark_failed(
                        conn, [(r["message_id"], problem[0], problem[1]) for r in rows]
                    )
                continue
            assert template is not None and from_address is not None
            sent += await self._send_rows(rows, template, from_address)
            activity.heartbeat(sent)
        async with self.db.begin() as conn:
            moved = await ledger.move_lane(
                conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id, email.NextActivity
            )
        waiting = [
            Branch(lane=name, next_activity=inp.activity_id, count=n, resume_at=until)
            for name, until, n in held
        ]
        return StepResult(
            branches=[Branch(lane=inp.lane, next_activity=email.NextActivity, count=moved), *waiting],
            processed=moved,
            detail=f"sent {sent}"
            + (f", {sum(b.count for b in waiting)} held for quiet time" if waiting else ""),
        )

    async def _hold_for_sending_window(
        self, conn: AsyncConnection, inp: StepInput, channel: str, now: datetime
    ) -> dict[tuple[str, int], str]:
        """Apply quiet time, open hours and closed days to the lane's members, each in their own zone.

        Members to hold move to lanes named after their release time (see :func:`ledger.held_lane_name`), at
        the same activity; the cohort workflow runs those lanes again when they are released.

        Returns:
            The members whose message is dropped, with the reason (claimed as skipped).
        """
        assert inp.activity_id is not None
        if not inp.sending:
            return {}
        settings = JourneyDefinition.model_validate({"Name": inp.journey_id, **inp.sending})
        rules = rules_for_journey(settings, channel)
        if rules is None:
            return {}
        methods = settings.TimezoneEstimationMethods or []
        drops: dict[tuple[str, int], str] = {}
        holds: dict[datetime, set[tuple[str, int]]] = {}
        members = await ledger.lane_member_locales(
            conn, inp.app_id, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id
        )
        own = [
            (
                m,
                m.user_id,
                participant_zone(
                    timezone=m.timezone,
                    channel_type=m.channel_type,
                    address=m.address,
                    country=m.country,
                    postal_code=m.postal_code,
                    methods=methods,
                ),
            )
            for m in members
        ]
        # A user's endpoints share the user's clock, so they are held (or sent, or dropped) together.
        for m, zone in shared_zones(own).items():
            decision = verdict(now, zone, rules)
            if decision.action == "drop":
                drops[(m.endpoint_id, m.entry_no)] = decision.reason or "QUIET_TIME"
            elif decision.action == "hold" and decision.until is not None:
                holds.setdefault(decision.until, set()).add((m.endpoint_id, m.entry_no))
        if holds:
            await ledger.split_by_members(
                conn,
                inp.journey_id,
                inp.cohort_no,
                inp.lane,
                inp.activity_id,
                [
                    (ledger.held_lane_name(inp.lane, until), inp.activity_id, picked)
                    for until, picked in holds.items()
                ],
            )
            waiting = sum(len(p) for p in holds.values())
            await ledger.add_counts(
                conn, inp.journey_id, {(inp.activity_id, "QUIET_TIME_WAIT"): waiting}, shard=inp.cohort_no
            )
        return drops

    async def _pace(self, key: str, count: int, per_second: int, progress: int) -> None:
        """Wait for this batch's slot under the journey's MessagesPerSecond (shared by every cohort and worker)."""
        async with self.db.begin() as conn:
            start = await send_pacing.reserve(conn, key, count, per_second)
            now = await send_pacing.database_now(conn)
        delay = (start - now).total_seconds()
        while delay > 0:
            # Heartbeat while waiting, so a long queue behind the rate is not taken for a dead worker.
            activity.heartbeat(progress)
            await asyncio.sleep(min(delay, 5.0))
            delay -= 5.0

    async def _send_rows(
        self, rows: list[dict[str, Any]], template: dict[str, Any], from_address: str
    ) -> int:
        return await self.sender.send(rows, template, from_address)

    @activity.defn(name="end_lane")
    async def end_lane(self, inp: LaneEnd) -> int:
        """Every active member of a lane leaves the journey (end of graph, cancel, journey end)."""
        async with self.db.begin() as conn:
            n = await ledger.end_lane(conn, inp.journey_id, inp.cohort_no, inp.lane, inp.status)
            if inp.status == "completed":
                await ledger.add_counts(
                    conn, inp.journey_id, {(w, "COMPLETED"): n for w in inp.waited}, shard=inp.cohort_no
                )
            elif inp.status == "cancelled":
                await ledger.add_counts(conn, inp.journey_id, {("", "CANCELLED"): n}, shard=inp.cohort_no)
        return n


def shared_caps(limits: dict[str, Any], app_settings: ApplicationSettings) -> message_ledger.SharedCaps:
    """The caps a journey's sends share with other journeys and campaigns.

    The journey's own ``Limits.TimeframeCap`` wins over the project's; the project's ``Limits.Daily`` (all
    campaigns and journeys) and ``JourneyLimits.DailyCap`` (all journeys) always apply.
    """
    own = limits.get("TimeframeCap") or {}
    cap, days = (
        (int(own.get("Cap") or 0), int(own.get("Days") or 0))
        if own.get("Cap")
        else app_settings.timeframe_cap
    )
    journeys = app_settings.JourneyLimits
    return message_ledger.SharedCaps(
        all_daily=app_settings.daily_cap_all,
        journeys_daily=(journeys.DailyCap or 0) if journeys else 0,
        timeframe_cap=cap,
        timeframe_days=days,
    )
