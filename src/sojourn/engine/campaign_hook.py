"""The campaign hook in FILTER mode: a function that sees the endpoints before sending and keeps some of them.

sojourn's stand-in for Pinpoint's Lambda is either an ``https://`` URL (a webhook, POSTed Pinpoint's event
JSON) or the name of a custom activity function of this deployment (``ACTIVITIES`` in ``activities/``,
called in-process with the same event dict). Either returns the map of endpoints to keep (``{id: endpoint}``;
extra attributes in it are ignored by sojourn's email rendering). At most 50 endpoints go in one call; a call
that takes longer than 15 s, answers something that is not a JSON object, or fails is tried up to 3 times,
then the run fails for those endpoints (their messages are not sent: skipped with ``HOOK_FAILURE``).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

HOOK_BATCH = 50
HOOK_TIMEOUT_SECONDS = 15.0
HOOK_ATTEMPTS = 3

HookFunction = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]] | Mapping[str, Any]]


class HookFailed(RuntimeError):
    """The hook failed three times for a batch of endpoints."""


def hook_batches(endpoint_ids: Sequence[str]) -> list[list[str]]:
    """Endpoint ids in calls of at most :data:`HOOK_BATCH`."""
    return [list(endpoint_ids[i : i + HOOK_BATCH]) for i in range(0, len(endpoint_ids), HOOK_BATCH)]


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
            result = function(event)
            answer = (
                await asyncio.wait_for(result, HOOK_TIMEOUT_SECONDS)
                if asyncio.iscoroutine(result)
                else result
            )
        if not isinstance(answer, Mapping):
            raise HookFailed("the hook must return a JSON object {endpoint id: endpoint}")
        return answer

    async def keep(self, base_event: Mapping[str, Any], endpoints: Mapping[str, dict[str, Any]]) -> set[str]:
        """The endpoint ids the hook keeps, calling it with at most 50 endpoints at a time.

        Args:
            base_event: ApplicationId, CampaignId, TreatmentId, ActivityId, ScheduledTime (and MessageConfiguration).
            endpoints: EndpointResponse-shaped endpoints by id.

        Raises:
            HookFailed: a batch failed three times.
        """
        kept: set[str] = set()
        for ids in hook_batches(sorted(endpoints)):
            event = {**base_event, "Endpoints": {i: endpoints[i] for i in ids}}
            last: Exception | None = None
            for _ in range(HOOK_ATTEMPTS):
                try:
                    answer = await self._call_once(event)
                    kept |= {str(k) for k in answer if k in endpoints}
                    break
                except (OSError, ValueError, TimeoutError, HookFailed) as err:
                    last = err
            else:
                raise HookFailed(f"campaign hook {self.name} failed {HOOK_ATTEMPTS} times: {last}")
        return kept
