"""Every API operation sojourn implements, by operation name: the merge of each module's ``HANDLERS``."""

from __future__ import annotations

from sojourn.api.handlers import apps, campaigns, channels, endpoints, events, journeys, segments, templates
from sojourn.api.server import Handler

HANDLERS: dict[str, Handler] = {
    **apps.HANDLERS,
    **endpoints.HANDLERS,
    **templates.HANDLERS,
    **channels.HANDLERS,
    **segments.HANDLERS,
    **journeys.HANDLERS,
    **events.HANDLERS,
    **campaigns.HANDLERS,
}

__all__ = ["HANDLERS"]
