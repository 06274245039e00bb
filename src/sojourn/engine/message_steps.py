"""The SMS and PUSH journey steps: claim, render and send through the channel's provider.

They follow the email step (:meth:`sojourn.engine.step_activities.StepActivities._email_step`) and share its
rules through the step host: quiet time and sending-schedule holds, the journey's and the project's caps in
the claim, MessagesPerSecond pacing, and the message ledger's deterministic ids (which the webhook provider
sends as ``Idempotency-Key``), so a retried step never sends twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from sojourn.channels.priority import Lane
from sojourn.channels.providers import (
    PUSH_CHANNEL_TYPES,
    ChannelProvider,
    OutgoingMessage,
    ProviderNotConfiguredError,
)
from sojourn.channels.senders import SendLanes
from sojourn.domain.app_settings import ApplicationSettings
from sojourn.domain.journeys import Activity
from sojourn.domain.message_templates import render_push, render_sms
from sojourn.domain.templates import build_context
from sojourn.engine.inputs import Branch, StepInput, StepResult
from sojourn.store import journey_ledger as ledger
from sojourn.store import message_ledger
from sojourn.store.app_settings_repo import load_app_settings
from sojourn.store.endpoint_rows import endpoint_response
from sojourn.store.journey_deliveries import record_provider_answers
from sojourn.store.templates_repo import load_email_template

log = logging.getLogger(__name__)

SEND_BATCH = 500
#: The endpoint channel types a PUSH activity sends to, as SQL for :func:`message_ledger.skip_reason_sql`:
#: the endpoint's own type when it is a push type, else a value no endpoint has.
PUSH_CHANNEL_SQL = (
    "(CASE WHEN e.channel_type IN ("
    + ", ".join(f"'{t}'" for t in sorted(PUSH_CHANNEL_TYPES))
    + ") THEN e.channel_type ELSE 'PUSH' END)"
)


class StepHost(Protocol):
    """What the message steps use of :class:`~sojourn.engine.step_activities.StepActivities`."""

    db: AsyncEngine
    lanes: SendLanes

    async def _hold_for_sending_window(
        self, conn: AsyncConnection, inp: StepInput, channel: str, now: datetime
    ) -> dict[tuple[str, int], str]: ...

    async def _pace(self, key: str, count: int, per_second: int, progress: int) -> None: ...


@dataclass(frozen=True)
class MessageSpec:
    """What a message activity sends: its channel, template and per-activity settings."""

    channel: str
    template_name: str
    template_version: str | None
    config: dict[str, Any]
    next_activity: str | None

    @property
    def channel_sql(self) -> str:
        """The endpoint channel types this message goes to, as SQL over an endpoint ``e``."""
        return PUSH_CHANNEL_SQL if self.channel == "PUSH" else f"'{self.channel}'"


def message_spec(act: Activity) -> MessageSpec:
    """The send of an SMS or PUSH activity.

    Raises:
        ValueError: the activity is neither.
    """
    if act.SMS is not None:
        raw, channel = act.SMS, "SMS"
    elif act.PUSH is not None:
        raw, channel = act.PUSH, "PUSH"
    else:
        raise ValueError(f"{act.kind} is not an SMS or PUSH activity")
    return MessageSpec(
        channel=channel,
        template_name=str(raw.get("TemplateName") or ""),
        template_version=raw.get("TemplateVersion"),
        config=dict(raw.get("MessageConfig") or {}),
        next_activity=raw.get("NextActivity"),
    )


def sms_settings(config: dict[str, Any], channel: dict[str, Any] | None = None) -> dict[str, Any]:
    """The SMSMessage fields a journey's ``MessageConfig`` adds to each message.

    If both OriginationNumber and SenderId are given the number wins (Pinpoint's rule); without either, the
    app's SMS channel SenderId (else its ShortCode as the number) is used; MessageType defaults to
    TRANSACTIONAL.
    """
    channel = channel or {}
    out: dict[str, Any] = {"MessageType": config.get("MessageType") or "TRANSACTIONAL"}
    if config.get("OriginationNumber"):
        out["OriginationNumber"] = config["OriginationNumber"]
    elif config.get("SenderId"):
        out["SenderId"] = config["SenderId"]
    elif channel.get("SenderId"):
        out["SenderId"] = channel["SenderId"]
    elif channel.get("ShortCode"):
        out["OriginationNumber"] = channel["ShortCode"]
    for name in ("EntityId", "TemplateId"):
        if config.get(name):
            out[name] = config[name]
    return out


def push_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The push message fields a journey's ``MessageConfig`` adds: ``TimeToLive`` in seconds (0: now or never)."""
    ttl = config.get("TimeToLive")
    return {"TimeToLive": int(str(ttl))} if ttl not in (None, "") else {}


def render_message(
    spec: MessageSpec, template: dict[str, Any], row: dict[str, Any], channel: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The message content for one claimed endpoint row, rendered with its attributes.

    Args:
        spec: The activity's send.
        template: The stored template.
        row: The endpoint row (with ``message_id``).
        channel: The app's channel settings (SMS: SenderId, ShortCode defaults).


    Raises:
        ValueError: the template does not render for this endpoint.
    """
    context = build_context(
        endpoint_response(row), default_substitutions=template.get("DefaultSubstitutions")
    )
    if spec.channel == "SMS":
        return {**render_sms(template, context), **sms_settings(spec.config, channel)}
    return {
        **render_push(template, str(row.get("channel_type") or ""), context),
        **push_settings(spec.config),
    }


async def channel_settings(
    conn: AsyncConnection, app_id: str, channel: str
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The app's settings of ``channel`` and why it cannot send on it at all (None when it can).

    SMS needs the app's SMS channel, enabled; push endpoints need no channel settings here.
    """
    if channel != "SMS":
        return {}, None
    row = (
        await conn.execute(
            text("SELECT enabled, settings FROM channels WHERE app_id = :a AND channel_type = 'SMS'"),
            {"a": app_id},
        )
    ).first()
    if row is None:
        return {}, ("UNSUPPORTED_CHANNEL", "the app has no SMS channel; set it up with UpdateSmsChannel")
    if not row.enabled:
        return {}, (
            "UNSUPPORTED_CHANNEL",
            "the app's SMS channel is disabled; enable it with UpdateSmsChannel",
        )
    return dict(row.settings or {}), None


def journey_total_cap(limits: dict[str, Any], app_settings: ApplicationSettings) -> int:
    """The journey's TotalCap, else the project's JourneyLimits.TotalCap (0: none)."""
    own = int(limits.get("TotalCap") or 0)
    if own:
        return own
    return (app_settings.JourneyLimits.TotalCap or 0) if app_settings.JourneyLimits else 0


async def claim_lane(
    host: StepHost,
    inp: StepInput,
    *,
    channel: str,
    channel_sql: str,
    shared_caps: Callable[[dict[str, Any], ApplicationSettings], message_ledger.SharedCaps],
    claimed: Counter[str] | None = None,
) -> list[tuple[str, datetime, int]]:
    """Arrive, hold members for the sending window, and claim a message per remaining member (caps applied).

    Args:
        claimed: When given, gets the new ledger rows per status or skip reason.

    Returns:
        The lanes held for quiet time: (lane, release time, members).
    """
    assert inp.activity_id is not None
    now = inp.now or datetime.now(UTC)
    async with host.db.begin() as conn:
        await ledger.arrive(conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id, inp.waited)
        drops = await host._hold_for_sending_window(conn, inp, channel, now)
        app_settings = await load_app_settings(conn, inp.app_id)
        held = await ledger.held_lanes(conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id)
        counts = await message_ledger.claim_journey_emails(
            conn,
            app_id=inp.app_id,
            journey_id=inp.journey_id,
            version=inp.version,
            cohort_no=inp.cohort_no,
            lane=inp.lane,
            activity_id=inp.activity_id,
            visit=inp.visit,
            now=now,
            daily_cap=int(inp.limits.get("DailyCap") or 0),
            total_cap=journey_total_cap(inp.limits, app_settings),
            skips=drops,
            shared=shared_caps(inp.limits, app_settings),
            channel=channel,
            channel_sql=channel_sql,
        )
    if claimed is not None:
        claimed.update(counts)
    return list(held)


async def finish_lane(
    host: StepHost,
    inp: StepInput,
    next_activity: str | None,
    held: list[tuple[str, datetime, int]],
    detail: str,
) -> StepResult:
    """Move the lane on to ``next_activity``; the held lanes come back to this activity when released."""
    assert inp.activity_id is not None
    async with host.db.begin() as conn:
        moved = await ledger.move_lane(
            conn, inp.journey_id, inp.cohort_no, inp.lane, inp.activity_id, next_activity
        )
    waiting = [
        Branch(lane=name, next_activity=inp.activity_id, count=n, resume_at=until) for name, until, n in held
    ]
    return StepResult(
        branches=[Branch(lane=inp.lane, next_activity=next_activity, count=moved), *waiting],
        processed=moved,
        detail=detail + (f", {sum(b.count for b in waiting)} held for quiet time" if waiting else ""),
    )


async def pending_rows(host: StepHost, inp: StepInput, limit: int) -> list[dict[str, Any]]:
    """Claimed, unsent messages of the lane (with their endpoint rows), at most ``limit``."""
    assert inp.activity_id is not None
    async with host.db.connect() as conn:
        return await message_ledger.pending_journey_emails(
            conn,
            journey_id=inp.journey_id,
            cohort_no=inp.cohort_no,
            lane=inp.lane,
            activity_id=inp.activity_id,
            limit=limit,
        )


async def pending_whole_participants(
    host: StepHost, inp: StepInput, limit: int, calls: int = 1
) -> list[list[dict[str, Any]]]:
    """The lane's pending messages as up to ``calls`` calls of at most ``limit`` rows each, in which a user
    participant's endpoints are never split between two calls (unless one user alone has more than ``limit``
    endpoints: then its first ``limit`` make a call). Empty when nothing is pending."""
    assert inp.activity_id is not None
    async with host.db.connect() as conn:
        rows = await message_ledger.pending_journey_emails(
            conn,
            journey_id=inp.journey_id,
            cohort_no=inp.cohort_no,
            lane=inp.lane,
            activity_id=inp.activity_id,
            limit=limit * calls + 1,
            by_participant=True,
        )
    return call_chunks(rows, limit, calls)


def call_chunks(rows: list[dict[str, Any]], limit: int, calls: int) -> list[list[dict[str, Any]]]:
    """Split ``rows`` (ordered by participant; up to ``limit * calls + 1`` of them, the extra one telling
    whether the last participant goes on past them) into at most ``calls`` calls of whole participants."""
    out: list[list[dict[str, Any]]] = []
    rest = rows
    while rest and len(out) < calls:
        chunk = whole_participants(rest, limit)
        out.append(chunk)
        # With a full fetch at least ``limit + 1`` rows remain before the last call, so the look-ahead row
        # always decides the last cut and a participant going on past the fetch waits for the next round.
        rest = rest[len(chunk) :]
    return out


def whole_participants(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` of ``rows`` (ordered by participant), cut back to the last whole participant.

    ``rows`` holds up to ``limit + 1`` rows: the extra one tells whether the participant at the cut goes on.
    """
    if len(rows) <= limit:
        return rows
    cut = rows[limit]["participant"]
    whole = [r for r in rows[:limit] if r["participant"] != cut]
    return whole or rows[:limit]


async def provider_step(
    host: StepHost,
    inp: StepInput,
    act: Activity,
    shared_caps: Callable[[dict[str, Any], ApplicationSettings], message_ledger.SharedCaps],
) -> StepResult:
    """Run an SMS or PUSH activity for one lane: claim, send what can be sent, move the lane on.

    Args:
        host: The step activities (database, send lanes, sending-window holds, pacing).
        inp: The step.
        act: The SMS or PUSH activity.
        shared_caps: The caps shared with other journeys and campaigns, from the limits and project settings.

    Returns:
        The lane going on to NextActivity, plus lanes held for quiet time.
    """
    spec = message_spec(act)
    held = await claim_lane(
        host, inp, channel=spec.channel, channel_sql=spec.channel_sql, shared_caps=shared_caps
    )
    async with host.db.connect() as conn:
        template = await load_email_template(
            conn, spec.template_name, spec.template_version, template_type=spec.channel
        )
        channel, problem = await channel_settings(conn, inp.app_id, spec.channel)
    provider: ChannelProvider | None = None
    if template is None:
        problem = problem or (
            "RENDERING_FAILURE",
            f"{spec.channel} template {spec.template_name!r} does not exist",
        )
    if problem is None:
        try:
            provider = host.lanes.provider(spec.channel, Lane.TRANSACTIONAL)
        except ProviderNotConfiguredError as err:
            problem = ("UNSUPPORTED_CHANNEL", str(err))
    sent = await _send_claimed(host, inp, spec, template, provider, problem, channel)
    return await finish_lane(host, inp, spec.next_activity, held, f"sent {sent} {spec.channel}")


async def _send_claimed(
    host: StepHost,
    inp: StepInput,
    spec: MessageSpec,
    template: dict[str, Any] | None,
    provider: ChannelProvider | None,
    problem: tuple[str, str] | None,
    channel: dict[str, Any],
) -> int:
    """Send (or, with a ``problem``, fail) every pending message of the lane, batch by batch."""
    assert inp.activity_id is not None
    per_second = int(inp.limits.get("MessagesPerSecond") or 0)
    batch = min(SEND_BATCH, per_second) if per_second else SEND_BATCH
    sent = 0
    activity.heartbeat(0)
    while True:
        rows = await pending_rows(host, inp, batch)
        if not rows:
            return sent
        if problem is not None or provider is None or template is None:
            reason = problem or ("UNSUPPORTED_CHANNEL", "no provider")
            async with host.db.begin() as conn:
                await message_ledger.mark_failed(
                    conn, [(r["message_id"], reason[0], reason[1]) for r in rows]
                )
            continue
        if per_second:
            await host._pace(f"journey:{inp.journey_id}", len(rows), per_second, sent)
        sent += await _send_rows(host, inp, spec, template, provider, rows, channel)
        activity.heartbeat(sent)


async def _send_rows(
    host: StepHost,
    inp: StepInput,
    spec: MessageSpec,
    template: dict[str, Any],
    provider: ChannelProvider,
    rows: list[dict[str, Any]],
    channel: dict[str, Any],
) -> int:
    return await send_rendered(
        host.db,
        provider,
        app_id=inp.app_id,
        channel=spec.channel,
        rows=rows,
        render=lambda row: render_message(spec, template, row, channel),
        context={"journey_id": inp.journey_id, "journey_activity_id": inp.activity_id or ""},
    )


async def send_rendered(
    db: AsyncEngine,
    provider: ChannelProvider,
    *,
    app_id: str,
    channel: str,
    rows: list[dict[str, Any]],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    context: dict[str, str],
) -> int:
    """Render and send claimed rows through a provider; record its answers and the failures in the ledger.

    The journey SMS/PUSH steps and the campaign channels share it.

    Args:
        db: The database.
        provider: The channel's provider.
        app_id: The application.
        channel: SMS, PUSH or VOICE.
        rows: Claimed pending messages (``message_id`` plus the endpoint's columns).
        render: The message content for one row (raises ValueError/KeyError: RENDERING_FAILURE).
        context: Copied into the messages and their delivery events (journey or campaign ids).

    Returns:
        How many the provider accepted.
    """
    outgoing: list[OutgoingMessage] = []
    failures: list[tuple[str, str, str]] = []
    for row in rows:
        try:
            content = render(row)
        except (ValueError, KeyError) as err:
            failures.append((row["message_id"], "RENDERING_FAILURE", str(err)))
            continue
        outgoing.append(
            OutgoingMessage(
                message_id=row["message_id"],
                app_id=app_id,
                channel=channel,
                channel_type=str(row.get("channel_type") or channel),
                address=str(row.get("address") or ""),
                content=content,
                endpoint_id=str(row.get("id") or ""),
                context=context,
            )
        )

    async def commit(ids: Sequence[str]) -> None:
        async with db.begin() as conn:
            await message_ledger.mark_sent(conn, ids)

    results = await provider.send_batch(outgoing, commit) if outgoing else {}
    failures += [(mid, r.delivery_status, r.status_message) for mid, r in results.items() if not r.ok]
    async with db.begin() as conn:
        await record_provider_answers(conn, channel, results, context)
        if failures:
            await message_ledger.mark_failed(conn, failures)
    return sum(1 for r in results.values() if r.ok)
