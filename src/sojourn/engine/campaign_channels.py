"""Campaign messages on SMS, PUSH, VOICE and CUSTOM: what each treatment sends there, and the sending.

The EMAIL path stays in :mod:`sojourn.engine.campaign_activities` (and :mod:`sojourn.engine.email_batch`); the
campaign's send loop claims every member in the message ledger on the channel
:func:`~sojourn.domain.campaigns.endpoint_channel` picks, then hands the pending rows of the other channels to
:meth:`CampaignChannels.send`. Rendering and delivery are the journey steps' own code:
:func:`~sojourn.engine.message_steps.send_rendered` through the bulk lane's provider (its deterministic message
id is the webhook's ``Idempotency-Key``), and :func:`~sojourn.engine.custom_step.deliver_call` for CUSTOM, 50
endpoints per call with Pinpoint's campaign payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sojourn.channels.priority import Lane
from sojourn.channels.providers import ProviderNotConfiguredError
from sojourn.channels.senders import SendLanes
from sojourn.domain.campaigns import ChannelSource
from sojourn.domain.custom_activity import MAX_ENDPOINTS_PER_CALL, CustomSpec, delivery_target
from sojourn.domain.message_templates import render_sms
from sojourn.domain.templates import build_context
from sojourn.engine.campaign_hook import HOOK_OVERRIDES, hooked_endpoint, override_message
from sojourn.engine.custom_step import CustomFunction, deliver_call, ring_doorbells
from sojourn.engine.message_steps import MessageSpec, channel_settings, render_message, send_rendered
from sojourn.store import message_ledger
from sojourn.store.endpoint_rows import endpoint_response
from sojourn.store.templates_repo import load_email_template

CUSTOM_FAILURE = "CUSTOM_DELIVERY_FAILURE"


@dataclass(frozen=True)
class LoadedChannel:
    """One treatment's message on one channel, ready to send (or why it cannot be).

    Attributes:
        source: Where the message comes from (template or inline).
        content: The stored template's content, or the inline message shaped like one.
        channel_settings: The app's channel settings (SMS SenderId/ShortCode defaults).
        problem: (metric, words) when nothing can be sent on this channel; None when it can.
        invalid: Whether the problem is the campaign's own (a missing template, a disabled or missing channel),
            which makes the campaign INVALID, rather than the deployment's (no provider configured).
    """

    source: ChannelSource
    content: dict[str, Any] | None
    channel_settings: dict[str, Any]
    problem: tuple[str, str] | None = None
    invalid: bool = False


def render_campaign_message(loaded: LoadedChannel, row: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered SMS, push or voice message for one claimed endpoint row (with the FILTER hook's
    TitleOverride/BodyOverride when the row carries them: see ``campaign_hook.override_message``).

    Raises:
        ValueError: the content has nothing for the endpoint or does not render.
    """
    assert loaded.content is not None
    channel = loaded.source.channel
    if channel == "VOICE":
        context = build_context(
            endpoint_response(dict(row)), default_substitutions=loaded.content.get("DefaultSubstitutions")
        )
        voice = {k: loaded.content[k] for k in ("LanguageCode", "VoiceId") if loaded.content.get(k)}
        message = {**render_sms(loaded.content, context), **voice}
    else:
        spec = MessageSpec(
            channel=channel,
            template_name="",
            template_version=None,
            config=dict(loaded.source.settings),
            next_activity=None,
        )
        message = render_message(spec, loaded.content, dict(row), loaded.channel_settings)
    overrides = row.get(HOOK_OVERRIDES)
    return override_message(channel, message, overrides) if overrides else message


def custom_target(source: ChannelSource) -> CustomSpec:
    """The CUSTOM delivery of a treatment as the CUSTOM step's spec.

    Raises:
        ValueError: the DeliveryUri is not usable.
    """
    kind, target = delivery_target(source.delivery_uri)
    return CustomSpec(
        kind=kind,
        target=target,
        endpoint_types=source.endpoint_types,
        data=str((source.inline or {}).get("Data") or ""),
        next_activity=None,
    )


