"""The campaign side of the message ledger: idempotent claims, and caps shared with journeys under concurrency."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text, true
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store import campaigns_repo as repo
from sojourn.store import message_ledger
from sojourn.store.message_ledger import SharedCaps
from tests.store.test_shared_caps import ENDPOINTS, seed

NOW = datetime(2027, 5, 1, 12, tzinfo=UTC)
TARGETS = [(f"ep{i}", 0, None) for i in range(1, ENDPOINTS + 1)]


async def claim_campaign(
    db: AsyncEngine, app_id: str, campaign_id: str, caps: repo.CampaignCaps
) -> Counter[str]:
    async with db.begin() as conn:
        outcome = await repo.claim_campaign_emails(
            conn, app_id=app_id, campaign_id=campaign_id, run_key="v1-0", targets=TARGETS, now=NOW, caps=caps
        )
        await asyncio.sleep(0.01)  # hold the locks a moment, as a real send page would
        return Counter(outcome.values())


async def claim_journey(db: AsyncEngine, app_id: str, journey_id: str) -> Counter[str]:
    async with db.begin() as conn:
        outcome = await message_ledger.claim_journey_emails(
            conn,
            app_id=app_id,
            journey_id=journey_id,
            version=1,
            cohort_no=0,
            lane="0",
            activity_id="mail",
            visit="0:0",
            now=NOW,
            shared=SharedCaps(all_daily=1),
        )
        await asyncio.sleep(0.01)
        return outcome


async def test_the_project_daily_cap_holds_across_concurrent_campaigns_and_journeys(db: AsyncEngine) -> None:
    app_id, journeys = await seed(db)
    caps = repo.CampaignCaps(all_daily=1)
    outcomes = await asyncio.gather(
        *(claim_campaign(db, app_id, f"c{i}-{app_id[:6]}", caps) for i in range(4)),
        *(claim_journey(db, app_id, j) for j in journeys[:4]),
    )
    assert sum(outcomes, Counter()) == Counter({"pending": ENDPOINTS, "DAILY_CAP": ENDPOINTS * 7})
    async with db.connect() as conn:
        per_endpoint = Counter(
            dict(
                (
                    await conn.execute(
                        text(
                            "SELECT endpoint_id, count(*) FROM messages WHERE app_id = :a AND status = 'pending' "
                            "GROUP BY endpoint_id"
                        ),
                        {"a": app_id},
                    )
                ).all()
            )
        )
    assert set(per_endpoint.values()) == {1} and len(per_endpoint) == ENDPOINTS


async def test_a_claim_is_idempotent_and_message_ids_are_deterministic(db: AsyncEngine) -> None:
    app_id, _ = await seed(db)
    first = await claim_campaign(db, app_id, "camp", repo.CampaignCaps())
    again = await claim_campaign(db, app_id, "camp", repo.CampaignCaps())
    assert first == Counter({"pending": ENDPOINTS}) and again == Counter()
    message_id = repo.campaign_message_id(app_id, "camp", "v1-0", 0, "ep1")
    assert message_id == repo.campaign_message_id(app_id, "camp", "v1-0", 0, "ep1")
    assert message_id != repo.campaign_message_id(app_id, "camp", "v1-1", 0, "ep1")
    async with db.connect() as conn:
        assert await repo.pending_of(conn, [message_id, "nope"]) == {message_id}


def test_the_cap_sql_reads_only_the_caps_that_are_set() -> None:
    assert repo.campaign_cap_reason_sql(repo.CampaignCaps()) == "NULL"
    daily = repo.campaign_cap_reason_sql(repo.CampaignCaps(daily=1))
    assert "TOTAL_CAP" not in daily and "interval '24 hours'" in daily and ":all_daily" not in daily
    both = repo.campaign_cap_reason_sql(repo.CampaignCaps(daily=1, total=2))
    # One pass over the endpoint's messages of the campaign counts both caps.
    assert both.count("FROM messages") == 1 and "DAILY_CAP" in both and "TOTAL_CAP" in both
    everything = repo.campaign_cap_reason_sql(repo.CampaignCaps(daily=1, total=2, all_daily=3))
    assert everything.count("FROM messages") == 2 and ":all_daily" in everything


async def history(db: AsyncEngine, app_id: str, rows: list[tuple[str, str, str, str | None, int]]) -> None:
    """Earlier ledger rows: (endpoint, campaign, status, status message, hours before NOW)."""
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO messages (message_id, app_id, campaign_id, endpoint_id, channel, status, status_message, "
                "created_at) SELECT md5(random()::text), :a, c, ep, 'EMAIL', s, m, CAST(:now AS timestamptz) - "
                "make_interval(hours => h) FROM unnest(CAST(:eps AS text[]), CAST(:cs AS text[]), "
                "CAST(:ss AS text[]), CAST(:ms AS text[]), CAST(:hs AS int[])) AS r(ep, c, s, m, h)"
            ),
            {
                "a": app_id,
                "now": NOW,
                "eps": [r[0] for r in rows],
                "cs": [r[1] for r in rows],
                "ss": [r[2] for r in rows],
                "ms": [r[3] for r in rows],
                "hs": [r[4] for r in rows],
            },
        )


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        # ep1: 1 sent today; ep2: 2 older sent + 1 quiet-time drop; ep3: 1 failed today; ep4: another campaign
        # today; ep5: nothing.
        (repo.CampaignCaps(daily=1), {"ep1": "DAILY_CAP"}),
        (repo.CampaignCaps(total=3), {"ep2": "TOTAL_CAP"}),
        (repo.CampaignCaps(total=1), {"ep1": "TOTAL_CAP", "ep2": "TOTAL_CAP", "ep3": "TOTAL_CAP"}),
        # Daily goes first; a failed message counts for Total only.
        (repo.CampaignCaps(daily=1, total=1), {"ep1": "DAILY_CAP", "ep2": "TOTAL_CAP", "ep3": "TOTAL_CAP"}),
        (repo.CampaignCaps(daily=2, total=5), {}),
        # The project's Daily counts every campaign's messages, after the campaign's own caps.
        (repo.CampaignCaps(all_daily=1), {"ep1": "DAILY_CAP", "ep4": "DAILY_CAP"}),
        (
            repo.CampaignCaps(daily=1, total=3, all_daily=1),
            {"ep1": "DAILY_CAP", "ep2": "TOTAL_CAP", "ep4": "DAILY_CAP"},
        ),
    ],
)
async def test_campaign_caps_count_what_pinpoint_counts_in_order(
    db: AsyncEngine, caps: repo.CampaignCaps, expected: dict[str, str]
) -> None:
    app_id, _ = await seed(db)
    await history(
        db,
        app_id,
        [
            ("ep1", "camp", "sent", None, 2),
            ("ep2", "camp", "sent", None, 48),
            ("ep2", "camp", "sent", None, 72),
            ("ep2", "camp", "skipped", "QUIET_TIME", 1),
            ("ep3", "camp", "failed", "PERMANENT_FAILURE: no", 1),
            ("ep4", "other", "sent", None, 1),
        ],
    )
    targets = [(f"ep{i}", 0, None) for i in range(1, 6)]
    async with db.begin() as conn:
        claimed = await repo.claim_campaign_emails(
            conn, app_id=app_id, campaign_id="camp", run_key="v2-0", targets=targets, now=NOW, caps=caps
        )
    by_endpoint = {
        ep: claimed[repo.campaign_message_id(app_id, "camp", "v2-0", 0, ep)] for ep, _, _ in targets
    }
    assert by_endpoint == {f"ep{i}": expected.get(f"ep{i}", "pending") for i in range(1, 6)}


async def test_a_page_with_a_missing_endpoint_is_claimed_whole(db: AsyncEngine) -> None:
    app_id, _ = await seed(db)
    targets = [("ep1", 0, None), ("gone", 0, None), ("ep2", 1, "QUIET_TIME")]
    async with db.begin() as conn:
        claimed = await repo.claim_campaign_emails(
            conn, app_id=app_id, campaign_id="camp", run_key="v1-0", targets=targets, now=NOW,
            caps=repo.CampaignCaps(daily=1, total=1),
        )  # fmt: skip
    assert sorted(claimed.values()) == ["ENDPOINT_MISSING", "QUIET_TIME", "pending"]


async def test_awkward_endpoint_ids_survive_the_claim_and_mark_sent(db: AsyncEngine) -> None:
    # The claim and mark_sent take their lists as JSON text: quotes, commas, braces and non-ASCII ids must
    # come back as the same rows.
    app_id, _ = await seed(db)
    odd = ["a,b", 'q"uote', "back\\slash", "{brace}", "名前", "line\nbreak", "NULL"]
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, opt_out, cohort_id) "
                "SELECT :a, i, 'EMAIL', 'odd' || n || '@example.com', 'NONE', 0 "
                "FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS x(i, n)"
            ),
            {"a": app_id, "ids": odd},
        )
        claimed = await repo.claim_campaign_emails(
            conn, app_id=app_id, campaign_id="odd", run_key="v1-0", targets=[(i, 0, None) for i in odd],
            now=NOW, caps=repo.CampaignCaps(daily=1),
        )  # fmt: skip
    ids = {repo.campaign_message_id(app_id, "odd", "v1-0", 0, i): i for i in odd}
    assert claimed == dict.fromkeys(ids, "pending")
    async with db.begin() as conn:
        assert await message_ledger.mark_sent(conn, list(ids)) == len(odd)
        rows = await conn.execute(
            text("SELECT endpoint_id, status FROM messages WHERE campaign_id = 'odd' AND app_id = :a"),
            {"a": app_id},
        )
        assert sorted(rows) == sorted((i, "sent") for i in odd)


async def test_audience_rows_carry_every_column_with_empty_objects_as_dicts(db: AsyncEngine) -> None:
    app_id, _ = await seed(db)
    async with db.begin() as conn:
        await conn.execute(
            text(
                'UPDATE endpoints SET demographic = \'{"Timezone": "Europe/Paris"}\', '
                "attributes = '{\"plan\": [\"pro\"]}' WHERE app_id = :a AND id = 'ep1'"
            ),
            {"a": app_id},
        )
    async with db.connect() as conn:
        page = await repo.audience_page(conn, app_id, true(), after=None, limit=2)
        whole = [
            dict(r._mapping)
            for r in await conn.execute(
                text("SELECT * FROM endpoints WHERE app_id = :a ORDER BY id LIMIT 2"), {"a": app_id}
            )
        ]
        among = await repo.members_among(conn, app_id, true(), ["ep1"])
    assert page == whole and among == whole[:1]
    assert page[0]["demographic"] == {"Timezone": "Europe/Paris"} and page[1]["demographic"] == {}
    # Each row has dicts of its own (a caller may change one without changing another's).
    assert page[1]["metrics"] is not page[2 - 1]["location"]


class _Explain:
    """Runs the claim's INSERT under EXPLAIN (plans only) before running it, keeping the plan."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.plans = conn, []

    async def execute(self, statement: Any, params: Any = None) -> Any:
        if str(statement).lstrip().startswith("INSERT"):
            rows = await self.conn.execute(text(f"EXPLAIN {statement}"), params)
            self.plans.append("\n".join(r[0] for r in rows))
        return await self.conn.execute(statement, params)


