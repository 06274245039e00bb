"""Segments in Postgres, and their evaluation as SQL over the endpoints table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.segments import WriteSegmentRequest
from sojourn.store.segment_sql import segment_clause
from sojourn.store.tables import segment_versions, segments


class SegmentNotFound(LookupError):
    """A segment id (or version) that the app does not have."""


async def load_definitions(
    conn: AsyncConnection, app_id: str
) -> dict[tuple[str, int | None], WriteSegmentRequest]:
    """Every segment of the app, current and by version, for resolving segment references."""
    found: dict[tuple[str, int | None], WriteSegmentRequest] = {}
    current = await conn.execute(
        select(segments.c.id, segments.c.definition).where(segments.c.app_id == app_id)
    )
    for segment_id, definition in current:
        found[(segment_id, None)] = WriteSegmentRequest.model_validate(definition)
    rows = await conn.execute(
        select(
            segment_versions.c.segment_id, segment_versions.c.version, segment_versions.c.definition
        ).where(segment_versions.c.app_id == app_id)
    )
    for segment_id, version, definition in rows:
        found[(segment_id, version)] = WriteSegmentRequest.model_validate(definition)
    return found


async def load_segment_clause(
    conn: AsyncConnection, app_id: str, segment_id: str, *, now: datetime, version: int | None = None
) -> ColumnElement[bool]:
    """The SQL condition over ``endpoints`` that selects the members of a segment of ``app_id``.

    ``version`` pins a stored version of the segment's definition (campaigns' SegmentVersion); None: the
    current one.

    Raises:
        SegmentNotFound: the app has no such segment (or a segment it refers to is missing).
    """
    definitions = await load_definitions(conn, app_id)

    def resolve(ref_id: str, version: int | None) -> WriteSegmentRequest:
        try:
            return definitions[(ref_id, version)]
        except KeyError:
            raise SegmentNotFound(
                f"segment {ref_id}" + (f" version {version}" if version else "") + " not found"
            ) from None

    return segment_clause(resolve(segment_id, version), now=now, resolve=resolve)
