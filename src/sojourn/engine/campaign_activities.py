"""Activities of the CampaignWorkflow: load the plan, send a run (or a time-zone slice of one), record runs.

A run recalculates the segment at that moment and streams its members in keyset pages of ``SEND_BATCH``
(never holding the audience whole). Per page: each member's treatment comes from a stable hash of
(campaign, endpoint) into 100 cohorts (the holdout gets nothing); quiet time drops messages whose local send
time is quiet; the FILTER hook may drop more, and what it returns for the others changes their messages
(:mod:`sojourn.engine.campaign_hook`); the claim writes every message into the ledger with its skip reason
(unreachable endpoint, quiet time, caps, for list mail a recipient not subscribed to the topic) under the
deterministic message id; then the pending ones are rendered and sent in one batch. Every step is
idempotent: a retried activity claims nothing twice and sends only what is still pending. MessagesPerSecond
is paced on a clock in Postgres shared by every part of a run, whichever worker process sends it.

Each member is claimed on the channel its treatment has for the endpoint's type (EMAIL, SMS, PUSH, VOICE,
CUSTOM; none: ENDPOINT_MISSING_CHANNEL); the EMAIL rows go through :class:`EmailBatchSender`, the others through
:mod:`sojourn.engine.campaign_channels`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from sojourn.channels.email import EmailTransport
from sojourn.channels.senders import SendLanes
from sojourn.domain.campaign_schedule import COHORTS, treatment_for_cohort
from sojourn.domain.campaigns import (
    CampaignDefinition,
    ChannelSource,
    email_content,
    endpoint_channel,
    schedule_rule,
    treatment_channels,
    treatment_delays,
)
from sojourn.domain.lists import ListRuleError
from sojourn.domain.local_time import in_quiet_time, parse_clock, utc_to_wall, zone_named
from sojourn.engine.campaign_channels import CampaignChannels, LoadedChannel
from sojourn.engine.campaign_hook import (
    CampaignHook,
    HookAnswer,
    HookFailed,
    HookFunction,
    merge_hook_answer,
)
from sojourn.engine.campaign_inputs import (
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
from sojourn.engine.custom_step import CustomFunction
from sojourn.engine.email_batch import EmailBatchSender, email_problem, list_options
from sojourn.settings import Settings
from sojourn.store import campaigns_repo as repo
from sojourn.store import message_ledger, send_pacing
from sojourn.store.app_settings_repo import load_app_settings
from sojourn.store.endpoint_rows import endpoint_response
from sojourn.store.journey_ledger import stable_bucket
from sojourn.store.segments_repo import SegmentNotFound, load_segment_clause
from sojourn.store.templates_repo import email_channel, load_email_template

log = logging.getLogger(__name__)

SEND_BATCH = 500
# A campaign row still missing after this many attempts to load it was deleted (or never committed).
PLAN_ATTEMPTS = 6
# Concurrent page senders of one run.
SEND_CONCURRENCY = 4
# Pinpoint drops an event-triggered message that cannot go out within 5 minutes of the event.
EVENT_DELIVERY_WINDOW = timedelta(minutes=5)


def endpoint_cohort(campaign_id: str, endpoint_id: str) -> int:
    """The endpoint's cohort 0-99 for a campaign: stable across runs (the journey split hash, mod 100)."""
    return stable_bucket(campaign_id, "treatment", endpoint_id) % COHORTS


def quiet_reason(timezone: str | None, send_at: datetime, start: str | None, end: str | None) -> str | None:
    """``QUIET_TIME`` when the endpoint's local send time is quiet (only endpoints with a known zone)."""
    if not start or not end:
        return None
    zone = zone_named(timezone)
    if zone is None:
        return None
    return (
        "QUIET_TIME"
        if in_quiet_time(utc_to_wall(send_at, zone), parse_clock(start), parse_clock(end))
        else None
    )


