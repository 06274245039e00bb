"""Every API operation sojourn implements, by operation name: the merge of each module's ``HANDLERS``."""

from __future__ import annotations

from sojourn.api.handlers import (
    apps,
    campaigns,
    channels,
    endpoints,
    events,
    journeys,
    segments,
    sesv2_suppression,
    templates,
)
from sojourn.api.handlers.message_templates import HANDLERS as MESSAGE_TEMPLATE_HANDLERS
from sojourn.api.handlers.messages import HANDLERS as MESSAGE_HANDLERS
from sojourn.api.handlers.provider_channels import HANDLERS as PROVIDER_CHANNEL_HANDLERS
from sojourn.api.handlers.sesv2_lists import HANDLERS as SESV2_LIST_HANDLERS
from sojourn.api.handlers.sesv2_send import HANDLERS as SESV2_SEND_HANDLERS
from sojourn.api.handlers.sesv2_templates import HANDLERS as SESV2_TEMPLATE_HANDLERS
from sojourn.api.server import Handler

HANDLERS: dict[str, Handler] = {
    **apps.HANDLERS,
    **endpoints.HANDLERS,
    **templates.HANDLERS,
    **channels.HANDLERS,
    **segments.HANDLERS,
    **journeys.HANDLERS,
    **events.HANDLERS,
    **MESSAGE_HANDLERS,
    **PROVIDER_CHANNEL_HANDLERS,
    **SESV2_LIST_HANDLERS,
    **SESV2_TEMPLATE_HANDLERS,
    **SESV2_SEND_HANDLERS,
    **sesv2_suppression.HANDLERS,
    **campaigns.HANDLERS,
    **MESSAGE_TEMPLATE_HANDLERS,
}

__all__ = ["HANDLERS"]
