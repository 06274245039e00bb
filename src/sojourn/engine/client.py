"""Connecting to Temporal with sojourn's data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from sojourn.settings import Settings


async def connect(settings: Settings) -> Client:
    """Connect to the configured Temporal frontend and namespace (pydantic models on the wire)."""
    return await Client.connect(
        settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
