"""Tests of the API handlers, called directly as the server calls them (helpers shared by the modules)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.handlers import HANDLERS
from sojourn.api.server import RequestContext
from sojourn.api.state import AppState
from sojourn.settings import Settings


def make_state(db: AsyncEngine) -> AppState:
    """An AppState on the test database (no Temporal: these handlers never need it)."""
    return AppState(db=db, settings=Settings())


async def call(state: AppState, operation: str, **params: Any) -> dict[str, Any]:
    """Run one operation's handler with a fresh request id, as the server would."""
    ctx = RequestContext(request_id=uuid.uuid4().hex, operation=operation, service="pinpoint", state=state)
    return await HANDLERS[operation](ctx, params)


async def new_app(state: AppState, name: str = "test") -> str:
    """Create an app and return its id."""
    response = await call(state, "CreateApp", CreateApplicationRequest={"Name": name})
    return str(response["ApplicationResponse"]["Id"])
