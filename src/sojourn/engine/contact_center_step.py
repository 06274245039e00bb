"""The ContactCenter journey step: re-evaluate the participants, then hand the voice endpoints to a contact
center (sojourn's stand-in for an Amazon Connect outbound campaign).

Just before the hand-off, as Pinpoint does before dialing, the journey's entry segment and every earlier Yes/No
and Multivariate split on the lane's path (its lane name records the branches taken, see
:mod:`sojourn.domain.trace`) are evaluated again; members who would no longer be where they are leave the
journey (metric ``REMOVED_DUE_TO_REEVALUATION``). The others' VOICE endpoints are delivered, 50 per call, to
``JourneyChannelSettings.ConnectCampaignArn``: an ``https://`` webhook (signed like the custom channel) or the
name of a custom activity; endpoints of other types pass through to NextActivity.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio import activity

from sojourn.domain.app_settings import ApplicationSettings
from sojourn.domain.custom_activity import MAX_ENDPOINTS_PER_CALL, CustomSpec, delivery_target
from sojourn.domain.journeys import Activity, ConditionSpec, JourneyDefinition
from sojourn.domain.trace import participant_path
from sojourn.engine.custom_step import CustomFunction, deliver_batch
from sojourn.engine.inputs import StepInput, StepResult
from sojourn.engine.message_steps import StepHost, claim_lane, finish_lane, pending_whole_participants
from sojourn.engine.split_sql import Member, members_meeting
from sojourn.store import journey_ledger as ledger
from sojourn.store import message_ledger

FAILURE = "CONTACT_CENTER_FAILURE"
REMOVED = "REMOVED_DUE_TO_REEVALUATION"
RESPONSE_EVENT = "_contact_center.response"
_BRANCH = re.compile(r"branch (\d+)$")
_E164 = re.compile(r"\+[1-9]\d{1,14}")


def is_e164(number: str) -> bool:
    """Whether a phone number is in E.164 form (``+`` and 2 to 15 digits, no leading zero)."""
    return bool(_E164.fullmatch(number))


def path_branches(definition: JourneyDefinition, lane: str, activity_id: str) -> list[tuple[str, int]]:
    """(split activity, branch number) of every Yes/No and Multivariate split the lane passed before ``activity_id``."""
    out: list[tuple[str, int]] = []
    for step in participant_path(definition, lane, activity_id):
        if step.kind not in ("ConditionalSplit", "MultiCondition"):
            continue
        found = _BRANCH.search(step.note)
        if found:
            out.append((step.activity_id, int(found.group(1))))
    return out


def split_conditions(act: Activity) -> list[ConditionSpec | None]:
    """The conditions of a split's branches in order (the last branch, No or Else, takes the rest)."""
    if act.ConditionalSplit is not None:
        return [act.ConditionalSplit.Condition]
    if act.MultiCondition is not None:
        return list(act.MultiCondition.conditions())
    return []


async def load_definition(conn: AsyncConnection, journey_id: str, version: int) -> JourneyDefinition:
    """The journey version the cohort runs."""
    stored = await conn.scalar(
        text("SELECT definition FROM journey_versions WHERE journey_id = :j AND version = :v"),
        {"j": journey_id, "v": version},
    )
    return JourneyDefinition.model_validate({"Name": journey_id, **dict(stored or {})})


async def still_qualified(
    conn: AsyncConnection,
    inp: StepInput,
    definition: JourneyDefinition,
    members: list[Member],
    users: Mapping[Member, str] | None = None,
) -> set[Member]:
    """The members who are still in the entry segment and would still take every branch their lane took.

    Args:
        users: The user id of each member of a user participant: conditions are OR'ed across its endpoints.
    """
    assert inp.activity_id is not None
    now = datetime.now(UTC)
    qualified = set(members)
    segment_id = definition.entry_segment_id
    if segment_id and qualified:
        entry = ConditionSpec.model_validate(
            {"Conditions": [{"SegmentCondition": {"SegmentId": segment_id}}]}
        )
        qualified &= await members_meeting(
            conn, inp.app_id, inp.journey_id, entry, sorted(qualified), now=now, users=users
        )
    for split_id, branch in path_branches(definition, inp.lane, inp.activity_id):
        conditions = split_conditions(definition.Activities[split_id])
        remaining = set(qualified)
        taken: set[Member] = set()
        for number, condition in enumerate(conditions, start=1):
            met = await members_meeting(
                conn, inp.app_id, inp.journey_id, condition, sorted(remaining), now=now, users=users
            )
            if number == branch:
                taken = met
            remaining -= met
        if branch == len(conditions) + 1:
            taken = remaining
        qualified &= taken
    return qualified


