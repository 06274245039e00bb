"""The campaign hook in FILTER mode: a function that sees the endpoints before sending, keeps some of them and
may change what their messages say.

sojourn's stand-in for Pinpoint's Lambda is either an ``https://`` URL (a webhook, POSTed Pinpoint's event
JSON) or the name of a custom activity function of this deployment (``ACTIVITIES`` in ``activities/``,
called in-process with the same event dict). Either returns the map of endpoints to keep (``{id: endpoint}``).
At most 50 endpoints go in one call; a call that takes longer than 15 s, answers something that is not a JSON
object (or an endpoint definition sojourn cannot read, see :func:`parse_hook_endpoint`), or fails is tried up
to 3 times, then the run fails for those endpoints (their messages are not sent: skipped with
``HOOK_FAILURE``).

What a kept endpoint's definition says changes its message, as in Pinpoint ("the function might update the
endpoint definitions with attributes that contain data from a source that is external to Amazon Pinpoint"):

- the message is rendered with the endpoint as the hook returned it (:func:`merge_hook_answer`): its
  ``Attributes``, ``User.UserAttributes``, ``Metrics``, ``Demographic`` (not its Timezone) and ``Location``
  replace the stored ones field by field; a field the answer leaves out keeps the stored value. Nothing that
  says who the endpoint is or whether it may be sent to changes (``Id``, ``Address``, ``ChannelType``,
  ``OptOut``, ``EndpointStatus``, ``User.UserId``, ``Demographic.Timezone``, dates, ``CohortId``): the claim
  in the message ledger has already decided reachability, suppression, quiet time and caps on the stored
  endpoint;
- ``TitleOverride`` and ``BodyOverride`` replace the title and body of the endpoint's SMS, VOICE or PUSH
  message (:func:`override_message`); an email keeps its template's Subject and parts, as in Pinpoint, and a
  CUSTOM delivery gets them on the endpoint definition it is sent (:func:`hooked_endpoint`).

The answers ride on the page's endpoint rows (:func:`merge_hook_answer`), so a campaign without a hook does no
extra work at all.
"""

from __future__ import annotations

import asyncio
import copy
import json
import marshal
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sojourn.store.endpoint_rows import endpoint_response

HOOK_BATCH = 50
HOOK_TIMEOUT_SECONDS = 15.0
HOOK_ATTEMPTS = 3

#: The key of a page row that carries the hook's TitleOverride/BodyOverride for that endpoint. It exists only
#: on the rows of endpoints whose answer gave one.
HOOK_OVERRIDES = "hook_overrides"
OVERRIDE_NAMES = ("TitleOverride", "BodyOverride")
#: Which message field each override replaces, per channel. EMAIL has none (Pinpoint applies the overrides to
#: the other channels only; an email's Subject and parts stay the template's). SMS and VOICE messages have a
#: Body and no title. CUSTOM has neither: its message is the campaign's ``Data``, and the overrides reach the
#: custom function on the endpoint definition instead (:func:`hooked_endpoint`).
OVERRIDDEN_FIELDS: Mapping[str, Mapping[str, str]] = {
    "SMS": {"BodyOverride": "Body"},
    "VOICE": {"BodyOverride": "Body"},
    "PUSH": {"TitleOverride": "Title", "BodyOverride": "Body"},
}
# Local-time delivery and quiet time were decided on the stored zone before the hook was called.
_KEPT_DEMOGRAPHIC = ("Timezone",)

HookFunction = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]] | Mapping[str, Any]]


class HookFailed(RuntimeError):
    """The hook failed three times for a batch of endpoints."""


@dataclass(frozen=True)
class HookAnswer:
    """What the hook answered for one endpoint it kept.

    Attributes:
        columns: New values of the endpoint row's columns (``attributes``, ``user_attributes``, ``metrics``,
            ``demographic``, ``location``), for the fields the answer gave.
        overrides: ``TitleOverride`` / ``BodyOverride`` texts the answer gave (non-empty strings).
    """

    columns: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        """Whether the answer changes the endpoint's message at all (else the stored endpoint is used)."""
        return bool(self.columns or self.overrides)


_SCALARS = (str, int, float, bool)
_UNCHANGED = HookAnswer()


def _is_object(value: Any) -> bool:
    # ``dict`` first: what JSON decodes to, and far cheaper to test than the Mapping ABC.
    return isinstance(value, dict) or isinstance(value, Mapping)