async def _list_filter(
    conn: AsyncConnection, template: dict[str, Any] | None
) -> message_ledger.ListFilter | None:
    """The subscription test the claim applies when ``template`` is list mail (None otherwise, or when its
    list header is malformed: the send then fails every message with the header's problem)."""
    try:
        options = list_options(template) if template is not None else None
    except ListRuleError:
        return None
    if options is None:
        return None
    return await message_ledger.load_list_filter(conn, options["ContactListName"], options.get("TopicName"))


class _Content:
    """What one treatment sends: the template content and the sender, or why nothing can be sent."""

    def __init__(
        self,
        template: dict[str, Any] | None,
        from_address: str | None,
        problem: tuple[str, str] | None,
        channels: dict[str, LoadedChannel] | None = None,
        has_email: bool = True,
        list_filter: message_ledger.ListFilter | None = None,
        message_configuration: dict[str, Any] | None = None,
    ) -> None:
        self.template = template
        self.from_address = from_address
        self.problem = problem
        # The treatment's other channels (SMS, PUSH, VOICE, CUSTOM); see campaign_channels.
        self.channels = channels or {}
        self.has_email = has_email
        # List mail: the subscription test the claim applies (None for other mail).
        self.list_filter = list_filter
        # The treatment's MessageConfiguration as the campaign gives it: the FILTER hook's event carries it.
        self.message_configuration = message_configuration or {}
        self._channel_of: dict[str | None, str | None] = {}

    def channel_for(self, channel_type: str | None) -> str | None:
        """The channel this treatment sends an endpoint of ``channel_type`` on (None: it has none for it)."""
        # Asked once per message of a blast, about a handful of channel types: worked out once per type.
        if channel_type not in self._channel_of:
            sources = {name: loaded.source for name, loaded in self.channels.items()}
            if self.has_email:
                sources["EMAIL"] = ChannelSource("EMAIL")
            self._channel_of[channel_type] = endpoint_channel(channel_type, sources)
        return self._channel_of[channel_type]

    def invalid(self) -> str | None:
        """Why the treatment cannot run at all (a missing template, a disabled channel), or None."""
        if self.has_email and self.problem is not None:
            return self.problem[1]
        return next(
            (
                f"{c.source.channel}: {c.problem[1]}"
                for c in self.channels.values()
                if c.invalid and c.problem
            ),
            None,
        )