async def test_the_claim_probes_per_target_even_for_a_campaign_the_statistics_do_not_know(
    db: AsyncEngine,
) -> None:
    app_id, _ = await seed(db)
    # A ledger full of another campaign's messages, analyzed: the new campaign's id is in no statistics.
    await history(db, app_id, [(f"ep{i % ENDPOINTS + 1}", "old", "sent", None, 30) for i in range(3000)])
    async with db.begin() as conn:
        await conn.execute(text("ANALYZE messages"))
    async with db.begin() as conn:
        explain = _Explain(conn)
        await repo.claim_campaign_emails(
            explain, app_id=app_id, campaign_id="new", run_key="v1-0", targets=TARGETS, now=NOW,  # type: ignore[arg-type]
            caps=repo.CampaignCaps(daily=1, total=2, all_daily=3),
        )  # fmt: skip
    (plan,) = explain.plans
    # Caps count through the endpoint's own messages, never by reading the campaign's run so far per target.
    assert "ix_messages_campaign" not in plan and "ix_messages_endpoint_time" in plan
    assert "Hash Join" not in plan and "Seq Scan on endpoints" not in plan


async def test_the_parts_of_a_run_split_the_audience_by_cohort_id(db: AsyncEngine) -> None:
    app_id, _ = await seed(db)
    async with db.begin() as conn:
        # CohortId is 0-99 when sojourn writes it; rows outside that range still land in exactly one part.
        await conn.execute(
            text("UPDATE endpoints SET cohort_id = CASE id WHEN 'ep1' THEN 137 ELSE -3 END WHERE app_id = :a AND id IN ('ep1', 'ep2')"),
            {"a": app_id},
        )  # fmt: skip
    async with db.connect() as conn:
        everyone = await repo.audience_page(conn, app_id, true(), after=None, limit=1000)
        parts = [
            await repo.audience_page(conn, app_id, true(), after=None, limit=1000, part=(i, 3))
            for i in range(3)
        ]
    cohorts = {row["id"]: row["cohort_id"] for row in everyone}
    for i, rows in enumerate(parts):
        # PostgreSQL's % truncates like math.fmod: -3 % 3 is 0, 137 % 3 is 2.
        assert {row["id"] for row in rows} == {ep for ep, c in cohorts.items() if math.fmod(c, 3) == i}
    assert sorted(row["id"] for rows in parts for row in rows) == sorted(cohorts)