def _attribute_map(endpoint_id: str, name: str, value: Any) -> dict[str, Any]:
    """An Attributes-like map: name -> list of values (a lone value counts as a list of one)."""
    if not _is_object(value):
        raise ValueError(
            f"endpoint {endpoint_id}: {name} must be an object of attribute name -> list of values"
        )
    out = dict(value)
    for key, items in out.items():
        if type(items) is list:
            if all(isinstance(item, _SCALARS) for item in items):
                continue
        elif isinstance(items, _SCALARS):
            out[key] = [items]
            continue
        raise ValueError(
            f"endpoint {endpoint_id}: {name}.{key} must be a list of strings (or numbers), not {items!r}"
        )
    return out


def _object(endpoint_id: str, name: str, value: Any) -> dict[str, Any]:
    if not _is_object(value):
        raise ValueError(f"endpoint {endpoint_id}: {name} must be an object")
    return dict(value)


def parse_hook_endpoint(endpoint_id: str, definition: Any) -> HookAnswer:
    """Read one endpoint definition of the hook's answer: the fields sojourn honours, checked.

    A value that is not an object (``true``, ``null``) keeps the endpoint unchanged, as sojourn always allowed.
    Fields that would change who the endpoint is (Address, ChannelType, OptOut, ...) are ignored.

    Args:
        endpoint_id: The endpoint's id (for error messages).
        definition: The answer's value for that id (the hook's own copy: its lists are kept, not copied).

    Raises:
        ValueError: a field sojourn honours has the wrong shape (the answer cannot be decoded: the call counts as
            a failed attempt).
    """
    if not _is_object(definition):
        return _UNCHANGED
    get = definition.get
    columns: dict[str, Any] = {}
    if (value := get("Attributes")) is not None:
        columns["attributes"] = _attribute_map(endpoint_id, "Attributes", value)
    if (user := get("User")) is not None:
        if not _is_object(user):
            raise ValueError(f"endpoint {endpoint_id}: User must be an object")
        if (value := user.get("UserAttributes")) is not None:
            columns["user_attributes"] = _attribute_map(endpoint_id, "User.UserAttributes", value)
    if (value := get("Metrics")) is not None:
        metrics = columns["metrics"] = _object(endpoint_id, "Metrics", value)
        for name, number in metrics.items():
            if type(number) is bool or not isinstance(number, int | float):
                raise ValueError(f"endpoint {endpoint_id}: Metrics.{name} must be a number, not {number!r}")
    if (value := get("Demographic")) is not None:
        columns["demographic"] = _object(endpoint_id, "Demographic", value)
    if (value := get("Location")) is not None:
        columns["location"] = _object(endpoint_id, "Location", value)
    overrides: dict[str, str] = {}
    for name in OVERRIDE_NAMES:
        text = get(name)
        if text is not None and not isinstance(text, str):
            raise ValueError(f"endpoint {endpoint_id}: {name} must be a string, not {text!r}")
        if text:
            overrides[name] = text
    return HookAnswer(columns, overrides) if columns or overrides else _UNCHANGED


def merge_hook_answer(row: Mapping[str, Any], answer: HookAnswer) -> dict[str, Any]:
    """The endpoint row its message is rendered from: the stored row with the hook's answer applied.

    Each field the answer gives replaces the stored one whole (so the hook may also remove an attribute); a
    field it leaves out keeps the stored value; ``Demographic.Timezone`` stays the stored one. The overrides go
    under :data:`HOOK_OVERRIDES`. ``row`` is not modified.
    """
    merged = {**row, **answer.columns}
    if "demographic" in answer.columns:
        stored = row.get("demographic") or {}
        demographic = {k: v for k, v in answer.columns["demographic"].items() if k not in _KEPT_DEMOGRAPHIC}
        demographic.update({k: stored[k] for k in _KEPT_DEMOGRAPHIC if k in stored})
        merged["demographic"] = demographic
    if answer.overrides:
        merged[HOOK_OVERRIDES] = dict(answer.overrides)
    return merged


