"""The CUSTOM journey step: deliver the lane's endpoints to a webhook or a custom activity, 50 per call.

Claims go through the message ledger like every message step (channel ``CUSTOM``; endpoints whose type is not
in EndpointTypes are claimed as skipped and pass through to NextActivity). Each call is signed like the
provider webhooks (HMAC-SHA256 with ``SOJOURN_CUSTOM_PROVIDER_SECRET``), carries an ``Idempotency-Key`` derived
from its message ids, has 15 seconds and up to 3 attempts. A 2xx answer marks the call's messages sent and
records the attributes the hook answered as ``_custom.response`` events (see
:mod:`sojourn.domain.custom_activity`); anything else fails them as ``CUSTOM_DELIVERY_FAILURE``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from sojourn.channels.providers import classify_response, retry_delay
from sojourn.channels.signing import signed_headers
from sojourn.domain.app_settings import ApplicationSettings
from sojourn.domain.custom_activity import (
    CUSTOM_TEMPLATE_TYPES,
    MAX_ENDPOINTS_PER_CALL,
    RESPONSE_EVENT,
    CustomSpec,
    custom_payload,
    custom_spec,
    endpoint_types_sql,
    response_attributes,
)
from sojourn.domain.journeys import Activity
from sojourn.domain.message_templates import render_template_fields
from sojourn.domain.templates import build_context
from sojourn.engine import names
from sojourn.engine.inputs import StepInput, StepResult
from sojourn.engine.message_steps import StepHost, claim_lane, finish_lane, pending_whole_participants
from sojourn.store import message_ledger
from sojourn.store.endpoint_rows import endpoint_response
from sojourn.store.events_repo import EventRow, record_events
from sojourn.store.templates_repo import load_template_of_any_type

log = logging.getLogger(__name__)

CALL_TIMEOUT = 15.0
CALL_ATTEMPTS = 3
# Webhook or function calls of one CUSTOM step in flight at once.
CONCURRENT_CALLS = 4
FAILURE = "CUSTOM_DELIVERY_FAILURE"

CustomFunction = Callable[[dict[str, Any]], Awaitable[Any]]


def call_key(message_ids: Sequence[str]) -> str:
    """The Idempotency-Key of one call: the same on a retry of the same messages."""
    return hashlib.md5("/".join(sorted(message_ids)).encode()).hexdigest()


async def call_webhook(url: str, secret: str, payload: dict[str, Any], key: str) -> tuple[bool, Any, str]:
    """POST the payload (signed, 15 s, up to 3 attempts on 429/5xx/timeouts).

    Returns:
        (accepted, the parsed JSON answer or None, what went wrong).
    """
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    why = "not called"
    async with httpx.AsyncClient(timeout=CALL_TIMEOUT) as client:
        for attempt in range(CALL_ATTEMPTS):
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": key,
                "User-Agent": "sojourn",
                **signed_headers(secret, int(time.time()), body),
            }
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as err:
                why, retry_after, retryable = f"could not reach {url}: {type(err).__name__}", None, True
            else:
                result = classify_response(
                    response.status_code, response.content, response.headers, datetime.now(UTC)
                )
                if 200 <= response.status_code < 300:
                    try:
                        return True, response.json() if response.content else None, ""
                    except ValueError:
                        return True, None, ""
                why = f"HTTP {response.status_code}: {result.status_message}"[:300]
                retry_after, retryable = result.retry_after, result.retryable
            if not retryable or attempt == CALL_ATTEMPTS - 1:
                return False, None, why
            await asyncio.sleep(retry_delay(attempt, retry_after, base=0.5, cap=5.0))
    return False, None, why


async def call_function(fn: CustomFunction, payload: dict[str, Any]) -> tuple[bool, Any, str]:
    """Call a registered custom activity function (15 s, up to 3 attempts on an exception)."""
    why = "not called"
    for attempt in range(CALL_ATTEMPTS):
        try:
            return True, await asyncio.wait_for(fn(payload), CALL_TIMEOUT), ""
        except Exception as err:  # the deployment's code: any failure is a failed delivery
            why = f"{type(err).__name__}: {err}"[:300]
            log.info("custom activity %s failed (attempt %d): %s", fn, attempt + 1, why)
    return False, None, why


async def custom_step(
    host: StepHost,
    inp: StepInput,
    act: Activity,
    shared_caps: Callable[[dict[str, Any], ApplicationSettings], message_ledger.SharedCaps],
    functions: Mapping[str, CustomFunction],
) -> StepResult:
    """Run a CUSTOM activity for one lane (see the module docstring)."""
    assert act.CUSTOM is not None and inp.activity_id is not None
    spec = custom_spec(act.CUSTOM)
    held = await claim_lane(
        host,
        inp,
        channel="CUSTOM",
        channel_sql=endpoint_types_sql(spec.endpoint_types),
        shared_caps=shared_caps,
    )
    secret = host.lanes.settings.custom_provider_secret
    problem: str | None = None
    if spec.kind == "function" and spec.target not in functions:
        problem = (
            f"no custom activity named {spec.target!r} is registered on the worker "
            "(list it in ACTIVITIES of the activities package)"
        )
    elif spec.kind == "webhook" and not secret:
        problem = (
            "SOJOURN_CUSTOM_PROVIDER_SECRET is empty: custom webhook calls are always signed, set a secret"
        )
    template: tuple[str, dict[str, Any]] | None = None
    if spec.template_name is not None:
        async with host.db.connect() as conn:
            template = await load_template_of_any_type(
                conn, spec.template_name, spec.template_version, CUSTOM_TEMPLATE_TYPES
            )
        if template is None:  # deleted since the journey was checked
            version = f" version {spec.template_version}" if spec.template_version else ""
            problem = problem or f"no template named {spec.template_name!r}{version} exists"
    per_second = int(inp.limits.get("MessagesPerSecond") or 0)
    delivered = 0
    activity.heartbeat(0)
    # Calls run a few at a time (each is mostly waiting on the hook); paced activities one at a time.
    calls = 1 if per_second or problem is not None else CONCURRENT_CALLS
    while True:
        chunks = await pending_whole_participants(host, inp, MAX_ENDPOINTS_PER_CALL, calls)
        if not chunks:
            break
        if problem is not None:
            async with host.db.begin() as conn:
                await message_ledger.mark_failed(
                    conn, [(r["message_id"], FAILURE, problem) for chunk in chunks for r in chunk]
                )
            continue
        if per_second:
            await host._pace(f"journey:{inp.journey_id}", len(chunks[0]), per_second, delivered)
        delivered += sum(
            await asyncio.gather(
                *(
                    deliver_batch(host, inp, spec, rows, secret, functions, template=template)
                    for rows in chunks
                )
            )
        )
        activity.heartbeat(delivered)
    return await finish_lane(host, inp, spec.next_activity, held, f"delivered {delivered} to {spec.target}")


async def deliver_batch(
    host: StepHost,
    inp: StepInput,
    spec: CustomSpec,
    rows: list[dict[str, Any]],
    secret: str,
    functions: Mapping[str, CustomFunction],
    *,
    event_type: str = RESPONSE_EVENT,
    extra: Mapping[str, Any] | None = None,
    failure: str = FAILURE,
    template: tuple[str, dict[str, Any]] | None = None,
) -> int:
    """Make one call for ``rows``; on success mark them sent and record the answered attributes as events.

    Args:
        host: The step's resources.
        inp: The lane's step input.
        spec: The CUSTOM activity.
        rows: The claimed endpoints (with their message ids).
        secret: The webhook signing secret.
        functions: The registered custom activity functions.
        event_type: The event recorded for answered attributes.
        extra: Fields added to the payload.
        failure: The metric failed messages are counted under.
        template: The TemplateName's (type, stored content), rendered per endpoint into the payload.

    Returns:
        How many messages the call delivered (all of ``rows``, or 0).
    """
    assert inp.activity_id is not None
    message_ids = {str(r["id"]): str(r["message_id"]) for r in rows}
    endpoints = {str(r["id"]): endpoint_response(r) for r in rows}
    rendered: tuple[str, dict[str, dict[str, Any]]] | None = None
    if template is not None:
        template_type, content = template
        try:
            rendered = (
                template_type,
                {
                    endpoint_id: render_template_fields(
                        content,
                        build_context(endpoint, default_substitutions=content.get("DefaultSubstitutions")),
                    )
                    for endpoint_id, endpoint in endpoints.items()
                },
            )
        except ValueError as err:
            why = f"template {spec.template_name!r} does not render: {err}"[:300]
            async with host.db.begin() as conn:
                await message_ledger.mark_failed(conn, [(m, failure, why) for m in message_ids.values()])
            return 0
    payload = dict(extra or {}) | custom_payload(
        spec,
        app_id=inp.app_id,
        journey_id=inp.journey_id,
        activity_id=inp.activity_id,
        endpoints=endpoints,
        message_ids=message_ids,
        template=rendered,
    )
    delivered, triggered = await deliver_call(
        host.db,
        spec,
        app_id=inp.app_id,
        rows=rows,
        payload=payload,
        secret=secret,
        functions=functions,
        tie={"journey_id": inp.journey_id, "journey_activity_id": inp.activity_id},
        event_type=event_type,
        failure=failure,
    )
    await ring_doorbells(inp.app_id, triggered)
    return delivered


async def deliver_call(
    db: AsyncEngine,
    spec: CustomSpec,
    *,
    app_id: str,
    rows: list[dict[str, Any]],
    payload: dict[str, Any],
    secret: str,
    functions: Mapping[str, CustomFunction],
    tie: Mapping[str, str],
    event_type: str = RESPONSE_EVENT,
    failure: str = FAILURE,
) -> tuple[int, set[str]]:
    """Make one call with ``payload`` for ``rows``; on success mark them sent and record the answered attributes.

    The CUSTOM journey step and CUSTOM campaigns share it.

    Args:
        tie: Attributes that tie the response events to their sender (journey or campaign ids).

    Returns:
        (how many messages the call delivered: all of ``rows`` or 0, the event-triggered journeys the
        response events started).
    """
    message_ids = {str(r["id"]): str(r["message_id"]) for r in rows}
    if spec.kind == "webhook":
        ok, answer, why = await call_webhook(
            spec.target, secret, payload, call_key(list(message_ids.values()))
        )
    else:
        ok, answer, why = await call_function(functions[spec.target], payload)
    async with db.begin() as conn:
        if not ok:
            await message_ledger.mark_failed(conn, [(m, failure, why) for m in message_ids.values()])
            return 0, set()
        await message_ledger.mark_sent(conn, list(message_ids.values()))
        now = datetime.now(UTC)
        triggered = await record_events(
            conn,
            [
                EventRow(
                    app_id=app_id,
                    endpoint_id=endpoint_id,
                    event_id=f"{event_type}:{message_ids[endpoint_id]}",
                    event_type=event_type,
                    occurred_at=now,
                    attributes={**attributes, **tie, "message_id": message_ids[endpoint_id]},
                    message_id=message_ids[endpoint_id],
                )
                for endpoint_id, attributes in response_attributes(answer, set(message_ids)).items()
            ],
        )
    return len(message_ids), triggered


async def ring_doorbells(app_id: str, journey_ids: set[str]) -> None:
    """Wake event-triggered journeys the response events started (best effort: they poll their intake anyway)."""
    if not journey_ids:
        return
    try:
        client = activity.client()
        for journey_id in sorted(journey_ids):
            await client.get_workflow_handle(names.journey_workflow_id(app_id, journey_id)).signal("doorbell")
    except Exception as err:
        log.warning("doorbell for journeys %s not delivered: %s", sorted(journey_ids), err)
