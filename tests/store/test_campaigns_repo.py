"""The campaign side of the message ledger: idempotent claims, and caps shared with journeys under concurrency."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import text
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