def override_message(channel: str, message: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """A rendered SMS, VOICE or PUSH message with the hook's overrides in place of its title and body.

    Args:
        channel: SMS, VOICE, PUSH (others have nothing to override: the message is returned as is).
        message: The rendered message fields (``Body``, ``Title``, ...).
        overrides: ``TitleOverride`` / ``BodyOverride`` from the hook's answer.
    """
    fields = OVERRIDDEN_FIELDS.get(channel, {})
    changed = {fields[name]: text for name, text in overrides.items() if name in fields}
    return {**message, **changed} if changed else message


def hooked_endpoint(row: Mapping[str, Any]) -> dict[str, Any]:
    """The EndpointResponse of a page row, with the hook's TitleOverride/BodyOverride when it gave them (what a
    CUSTOM delivery is sent for the endpoint)."""
    endpoint = endpoint_response(row)
    overrides = row.get(HOOK_OVERRIDES)
    return {**endpoint, **overrides} if overrides else endpoint


def hook_batches(endpoint_ids: Sequence[str]) -> list[list[str]]:
    """Endpoint ids in calls of at most :data:`HOOK_BATCH`."""
    return [list(endpoint_ids[i : i + HOOK_BATCH]) for i in range(0, len(endpoint_ids), HOOK_BATCH)]


def _detached(event: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the event (plain JSON data): marshal copies it in C, at half ``copy.deepcopy``'s cost."""
    try:
        copied: dict[str, Any] = marshal.loads(marshal.dumps(event))
    except ValueError:  # something marshal cannot write (not plain JSON data)
        copied = copy.deepcopy(event)
    return copied


def _post_json(url: str, body: dict[str, Any], context: ssl.SSLContext | None) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=HOOK_TIMEOUT_SECONDS, context=context) as response:
        return json.loads(response.read().decode() or "null")


class CampaignHook:
    """Calls one FILTER hook.

    Args:
        name: ``LambdaFunctionName``: an https URL or a custom activity function's name.
        functions: The deployment's custom functions by name.
        tls: TLS context for https hooks (None: the system's trust store).
    """

    def __init__(
        self, name: str, functions: Mapping[str, HookFunction], tls: ssl.SSLContext | None = None
    ) -> None:
        self.name = name
        self.functions = functions
        self.tls = tls

    async def _call_once(self, event: dict[str, Any]) -> Mapping[str, Any]:
        if self.name.startswith("https://"):
            answer = await asyncio.wait_for(
                asyncio.to_thread(_post_json, self.name, event, self.tls), HOOK_TIMEOUT_SECONDS + 1
            )
        else:
            function = self.functions.get(self.name)
            if function is None:
                raise HookFailed(f"no custom function named {self.name!r} is registered (activities/)")
            # A copy, as a webhook gets one: a function that edits the endpoints it is given in place (as
            # Pinpoint's own example does) must not reach into the page's rows.
            result = function(_detached(event))
            answer = (
                await asyncio.wait_for(result, HOOK_TIMEOUT_SECONDS)
                if asyncio.iscoroutine(result)
                else result
            )
        if not isinstance(answer, Mapping):
            raise HookFailed("the hook must return a JSON object {endpoint id: endpoint}")
        return answer

    async def keep(
        self, base_event: Mapping[str, Any], endpoints: Mapping[str, dict[str, Any]]
    ) -> dict[str, HookAnswer]:
        """The endpoints the hook keeps, with its answer for each, calling it with at most 50 at a time.

        Args:
            base_event: MessageConfiguration, ApplicationId, CampaignId, TreatmentId, ActivityId, ScheduledTime.
            endpoints: EndpointResponse-shaped endpoints by id.

        Raises:
            HookFailed: a batch failed three times.
        """
        kept: dict[str, HookAnswer] = {}
        for ids in hook_batches(sorted(endpoints)):
            event = {**base_event, "Endpoints": {i: endpoints[i] for i in ids}}
            asked = set(ids)
            last: Exception | None = None
            for _ in range(HOOK_ATTEMPTS):
                try:
                    answer = await self._call_once(event)
                    # Only the endpoints of this call: an id the hook adds on its own is not in the run.
                    kept.update(
                        {str(k): parse_hook_endpoint(str(k), v) for k, v in answer.items() if k in asked}
                    )
                    break
                except (OSError, ValueError, TimeoutError, HookFailed) as err:
                    last = err
            else:
                raise HookFailed(f"campaign hook {self.name} failed {HOOK_ATTEMPTS} times: {last}")
        return kept