class CampaignActivities:
    """The campaign activities, bound to the database, the email transport and the deployment's hooks."""

    def __init__(
        self,
        db: AsyncEngine,
        settings: Settings,
        transport: EmailTransport,
        *,
        hook_functions: Mapping[str, HookFunction] | None = None,
        hook_tls: ssl.SSLContext | None = None,
        lanes: SendLanes | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.sender = EmailBatchSender(db, settings, transport)
        self.hook_functions = dict(hook_functions or {})
        self.hook_tls = hook_tls
        # The deployment's custom functions serve both hooks and CUSTOM deliveries (one map, see worker.py).
        functions = cast(Mapping[str, CustomFunction], self.hook_functions)
        self.channels = CampaignChannels(db, lanes or SendLanes(settings), functions)

    def all(self) -> list[Any]:
        """Every activity callable, for the worker."""
        return [
            self.load_campaign_plan,
            self.campaign_zones,
            self.start_campaign_run,
            self.send_campaign_slice,
            self.finish_campaign_run,
            self.set_campaign_state,
            self.send_event_batch,
        ]

    @activity.defn(name="load_campaign_plan")
    async def load_campaign_plan(self, ref: CampaignRef) -> CampaignPlan:
        """The campaign's current version with the project's defaults (Limits, QuietTime, CampaignHook)."""
        async with self.db.connect() as conn:
            row = await repo.get_campaign(conn, ref.app_id, ref.campaign_id)
            if row is None and activity.info().attempt < PLAN_ATTEMPTS:
                # CreateCampaign starts the workflow before it commits: the row may not be visible yet.
                raise LookupError(f"campaign {ref.campaign_id} not found (yet)")
            if row is None:
                return CampaignPlan(
                    app_id=ref.app_id,
                    campaign_id=ref.campaign_id,
                    version=0,
                    paused=False,
                    deleted=True,
                    start=datetime.now(UTC),
                )
            app = await load_app_settings(conn, ref.app_id)
            definition = CampaignDefinition.model_validate(row.definition)
            contents = await self._contents_of(conn, ref.app_id, definition)
        invalid = next((f"treatment {t}: {why}" for t, c in contents.items() if (why := c.invalid())), None)
        assert definition.Schedule is not None
        rule = schedule_rule(definition.Schedule, row.created_at)
        # The project's Limits are defaults for the campaign's; its Daily is also the cap across every
        # campaign and journey (``all_daily``), which the campaign's own Daily does not replace.
        limits = {
            k: int(v) for k, v in (app.Limits.model_dump(exclude_none=True) if app.Limits else {}).items()
        }
        limits.pop("Daily", None)
        if definition.Limits is not None:
            limits.update({k: int(v) for k, v in definition.Limits.model_dump(exclude_none=True).items()})
        quiet = definition.Schedule.QuietTime
        if quiet is None or not quiet.Start:
            quiet = app.QuietTime
        hook = definition.Hook if definition.Hook is not None and definition.Hook.Mode else app.CampaignHook
        return CampaignPlan(
            app_id=ref.app_id,
            campaign_id=ref.campaign_id,
            version=int(row.version),
            paused=bool(definition.IsPaused),
            deleted=row.state == "DELETED",
            frequency=rule.frequency,
            start=rule.start,
            end=rule.end,
            zone=definition.Schedule.Timezone,
            local_time=bool(definition.Schedule.IsLocalTime),
            holdout=definition.HoldoutPercent or 0,
            sizes=definition.treatment_sizes(),
            limits=limits,
            # The project's Daily counts every campaign and journey; the campaign's own only itself.
            all_daily=app.daily_cap_all,
            quiet_start=quiet.Start if quiet else None,
            quiet_end=quiet.End if quiet else None,
            hook=hook.LambdaFunctionName if hook is not None and hook.Mode == "FILTER" else None,
            invalid=invalid,
            treatment_delays=treatment_delays(definition, row.created_at),
            parts=self.settings.worker_processes,
        )

    @activity.defn(name="campaign_zones")
    async def campaign_zones(self, plan: CampaignPlan) -> list[str]:
        """The distinct Demographic.Timezone values of the segment's members now ("" for none)."""
        async with self.db.connect() as conn:
            clause = await self._segment_clause(conn, plan)
            if clause is None:
                return []
            return await repo.audience_zones(conn, plan.app_id, clause)

    @activity.defn(name="start_campaign_run")
    async def start_campaign_run(self, inp: RunStart) -> None:
        """Record a run as RUNNING (one row per treatment) and the campaign as EXECUTING."""
        async with self.db.begin() as conn:
            await repo.start_run(
                conn,
                app_id=inp.plan.app_id,
                campaign_id=inp.plan.campaign_id,
                version=inp.plan.version,
                run_key=inp.run_key,
                treatments=inp.plan.treatments,
                scheduled_start=inp.scheduled_at,
                started_at=inp.started_at,
                timezones_total=inp.timezones_total,
                metrics={"MISSED_RUNS_SKIPPED": inp.missed} if inp.missed else None,
            )
            if inp.plan.treatment_delays:
                await repo.shift_treatment_starts(
                    conn, inp.plan.campaign_id, inp.run_key, inp.plan.treatment_delays
                )
            await repo.set_state(
                conn, inp.plan.app_id, inp.plan.campaign_id, "EXECUTING", unless=("PAUSED", "DELETED")
            )

    @activity.defn(name="finish_campaign_run")
    async def finish_campaign_run(self, inp: RunFinish) -> dict[int, dict[str, int]]:
        """Close a run with exact counts from the ledger (per treatment) plus ``extra``."""
        async with self.db.begin() as conn:
            return await repo.finish_run(
                conn,
                campaign_id=inp.plan.campaign_id,
                run_key=inp.run_key,
                ended_at=inp.ended_at,
                timezones_completed=inp.timezones_completed,
                extra=inp.extra,
                result=inp.result,
            )

    @activity.defn(name="set_campaign_state")
    async def set_campaign_state(self, inp: CampaignStateChange) -> None:
        """Record the campaign's status (a PAUSED or DELETED campaign keeps it, except by COMPLETED/DELETED)."""
        unless = ("DELETED",) if inp.state in ("COMPLETED", "DELETED") else ("PAUSED", "DELETED")
        async with self.db.begin() as conn:
            await repo.set_state(conn, inp.app_id, inp.campaign_id, inp.state, unless=unless)

    async def _segment_clause(self, conn: AsyncConnection, plan: CampaignPlan) -> ColumnElement[bool] | None:
        row = await repo.get_campaign(conn, plan.app_id, plan.campaign_id)
        if row is None:
            return None
        segment_id = str(row.definition.get("SegmentId") or "")
        pinned = row.definition.get("SegmentVersion")
        try:
            return await load_segment_clause(
                conn, plan.app_id, segment_id, now=datetime.now(UTC), version=int(pinned) if pinned else None
            )
        except SegmentNotFound:
            return None

    async def _contents(self, conn: AsyncConnection, plan: CampaignPlan) -> dict[int, _Content]:
        """Each treatment's template and sender, loaded once per run (the active template version now)."""
        row = await repo.get_campaign(conn, plan.app_id, plan.campaign_id)
        assert row is not None
        return await self._contents_of(conn, plan.app_id, CampaignDefinition.model_validate(row.definition))

    async def _contents_of(
        self, conn: AsyncConnection, app_id: str, definition: CampaignDefinition
    ) -> dict[int, _Content]:
        channel = await email_channel(conn, app_id)
        contents: dict[int, _Content] = {}
        for treatment_id in range(len(definition.AdditionalTreatments) + 1):
            message, templates, custom = definition.treatment_content(treatment_id)
            others = {
                name: await self.channels.load(conn, app_id, source)
                for name, source in treatment_channels(message, templates, custom).items()
                if name != "EMAIL"
            }
            ref, inline = email_content(message, templates)
            template: dict[str, Any] | None
            if ref is not None:
                template = await load_email_template(conn, ref.Name or "", ref.Version)
                name = ref.Name
            elif inline is not None:
                template = {"Subject": inline.Title, "HtmlPart": inline.HtmlBody, "TextPart": inline.Body}
                if inline.Headers:
                    template["Headers"] = inline.Headers
                name = "EmailMessage"
            else:
                template, name = None, None
            from_address = (inline.FromAddress if inline else None) or (channel or {}).get("FromAddress")
            contents[treatment_id] = _Content(
                template,
                from_address,
                email_problem(template, channel, from_address, name),
                others,
                has_email=ref is not None or inline is not None,
                list_filter=await _list_filter(conn, template),
                message_configuration=message.model_dump(mode="json", exclude_none=True) if message else None,
            )
        return contents

    @activity.defn(name="send_campaign_slice")
    async def send_campaign_slice(self, inp: SliceInput) -> SliceResult:
        """Send one run (or one zone slice of a local-time run) to the segment's members, page by page."""
        plan = inp.plan
        started = time.monotonic()
        async with self.db.connect() as conn:
            clause = await self._segment_clause(conn, plan)
            if clause is None:
                return SliceResult(segment_missing=True)
            contents = await self._contents(conn, plan)
        rate = plan.limits.get("MessagesPerSecond", 0)
        max_duration = plan.limits.get("MaximumDuration", 0)
        page_size = min(SEND_BATCH, rate) if rate else SEND_BATCH
        # Pages are read ahead and sent by a few concurrent senders (disjoint endpoints, so their claims never
        # wait on each other), keeping the database and the renderer busy at once. Paced sends use one sender.
        # One query reads a page for each sender: the reader waits for the event loop between its steps, and
        # with one page per query it fell behind the senders (at 8 of them, it idled them 40% of the time).
        senders = 1 if rate else SEND_CONCURRENCY
        pages: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=senders)
        result = SliceResult()
        stop = asyncio.Event()

        async def read_pages() -> None:
            after: str | None = None
            try:
                while not stop.is_set():
                    async with self.db.connect() as conn:
                        rows = await repo.audience_page(
                            conn,
                            plan.app_id,
                            clause,
                            after=after,
                            limit=page_size * senders,
                            zones=inp.zones,
                            part=(inp.part, inp.parts),
                        )
                    if not rows:
                        break
                    after = rows[-1]["id"]
                    for start in range(0, len(rows), page_size):
                        await pages.put(rows[start : start + page_size])
            finally:
                for _ in range(senders):
                    await pages.put(None)

        async def send_pages() -> None:
            while (rows := await pages.get()) is not None:
                if stop.is_set():
                    continue
                if rate:
                    await asyncio.sleep(await self._reserve_sends(plan, rows, rate))
                page = await self._send_page(
                    plan, inp.run_key, inp.scheduled_at, inp.send_at, rows, contents, inp.treatments
                )
                if not inp.count_holdout:
                    page.holdout = 0
                result.targeted += page.targeted
                result.sent += page.sent
                result.holdout += page.holdout
                activity.heartbeat(result.targeted + result.holdout)
                if max_duration and time.monotonic() - started > max_duration:
                    result.stopped = True
                    stop.set()

        async with asyncio.TaskGroup() as group:
            group.create_task(read_pages())
            for _ in range(senders):
                group.create_task(send_pages())
        return result

    async def _reserve_sends(self, plan: CampaignPlan, rows: Sequence[dict[str, Any]], rate: int) -> float:
        """Reserve the page's messages on the campaign's shared send clock; seconds to wait before sending.

        MessagesPerSecond holds for the campaign as a whole: every part of a run, on any worker process, takes
        consecutive slots of one clock in Postgres (``send_pacing``).
        """
        count = sum(
            1
            for row in rows
            if treatment_for_cohort(endpoint_cohort(plan.campaign_id, row["id"]), plan.holdout, plan.sizes)
            is not None
        )
        if not count:
            return 0.0
        async with self.db.begin() as conn:
            start = await send_pacing.reserve(conn, f"campaign:{plan.campaign_id}", count, rate)
            now = await send_pacing.database_now(conn)
        return max(0.0, (start - now).total_seconds())

    async def _send_page(
        self,
        plan: CampaignPlan,
        run_key: str,
        scheduled_at: datetime,
        send_at: datetime,
        rows: Sequence[dict[str, Any]],
        contents: Mapping[int, _Content],
        only: Sequence[int] | None = None,
    ) -> SliceResult:
        """Assign, filter, claim and send one page of members (of the treatments ``only`` names, if given)."""
        result = SliceResult()
        targets: list[tuple[str, int, str | None]] = []
        by_id = {row["id"]: row for row in rows}
        for row in rows:
            treatment_id = treatment_for_cohort(
                endpoint_cohort(plan.campaign_id, row["id"]), plan.holdout, plan.sizes
            )
            if treatment_id is None:
                result.holdout += 1
                continue
            if only is not None and treatment_id not in only:
                continue  # another treatment's share, sent at that treatment's own time
            timezone = (row.get("demographic") or {}).get("Timezone")
            targets.append(
                (row["id"], treatment_id, quiet_reason(timezone, send_at, plan.quiet_start, plan.quiet_end))
            )
        if plan.hook:
            targets, answered = await self._filter_by_hook(
                plan, run_key, scheduled_at, targets, by_id, contents
            )
            # The hook's answers ride on the page's rows: a message renders its endpoint as the hook returned it.
            by_id.update(answered)
        caps = repo.CampaignCaps(
            daily=plan.limits.get("Daily", 0), total=plan.limits.get("Total", 0), all_daily=plan.all_daily
        )
        message_ids = [
            repo.campaign_message_id(plan.app_id, plan.campaign_id, run_key, t, ep) for ep, t, _ in targets
        ]
        async with self.db.begin() as conn:
            claimed = await repo.claim_campaign_emails(
                conn,
                app_id=plan.app_id,
                campaign_id=plan.campaign_id,
                run_key=run_key,
                targets=targets,
                now=send_at,
                caps=caps,
                channels=[contents[t].channel_for(by_id[ep].get("channel_type")) for ep, t, _ in targets],
                list_filters={
                    t: c.list_filter for t, c in contents.items() if c.list_filter and c.problem is None
                },
                message_ids=message_ids,
            )
        ids = {m: (ep, t) for m, (ep, t, _) in zip(message_ids, targets, strict=True)}
        if len(claimed) == len(ids):
            pending = {m for m, status in claimed.items() if status == "pending"}
        else:
            # A retry: some rows were claimed by an earlier attempt; send those still pending too.
            async with self.db.connect() as conn:
                pending = await repo.pending_of(conn, list(ids))
        per_treatment: dict[int, list[dict[str, Any]]] = {}
        for message_id in sorted(pending):
            endpoint_id, treatment_id = ids[message_id]
            per_treatment.setdefault(treatment_id, []).append(
                {**by_id[endpoint_id], "message_id": message_id}
            )
        for treatment_id, batch in sorted(per_treatment.items()):
            content = contents[treatment_id]
            if content.channels:
                batch = await self._send_other_channels(
                    plan, run_key, scheduled_at, treatment_id, content, batch, result
                )
            if not batch:
                continue
            if content.problem is not None:
                async with self.db.begin() as conn:
                    await message_ledger.mark_failed(
                        conn, [(r["message_id"], content.problem[0], content.problem[1]) for r in batch]
                    )
                continue
            assert content.template is not None and content.from_address is not None
            result.sent += await self.sender.send(
                batch,
                content.template,
                content.from_address,
                subscribers_only=content.list_filter is None,
            )
        result.targeted = len(targets)
        return result

    async def _send_other_channels(
        self,
        plan: CampaignPlan,
        run_key: str,
        scheduled_at: datetime,
        treatment_id: int,
        content: _Content,
        batch: list[dict[str, Any]],
        result: SliceResult,
    ) -> list[dict[str, Any]]:
        """Send a treatment's SMS, PUSH, VOICE and CUSTOM rows of the page; returns the EMAIL rows left."""
        by_channel: dict[str | None, list[dict[str, Any]]] = {}
        for row in batch:
            by_channel.setdefault(content.channel_for(row.get("channel_type")), []).append(row)
        for channel, rows in sorted(by_channel.items(), key=lambda item: str(item[0])):
            if channel is None or channel == "EMAIL":
                continue
            result.sent += await self.channels.send(
                content.channels[channel],
                rows,
                app_id=plan.app_id,
                campaign_id=plan.campaign_id,
                treatment_id=treatment_id,
                activity_id=repo.activity_id_of(run_key, treatment_id),
                scheduled_at=scheduled_at,
            )
        return by_channel.get("EMAIL", [])

    async def _filter_by_hook(
        self,
        plan: CampaignPlan,
        run_key: str,
        scheduled_at: datetime,
        targets: list[tuple[str, int, str | None]],
        by_id: Mapping[str, dict[str, Any]],
        contents: Mapping[int, _Content],
    ) -> tuple[list[tuple[str, int, str | None]], dict[str, dict[str, Any]]]:
        """Ask the FILTER hook which endpoints to keep, per treatment; the others are skipped.

        Returns:
            The targets with the hook's skip reasons, and the rows of the kept endpoints whose answer changes
            their message (:func:`~sojourn.engine.campaign_hook.merge_hook_answer`), by endpoint id.
        """
        assert plan.hook is not None
        hook = CampaignHook(plan.hook, self.hook_functions, self.hook_tls)
        kept: dict[str, HookAnswer] = {}
        failed: set[str] = set()
        for treatment_id in sorted({t for _, t, _ in targets}):
            candidates = {
                ep: endpoint_response(by_id[ep])
                for ep, t, reason in targets
                if t == treatment_id and reason is None
            }
            if not candidates:
                continue
            base = {
                "MessageConfiguration": contents[treatment_id].message_configuration,
                "ApplicationId": plan.app_id,
                "CampaignId": plan.campaign_id,
                "TreatmentId": str(treatment_id),
                "ActivityId": repo.activity_id_of(run_key, treatment_id),
                "ScheduledTime": scheduled_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            }
            try:
                kept.update(await hook.keep(base, candidates))
            except HookFailed as err:
                log.warning("campaign %s: %s", plan.campaign_id, err)
                failed |= set(candidates)
        targets = [
            (ep, t, reason or ("HOOK_FAILURE" if ep in failed else (None if ep in kept else "HOOK_FILTERED")))
            for ep, t, reason in targets
        ]
        return targets, {ep: merge_hook_answer(by_id[ep], a) for ep, a in kept.items() if a.changes}

    @activity.defn(name="send_event_batch")
    async def send_event_batch(self, inp: EventBatchInput) -> EventBatchResult:
        """Send to the endpoints whose events triggered the campaign: one batch of waiting intake rows.

        Only members of the campaign's (dynamic) segment get a message; an event older than 5 minutes at
        ``inp.now`` is not sent (counted ``EVENT_EXPIRED``), as in Pinpoint.
        """
        plan = inp.plan
        run_key = f"v{plan.version}-e{inp.batch_no}"
        async with self.db.begin() as conn:
            claimed = await repo.claim_intake(conn, plan.campaign_id, inp.batch_no, inp.batch_size)
        if not claimed:
            return EventBatchResult()
        fresh: list[str] = []
        expired = 0
        for endpoint_id, occurred_at in claimed:
            if inp.now - occurred_at > EVENT_DELIVERY_WINDOW:
                expired += 1
            elif endpoint_id not in fresh:
                fresh.append(endpoint_id)
        async with self.db.connect() as conn:
            clause = await self._segment_clause(conn, plan)
            if clause is None:
                return EventBatchResult(claimed=len(claimed), segment_missing=True)
            contents = await self._contents(conn, plan)
            rows = await repo.members_among(conn, plan.app_id, clause, fresh)
        async with self.db.begin() as conn:
            await repo.start_run(
                conn,
                app_id=plan.app_id,
                campaign_id=plan.campaign_id,
                version=plan.version,
                run_key=run_key,
                treatments=plan.treatments,
                scheduled_start=inp.now,
                started_at=inp.now,
                timezones_total=1,
            )
        page = await self._send_page(plan, run_key, inp.now, inp.now, rows, contents)
        extra = Counter(
            {"HOLDOUT": page.holdout, "EVENT_EXPIRED": expired, "NOT_IN_SEGMENT": len(fresh) - len(rows)}
        )
        async with self.db.begin() as conn:
            await repo.finish_run(
                conn,
                campaign_id=plan.campaign_id,
                run_key=run_key,
                ended_at=datetime.now(UTC),
                timezones_completed=1,
                extra={k: v for k, v in extra.items() if v},
                result="SUCCESS",
            )
        return EventBatchResult(claimed=len(claimed), sent=page.sent, expired=expired, holdout=page.holdout)