class CampaignChannels:
    """Loads and sends a campaign's SMS, PUSH, VOICE and CUSTOM messages (the bulk lane of each provider)."""

    def __init__(
        self, db: AsyncEngine, lanes: SendLanes, functions: Mapping[str, CustomFunction] | None = None
    ) -> None:
        self.db = db
        self.lanes = lanes
        self.functions = dict(functions or {})

    async def load(self, conn: AsyncConnection, app_id: str, source: ChannelSource) -> LoadedChannel:
        """A treatment's message on a channel: its template (the active version now) and the app's settings."""
        channel = source.channel
        if channel == "CUSTOM":
            return LoadedChannel(source, source.inline, {}, self._custom_problem(source))
        settings, problem = await channel_settings(conn, app_id, channel)
        content: dict[str, Any] | None = source.inline
        if source.template is not None:
            content = await load_email_template(
                conn, source.template.Name or "", source.template.Version, template_type=channel
            )
            if content is None:
                version = f" version {source.template.Version}" if source.template.Version else ""
                problem = problem or (
                    "RENDERING_FAILURE",
                    f"{channel} template {source.template.Name!r}{version} does not exist",
                )
        if problem is not None:
            return LoadedChannel(source, content, settings, problem, invalid=True)
        try:
            self.lanes.provider(channel, Lane.BULK)
        except ProviderNotConfiguredError as err:
            return LoadedChannel(source, content, settings, ("UNSUPPORTED_CHANNEL", str(err)))
        return LoadedChannel(source, content, settings)

    def _custom_problem(self, source: ChannelSource) -> tuple[str, str] | None:
        try:
            spec = custom_target(source)
        except ValueError as err:
            return (CUSTOM_FAILURE, str(err))
        if spec.kind == "function" and spec.target not in self.functions:
            return (
                CUSTOM_FAILURE,
                f"no custom activity named {spec.target!r} is registered on the worker "
                "(list it in ACTIVITIES of the activities package)",
            )
        if spec.kind == "webhook" and not self.lanes.settings.custom_provider_secret:
            return (
                CUSTOM_FAILURE,
                "SOJOURN_CUSTOM_PROVIDER_SECRET is empty: custom webhook calls are always signed, set a secret",
            )
        return None

    async def send(
        self,
        loaded: LoadedChannel,
        rows: list[dict[str, Any]],
        *,
        app_id: str,
        campaign_id: str,
        treatment_id: int,
        activity_id: str,
        scheduled_at: datetime,
    ) -> int:
        """Send claimed pending rows of one treatment on one channel; failures are recorded in the ledger.

        Returns:
            How many were delivered.
        """
        if loaded.problem is not None:
            metric, words = loaded.problem
            async with self.db.begin() as conn:
                await message_ledger.mark_failed(conn, [(r["message_id"], metric, words) for r in rows])
            return 0
        tie = {
            "campaign_id": campaign_id,
            "campaign_activity_id": activity_id,
            "treatment_id": str(treatment_id),
        }
        channel = loaded.source.channel
        if channel != "CUSTOM":
            return await send_rendered(
                self.db,
                self.lanes.provider(channel, Lane.BULK),
                app_id=app_id,
                channel=channel,
                rows=rows,
                render=lambda row: render_campaign_message(loaded, row),
                context=tie,
            )
        spec = custom_target(loaded.source)
        delivered = 0
        for start in range(0, len(rows), MAX_ENDPOINTS_PER_CALL):
            batch = rows[start : start + MAX_ENDPOINTS_PER_CALL]
            payload = {
                "Message": spec.data,
                "Data": spec.data,
                "ApplicationId": app_id,
                "CampaignId": campaign_id,
                "TreatmentId": str(treatment_id),
                "ActivityId": activity_id,
                "ScheduledTime": scheduled_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "Endpoints": {str(r["id"]): hooked_endpoint(r) for r in batch},
                "MessageIds": {str(r["id"]): str(r["message_id"]) for r in batch},
            }
            n, triggered = await deliver_call(
                self.db,
                spec,
                app_id=app_id,
                rows=batch,
                payload=payload,
                secret=self.lanes.settings.custom_provider_secret,
                functions=self.functions,
                tie=tie,
                failure=CUSTOM_FAILURE,
            )
            delivered += n
            await ring_doorbells(app_id, triggered)
        return delivered
