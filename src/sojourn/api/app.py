"""The API server: Pinpoint- and SESv2-compatible REST plus the tracking and unsubscribe/preference pages, as one ASGI app."""

from __future__ import annotations

from sojourn.api.callbacks import callback_routes
from sojourn.api.handlers import HANDLERS
from sojourn.api.notifications import bounce_listener, notification_routes
from sojourn.api.optin_pages import optin_routes
from sojourn.api.pages import page_routes
from sojourn.api.server import build_app
from sojourn.api.state import AppState
from sojourn.api.tracking import tracking_routes
from sojourn.settings import Settings
from sojourn.store.db import create_engine


def create_app(settings: Settings, state: AppState | None = None) -> object:
    """Build the ASGI app for ``settings`` (``state`` lets tests share an engine and a Temporal client)."""
    state = state or AppState(db=create_engine(settings.database_url or ""), settings=settings)

    async def dispose() -> None:
        await state.send_lanes.close()
        await state.db.dispose()

    start_bounces, stop_bounces = bounce_listener(state)

    return build_app(
        services=["pinpoint", "sesv2"],
        handlers=HANDLERS,
        state=state,
        access_key_id=settings.access_key_id,
        secret_access_key=settings.secret_access_key,
        extra_routes=[
            *tracking_routes(state),
            *callback_routes(state),
            *page_routes(state),
            *notification_routes(state),
            *optin_routes(state),
        ],
        on_startup=[start_bounces],
        on_shutdown=[stop_bounces, dispose],
    )
