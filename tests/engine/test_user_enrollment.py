"""Segment enrollment of user participants against the real PostgreSQL: cohorts, entry numbers, re-entry caps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.state import AppState
from sojourn.engine.inputs import EnrollInput
from sojourn.engine.journey_activities import JourneyActivities
from sojourn.settings import Settings
from tests.support.helpers import unique
from tests.support.seed import call
from tests.support.users import app_with_users, participant_rows


async def everyone_leaves(db: AsyncEngine, journey_id: str) -> None:
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE participants SET status = 'completed', position = NULL WHERE journey_id = :j"),
            {"j": journey_id},
        )


async def test_users_enter_whole_in_cohorts_and_reenter_under_a_cap_counted_per_user(db: AsyncEngine) -> None:
    settings = Settings()
    state = AppState(db=db, settings=settings)
    members: dict[str, str | None] = {f"u{i}-{k}": f"user{i}" for i in range(5) for k in "ab"}
    members.update({f"s{i}": None for i in range(4)})
    audience = await app_with_users(state, members, templates=())
    activities = JourneyActivities(db, settings)
    journey_id = unique("journey-")

    def enroll(first_cohort_no: int, *, refresh: bool = False, limits: dict[str, Any] | None = None) -> Any:
        return activities.enroll_segment(
            EnrollInput(
                app_id=audience.app_id,
                journey_id=journey_id,
                version=1,
                segment_id=audience.segment_id,
                start_activity="welcome",
                cohort_size=3,
                first_cohort_no=first_cohort_no,
                refresh=refresh,
                limits=limits or {},
                now=datetime.now(UTC),
            )
        )

    specs = await enroll(0)
    # Nine participants (five users, four endpoints) in cohorts of three: fourteen endpoint rows.
    assert [s.cohort_no for s in specs] == [0, 1, 2] and sum(s.size for s in specs) == 14
    rows = await participant_rows(state, journey_id)
    assert len(rows) == 14
    for i in range(5):
        a, b = rows[f"u{i}-a"], rows[f"u{i}-b"]
        assert a["cohort_no"] == b["cohort_no"] and a["user_id"] == b["user_id"] == f"user{i}"
    per_cohort: dict[int, set[str]] = {}
    for endpoint_id, row in rows.items():
        per_cohort.setdefault(row["cohort_no"], set()).add(row["user_id"] or endpoint_id)
    assert all(len(participants) == 3 for participants in per_cohort.values())
    assert await enroll(0) == specs, "a retried enrollment returns the cohorts it made"

    # user0 gets a new endpoint; everyone has left; a refresh under EndpointReentryCap 2 lets all enter again.
    await call(
        state,
        "UpdateEndpoint",
        ApplicationId=audience.app_id,
        EndpointId="u0-c",
        EndpointRequest={"ChannelType": "EMAIL", "Address": "c@example.com", "User": {"UserId": "user0"}},
    )
    await everyone_leaves(db, journey_id)
    again = await enroll(10, refresh=True, limits={"EndpointReentryCap": 2})
    assert sum(s.size for s in again) == 15
    async with db.connect() as conn:
        entries = dict(
            (
                await conn.execute(
                    text(
                        "SELECT endpoint_id, entry_no FROM participants WHERE journey_id = :j AND cohort_no >= 10"
                    ),
                    {"j": journey_id},
                )
            ).all()
        )
    # The new endpoint (not in the segment itself) enters with its user, on the user's second entry.
    assert entries["u0-c"] == 2 and entries["u0-a"] == 2 and entries["s0"] == 2

    # The cap counts entries per user: user0 has had two, so even its endpoint with one entry stays out.
    await everyone_leaves(db, journey_id)
    assert await enroll(20, refresh=True, limits={"EndpointReentryCap": 2}) == []
