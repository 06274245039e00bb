"""Unengaged selection in SQL agrees with the pure rule; policies applied on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.state import AppState
from sojourn.domain.hygiene import is_unengaged
from sojourn.settings import Settings
from sojourn.store import consent_repo, hygiene_repo
from tests.support.hygiene import History, seed_history
from tests.support.seed import call

NOW = datetime.now(UTC)
CASES = {
    "silent": History(200, 10, None),
    "silent_old_open": History(200, 10, 120),
    "opened": History(200, 10, 5),
    "not_mailed": History(200, None, None),
    "mailed_long_ago": History(200, 100, None),
    "new": History(20, 3, None),
    "edge_mailed": History(200, 89, None),
}


async def test_sql_selection_matches_the_rule(db: AsyncEngine) -> None:
    app_id = await seed_history(db, NOW, CASES)
    async with db.connect() as conn:
        found = await hygiene_repo.unengaged_endpoints(conn, app_id, days=90, now=NOW)
    expected = {
        name
        for name, h in CASES.items()
        if is_unengaged(
            created_at=NOW - timedelta(days=h.created_days_ago),
            last_sent_at=None if h.sent_days_ago is None else NOW - timedelta(days=h.sent_days_ago),
            last_engaged_at=None if h.opened_days_ago is None else NOW - timedelta(days=h.opened_days_ago),
            now=NOW,
            days=90,
        )
    }
    assert {u.endpoint_id for u in found} == expected == {"silent", "silent_old_open", "edge_mailed"}
    async with db.connect() as conn:
        # A shorter window: the 120-day-old open and the 89-day-old send no longer count.
        shorter = await hygiene_repo.unengaged_endpoints(conn, app_id, days=30, now=NOW)
    assert {u.endpoint_id for u in shorter} == {"silent", "silent_old_open"}


async def test_unsubscribe_policy_opts_out_and_withdraws_consent(db: AsyncEngine) -> None:
    app_id = await seed_history(db, NOW, CASES)
    async with db.begin() as conn:
        found = await hygiene_repo.unengaged_endpoints(conn, app_id, days=90, now=NOW)
        assert await hygiene_repo.apply_policy(conn, app_id, found, policy="unsubscribe", days=90) == 3
    async with db.connect() as conn:
        opted_out = {
            r[0]
            for r in await conn.execute(
                text("SELECT id FROM endpoints WHERE app_id = :a AND opt_out = 'ALL'"), {"a": app_id}
            )
        }
        assert opted_out == {"silent", "silent_old_open", "edge_mailed"}
        records = await consent_repo.contact_records(conn, app_id, f"silent-{app_id}@example.com")
        assert [(r["status"], r["source"]) for r in records] == [("withdrawn", "sunset")]
        assert records[0]["reason"] == "unengaged: no open or click in 90 days"
        # Applied endpoints drop out of the selection: a second pass changes nothing.
        assert await hygiene_repo.unengaged_endpoints(conn, app_id, days=90, now=NOW) == []


async def test_segment_policy_marks_endpoints_and_creates_the_segment(db: AsyncEngine) -> None:
    app_id = await seed_history(db, NOW, CASES)
    async with db.begin() as conn:
        found = await hygiene_repo.unengaged_endpoints(conn, app_id, days=90, now=NOW)
        assert await hygiene_repo.apply_policy(conn, app_id, found, policy="segment", days=90) == 3
        assert await hygiene_repo.apply_policy(conn, app_id, [], policy="segment", days=90) == 0
    async with db.connect() as conn:
        marked = {
            r[0]
            for r in await conn.execute(
                text('SELECT id FROM endpoints WHERE app_id = :a AND attributes @> \'{"sunset": ["true"]}\''),
                {"a": app_id},
            )
        }
        segment = (
            await conn.execute(text("SELECT name, definition FROM segments WHERE app_id = :a"), {"a": app_id})
        ).one()
        assert await hygiene_repo.unengaged_endpoints(conn, app_id, days=90, now=NOW) == []
    assert marked == {"silent", "silent_old_open", "edge_mailed"}
    assert segment.name == "sunset"
    assert segment.definition["Dimensions"]["Attributes"]["sunset"]["Values"] == ["true"]
    got = await call(
        AppState(db=db, settings=Settings()), "GetSegment", ApplicationId=app_id, SegmentId="sunset"
    )
    assert (
        got["SegmentResponse"]["Name"] == "sunset" and got["SegmentResponse"]["SegmentType"] == "DIMENSIONAL"
    )


async def test_report_policy_changes_nothing(db: AsyncEngine) -> None:
    app_id = await seed_history(db, NOW, CASES)
    async with db.begin() as conn:
        found = await hygiene_repo.unengaged_endpoints(conn, app_id, days=90, now=NOW)
        assert await hygiene_repo.apply_policy(conn, app_id, found, policy="report", days=90) == 0
        assert len(await hygiene_repo.unengaged_endpoints(conn, app_id, days=90, now=NOW)) == 3