def hand_off_spec(definition: JourneyDefinition, act: Activity) -> CustomSpec:
    """Where the activity hands participants off (see the module docstring).

    Raises:
        ValueError: JourneyChannelSettings.ConnectCampaignArn is missing or not a webhook or activity name.
    """
    settings = definition.JourneyChannelSettings or {}
    kind, target = delivery_target(str(settings.get("ConnectCampaignArn") or ""))
    next_activity = (act.ContactCenter or {}).get("NextActivity")
    return CustomSpec(
        kind=kind, target=target, endpoint_types=("VOICE",), data="", next_activity=next_activity
    )


async def contact_center_step(
    host: StepHost,
    inp: StepInput,
    act: Activity,
    shared_caps: Callable[[dict[str, Any], ApplicationSettings], message_ledger.SharedCaps],
    functions: Mapping[str, CustomFunction],
) -> StepResult:
    """Run a ContactCenter activity for one lane (see the module docstring)."""
    assert act.ContactCenter is not None and inp.activity_id is not None
    aid = inp.activity_id
    async with host.db.begin() as conn:
        await ledger.arrive(conn, inp.journey_id, inp.cohort_no, inp.lane, aid, inp.waited)
        definition = await load_definition(conn, inp.journey_id, inp.version)
        members, users = await ledger.lane_participants(conn, inp.journey_id, inp.cohort_no, inp.lane, aid)
        keep = await still_qualified(conn, inp, definition, list(members), users)
        gone = set(members) - keep
        if gone:
            (removed,) = await ledger.split_by_members(
                conn, inp.journey_id, inp.cohort_no, inp.lane, aid, [(f"{inp.lane}.r", None, gone)]
            )
            await ledger.add_counts(conn, inp.journey_id, {(aid, REMOVED): removed}, shard=inp.cohort_no)
    spec = hand_off_spec(definition, act)
    claimed: Counter[str] = Counter()
    held = await claim_lane(
        host,
        inp.model_copy(update={"waited": []}),
        channel="VOICE",
        channel_sql="'VOICE'",
        shared_caps=shared_caps,
        claimed=claimed,
    )
    secret = host.lanes.settings.custom_provider_secret
    problem: str | None = None
    if spec.kind == "function" and spec.target not in functions:
        problem = f"no custom activity named {spec.target!r} is registered on the worker"
    elif spec.kind == "webhook" and not secret:
        problem = (
            "SOJOURN_CUSTOM_PROVIDER_SECRET is empty: contact center calls are always signed, set a secret"
        )
    delivered = failed = 0
    activity.heartbeat(0)
    while True:
        chunks = await pending_whole_participants(host, inp, MAX_ENDPOINTS_PER_CALL)
        if not chunks:
            break
        rows = chunks[0]
        if problem is not None:
            async with host.db.begin() as conn:
                await message_ledger.mark_failed(conn, [(r["message_id"], FAILURE, problem) for r in rows])
            failed += len(rows)
            continue
        unreachable = [r for r in rows if not is_e164(str(r.get("address") or ""))]
        if unreachable:
            # A contact center dials E.164 numbers only.
            async with host.db.begin() as conn:
                await message_ledger.mark_failed(
                    conn,
                    [
                        (r["message_id"], FAILURE, f"{r['address']!r} is not an E.164 number")
                        for r in unreachable
                    ],
                )
            failed += len(unreachable)
            rows = [r for r in rows if r not in unreachable]
            if not rows:
                continue
        n = await deliver_batch(
            host,
            inp,
            spec,
            rows,
            secret,
            functions,
            event_type=RESPONSE_EVENT,
            extra={"ConnectCampaignArn": (definition.JourneyChannelSettings or {}).get("ConnectCampaignArn")},
            failure=FAILURE,
        )
        delivered += n
        failed += len(rows) - n
        activity.heartbeat(delivered)
    # ContactCenter metrics are counters (its ActivityType is CONTACT_CENTER, not MESSAGE).
    counts = {(aid, reason): n for reason, n in claimed.items() if reason != "pending"}
    counts[(aid, "SUCCESS")] = delivered
    counts[(aid, FAILURE)] = failed
    async with host.db.begin() as conn:
        await ledger.add_counts(
            conn, inp.journey_id, {k: v for k, v in counts.items() if v}, shard=inp.cohort_no
        )
    return await finish_lane(
        host, inp, spec.next_activity, held, f"handed {delivered} to the contact center, removed {len(gone)}"
    )
