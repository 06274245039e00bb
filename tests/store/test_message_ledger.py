"""The send path's skip reasons (SKIP_REASON_SQL) and suppressed_addresses, on the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.store import consent_repo, suppression_repo
from sojourn.store.message_ledger import SKIP_REASON_SQL, ListFilter, list_filter_params, suppressed_addresses


@pytest_asyncio.fixture
async def app_id(db: AsyncEngine) -> AsyncIterator[str]:
    app = f"skip{uuid.uuid4().hex[:10]}"
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO apps (id, name) VALUES (:a, 'skip')"), {"a": app})
    yield app
    async with db.begin() as conn:
        await suppression_repo.set_enabled_reasons(conn, suppression_repo.DEFAULT_REASONS)


async def _endpoint(db: AsyncEngine, app_id: str, endpoint_id: str, **fields: Any) -> None:
    row = {
        "channel_type": "EMAIL",
        "address": f"{endpoint_id}-{app_id}@Example.com",
        "opt_out": "NONE",
        **fields,
    }
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, opt_out, cohort_id) "
                "VALUES (:a, :i, :c, :x, :o, 0)"
            ),
            {
                "a": app_id,
                "i": endpoint_id,
                "c": row["channel_type"],
                "x": row["address"],
                "o": row["opt_out"],
            },
        )


async def _reasons(db: AsyncEngine, app_id: str) -> dict[str, str | None]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT e.id, {SKIP_REASON_SQL} AS reason FROM endpoints e WHERE e.app_id = :a"),
            {"a": app_id},
        )
        return {r.id: r.reason for r in rows}


async def test_skip_reasons_for_suppression_opt_out_and_permission(db: AsyncEngine, app_id: str) -> None:
    for name in ("ok", "bounced", "complained", "opted_out", "pending", "expired", "withdrawn", "granted"):
        await _endpoint(db, app_id, name, opt_out="ALL" if name == "opted_out" else "NONE")
    await _endpoint(db, app_id, "sms", channel_type="SMS", address="+12065550100")
    async with db.begin() as conn:
        # Stored lower-case; the endpoint's address has a capital E: matching ignores case.
        await suppression_repo.put(conn, f"bounced-{app_id}@example.com", "BOUNCE")
        await suppression_repo.put(conn, f"COMPLAINED-{app_id}@example.com", "COMPLAINT")
        for status in ("pending", "expired", "withdrawn", "granted"):
            await consent_repo.set_permission(conn, app_id, status, "EMAIL", status)

    assert await _reasons(db, app_id) == {
        "ok": None,
        "bounced": "SUPPRESSED",
        "complained": "SUPPRESSED",
        "opted_out": "ENDPOINT_OPT_OUT",
        "pending": "PENDING_CONFIRMATION",
        "expired": "PENDING_CONFIRMATION",
        "withdrawn": "NO_PERMISSION",
        "granted": None,
        "sms": "ENDPOINT_MISSING_CHANNEL",
    }

    # Only the reasons the account enabled suppress (PutAccountSuppressionAttributes).
    async with db.begin() as conn:
        await suppression_repo.set_enabled_reasons(conn, ["COMPLAINT"])
    reasons = await _reasons(db, app_id)
    assert reasons["bounced"] is None and reasons["complained"] == "SUPPRESSED"

    # RequireConsent: only endpoints with granted consent remain reachable.
    async with db.begin() as conn:
        await consent_repo.require_consent(conn, app_id, True)
    reasons = await _reasons(db, app_id)
    assert reasons["ok"] == "NO_PERMISSION" and reasons["granted"] is None


async def test_suppressed_addresses_for_raw_senders(db: AsyncEngine, app_id: str) -> None:
    bounced, fine = f"b-{app_id}@example.com", f"f-{app_id}@example.com"
    async with db.begin() as conn:
        await suppression_repo.put(conn, bounced, "BOUNCE")
    async with db.connect() as conn:
        assert await suppressed_addresses(conn, [bounced.upper(), fine]) == {bounced.upper()}
        assert await suppressed_addresses(conn, []) == set()
    async with db.begin() as conn:
        await suppression_repo.set_enabled_reasons(conn, [])
    async with db.connect() as conn:
        assert await suppressed_addresses(conn, [bounced]) == set()


def test_list_filter_params_send_each_filter_once_and_a_slot_per_row() -> None:
    weekly = ListFilter("news", "weekly", "OPT_IN", None)
    offers = ListFilter("news", "offers", "OPT_OUT", None)
    params = list_filter_params([weekly, None, offers, weekly, None])
    assert params["l_slot"] == [1, None, 2, 1, None]
    assert params["l_names"] == ["news", "news"]
    assert params["l_topics"] == ["weekly", "offers"]
    assert params["l_defaults"] == ["OPT_IN", "OPT_OUT"]
    assert params["l_problems"] == [None, None]
    assert params["l_unsubscribed"] == [weekly.unsubscribed, offers.unsubscribed]
    assert list_filter_params([None, None])["l_slot"] == [None, None]
