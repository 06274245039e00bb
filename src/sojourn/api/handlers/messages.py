"""Direct sends: SendMessages and SendUsersMessages (synchronous, per-recipient results)."""

from __future__ import annotations

from typing import Any

from sojourn.api.server import Handler, RequestContext
from sojourn.engine.direct_send import DirectSender


def _sender(ctx: RequestContext) -> DirectSender:
    state = ctx.state
    return DirectSender(state.db, state.settings, state.send_lanes)


async def send_messages(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SendMessages: a message to raw addresses and/or endpoints, answered per recipient."""
    response = await _sender(ctx).send_messages(
        params["ApplicationId"], params["MessageRequest"], ctx.request_id
    )
    return {"MessageResponse": response}


async def send_users_messages(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """SendUsersMessages: a message to every endpoint of each user, answered per user and endpoint."""
    response = await _sender(ctx).send_users_messages(
        params["ApplicationId"], params["SendUsersMessageRequest"], ctx.request_id
    )
    return {"SendUsersMessageResponse": response}


HANDLERS: dict[str, Handler] = {
    "SendMessages": send_messages,
    "SendUsersMessages": send_users_messages,
}
