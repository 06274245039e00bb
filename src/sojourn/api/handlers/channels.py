"""The email channel of an app: UpdateEmailChannel, GetEmailChannel, DeleteEmailChannel."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Any

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.server import Handler, RequestContext
from sojourn.store import templates_repo
from sojourn.store.apps_repo import require_app

_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_OPTIONAL = ("ConfigurationSet", "RoleArn", "OrchestrationSendingRoleArn")


def channel_settings(request: dict[str, Any]) -> dict[str, Any]:
    """The settings of an EmailChannelRequest to store, checked.

    Raises:
        BadRequestError: FromAddress is not an email address, or Identity is missing.
    """
    from_address = str(request.get("FromAddress") or "").strip()
    _name, address = parseaddr(from_address)
    if not _ADDRESS.fullmatch(address):
        raise BadRequestError(
            f"EmailChannelRequest.FromAddress {from_address!r} is not an email address; "
            'use e.g. hello@example.com or "Example <hello@example.com>"'
        )
    identity = str(request.get("Identity") or "").strip()
    if not identity:
        raise BadRequestError(
            "EmailChannelRequest.Identity is required (any string: sojourn sends through its SMTP relay)"
        )
    settings = {"FromAddress": from_address, "Identity": identity}
    settings.update({k: request[k] for k in _OPTIONAL if request.get(k)})
    return settings


def _no_channel(app_id: str) -> NotFoundError:
    return NotFoundError(f"Application {app_id} has no email channel; create it with UpdateEmailChannel")


async def update_email_channel(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateEmailChannel: create or replace the channel's settings."""
    app_id = params["ApplicationId"]
    request = params["EmailChannelRequest"]
    settings = channel_settings(request)
    enabled = request.get("Enabled")
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        channel = await templates_repo.put_email_channel(conn, app_id, settings, enabled=enabled)
    return {"EmailChannelResponse": channel}


async def get_email_channel(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetEmailChannel."""
    app_id = params["ApplicationId"]
    async with ctx.state.db.connect() as conn:
        await require_app(conn, app_id)
        channel = await templates_repo.email_channel(conn, app_id)
    if channel is None:
        raise _no_channel(app_id)
    return {"EmailChannelResponse": channel}


async def delete_email_channel(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteEmailChannel: removes the settings and returns them."""
    app_id = params["ApplicationId"]
    async with ctx.state.db.begin() as conn:
        await require_app(conn, app_id)
        channel = await templates_repo.delete_email_channel(conn, app_id)
    if channel is None:
        raise _no_channel(app_id)
    return {"EmailChannelResponse": channel}


HANDLERS: dict[str, Handler] = {
    "UpdateEmailChannel": update_email_channel,
    "GetEmailChannel": get_email_channel,
    "DeleteEmailChannel": delete_email_channel,
}
