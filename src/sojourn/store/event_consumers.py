"""Who consumes an app's events right now: event-triggered journeys, EVENT campaigns, wait-for-event splits.

Every event batch must see the journeys and campaigns as they are in its own transaction (one activated a
moment ago takes the very next event), so the lookup is one query per batch, never a timed cache. What is
cached, per process, is the parsed definition of each row *version*: the query names every qualifying row with
its version stamp (``xmin`` and ``ctid``, which change on every update of the row) and sends the definition
only for versions this process has not parsed yet. An app with no consumers costs one small query and
nothing else.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.domain.campaigns import CampaignDefinition
from sojourn.domain.journeys import JourneyDefinition

_CONSUMERS_SQL = text(
    """
    SELECT 'journey' AS kind, id, xmin::text || ctid::text AS stamp,
           state IN ('ACTIVE', 'PAUSED') AND definition -> 'StartCondition' ? 'EventStartCondition' AS entry,
           CASE WHEN 'journey:' || id || '@' || xmin::text || ctid::text = ANY(CAST(:known AS text[]))
                THEN NULL ELSE definition END AS definition
    FROM journeys
    WHERE app_id = :a AND state IN ('ACTIVE', 'PAUSED', 'CLOSED')
      AND ((state IN ('ACTIVE', 'PAUSED') AND definition -> 'StartCondition' ? 'EventStartCondition')
           OR definition::text LIKE '%ConditionalSplit%')
    UNION ALL
    SELECT 'campaign', id, xmin::text || ctid::text, false,
           CASE WHEN 'campaign:' || id || '@' || xmin::text || ctid::text = ANY(CAST(:known AS text[]))
                THEN NULL ELSE definition END
    FROM campaigns
    WHERE app_id = :a AND state IN ('SCHEDULED', 'EXECUTING', 'PENDING_NEXT_RUN')
      AND definition -> 'Schedule' ->> 'Frequency' = 'EVENT'
    """
)

MAX_CACHED_APPS = 1024
"""Apps whose parsed definitions this process keeps (least recently used ones are dropped first)."""

# app id -> version key ("journey:<id>@<stamp>") -> parsed definition, as of the app's last lookup.
_parsed: OrderedDict[str, dict[str, Any]] = OrderedDict()


@dataclass(frozen=True)
class EventConsumers:
    """What the events of one app feed, as seen by the current transaction."""

    entry_journeys: list[tuple[str, JourneyDefinition]] = field(default_factory=list)
    """ACTIVE or PAUSED journeys that start on an event (PAUSED: entrants queue up)."""
    campaigns: list[tuple[str, CampaignDefinition]] = field(default_factory=list)
    """EVENT campaigns that take events now (not paused, deleted or completed)."""
    awaiting: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    """Per ACTIVE, PAUSED or CLOSED journey with wait-for-event splits: split activity id -> awaited types."""

    @property
    def any(self) -> bool:
        """Whether anything consumes the events at all."""
        return bool(self.entry_journeys or self.campaigns or self.awaiting)


async def event_consumers(conn: AsyncConnection, app_id: str) -> EventConsumers:
    """The app's event consumers, read in the caller's transaction (one query; definitions parsed once per version).

    Args:
        conn: A connection (the event path's transaction).
        app_id: The application.
    """
    known = _parsed.get(app_id, {})
    rows = (await conn.execute(_CONSUMERS_SQL, {"a": app_id, "known": list(known)})).all()
    current: dict[str, Any] = {}
    consumers = EventConsumers()
    for row in rows:
        key = f"{row.kind}:{row.id}@{row.stamp}"
        if row.definition is None:
            parsed = known[key]
        elif row.kind == "journey":
            parsed = JourneyDefinition.model_validate(row.definition)
        else:
            parsed = CampaignDefinition.model_validate(row.definition)
        current[key] = parsed
        if row.kind == "campaign":
            consumers.campaigns.append((row.id, parsed))
            continue
        if row.entry:
            consumers.entry_journeys.append((row.id, parsed))
        splits = {aid: act.awaited_event_types() for aid, act in parsed.Activities.items()}
        splits = {aid: types for aid, types in splits.items() if types}
        if splits:
            consumers.awaiting[row.id] = splits
    _remember(app_id, current)
    return consumers


def _remember(app_id: str, parsed: dict[str, Any]) -> None:
    _parsed[app_id] = parsed
    _parsed.move_to_end(app_id)
    while len(_parsed) > MAX_CACHED_APPS:
        _parsed.popitem(last=False)
