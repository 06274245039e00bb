"""The journey's safety net for a lost cohort_done signal: cohorts with no participant left count as finished."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.engine.inputs import CohortsCancel
from sojourn.engine.journey_activities import JourneyActivities
from sojourn.settings import Settings


async def test_cohorts_whose_participants_all_left_are_finished(db: AsyncEngine) -> None:
    journey_id = f"j-{uuid.uuid4().hex[:8]}"
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO participants (journey_id, endpoint_id, entry_no, app_id, version, cohort_no, lane, "
                "position, status) VALUES "
                "(:j, 'a', 1, 'app', 1, 0, '0', NULL, 'completed'), "
                "(:j, 'b', 1, 'app', 1, 0, '0.1', NULL, 'held_out'), "
                "(:j, 'c', 1, 'app', 1, 1, '0', 'wait', 'active'), "
                "(:j, 'd', 1, 'app', 1, 1, '0', NULL, 'completed')"
            ),
            {"j": journey_id},
        )
    finished = await JourneyActivities(db, Settings()).finished_cohorts(
        CohortsCancel(journey_id=journey_id, cohort_nos=[0, 1, 2])
    )
    # Cohort 0: everyone left; cohort 1: one still waits; cohort 2: nobody (never filled, or already cancelled).
    assert sorted(finished) == [0, 2]
