"""``sojourn consent`` and ``sojourn hygiene``, run as a user would, against the real PostgreSQL and Temporal."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from sojourn.engine.sunset_workflow import sunset_workflow_id
from sojourn.store import consent_repo, suppression_repo
from tests.support.hygiene import History, seed_history


def sojourn(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sojourn", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SOJOURN_DATABASE_URL": database_url, "SOJOURN_LOG_LEVEL": "WARNING", **env},
    )


async def _contact(db: AsyncEngine) -> tuple[str, str]:
    app_id, address = f"cli{uuid.uuid4().hex[:10]}", f"{uuid.uuid4().hex[:10]}@example.com"
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO apps (id, name) VALUES (:a, 'cli')"), {"a": app_id})
        await conn.execute(
            text(
                "INSERT INTO endpoints (app_id, id, channel_type, address, cohort_id) VALUES (:a, 'ep', 'EMAIL', :x, 0)"
            ),
            {"a": app_id, "x": address},
        )
        await conn.execute(
            text(
                "INSERT INTO events (app_id, endpoint_id, event_id, event_type, occurred_at) "
                "VALUES (:a, 'ep', 'e1', '_email.open', now())"
            ),
            {"a": app_id},
        )
        await conn.execute(
            text(
                "INSERT INTO messages (message_id, app_id, endpoint_id, channel, address, status) "
                "VALUES (:m, :a, 'ep', 'EMAIL', :x, 'sent')"
            ),
            {"m": uuid.uuid4().hex, "a": app_id, "x": address},
        )
        for status, method in (("pending", "double_opt_in"), ("granted", "double_opt_in")):
            await consent_repo.record(
                conn,
                consent_repo.ConsentEvent(
                    app_id=app_id,
                    endpoint_id="ep",
                    address=address,
                    channel="EMAIL",
                    status=status,
                    source="form" if status == "pending" else "confirmation",
                    method=method,
                    ip="192.0.2.7",
                    user_agent="ua",
                    consent_text="News, monthly",
                ),
            )
        await suppression_repo.put(conn, address, "COMPLAINT")
    return app_id, address


async def test_consent_export_and_erase(database_url: str, db: AsyncEngine) -> None:
    app_id, address = await _contact(db)

    out = sojourn(database_url, "consent", "export", "--app", app_id, "--address", address.upper())
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["status"], r["method"], r["ip"], r["consent_text"]) for r in rows] == [
        ("pending", "double_opt_in", "192.0.2.7", "News, monthly"),
        ("granted", "double_opt_in", "192.0.2.7", "News, monthly"),
    ]
    as_json = json.loads(
        sojourn(
            database_url, "consent", "export", "--app", app_id, "--address", address, "--format", "json"
        ).stdout
    )
    assert [r["status"] for r in as_json] == ["pending", "granted"] and as_json[0]["recorded_at"]

    dry = sojourn(database_url, "consent", "erase", "--app", app_id, "--address", address)
    assert dry.returncode == 0 and "dry run, nothing erased" in dry.stdout and "1 endpoints" in dry.stdout
    async with db.connect() as conn:
        assert await consent_repo.endpoint_ids_for_address(conn, app_id, address) == ["ep"]

    done = sojourn(database_url, "consent", "erase", "--app", app_id, "--address", address, "--yes")
    assert done.returncode == 0 and "erased: 2 consent" in done.stdout, done.stdout + done.stderr
    async with db.connect() as conn:
        assert await consent_repo.endpoint_ids_for_address(conn, app_id, address) == []
        assert await consent_repo.contact_records(conn, app_id, address) == []
        assert await conn.scalar(text("SELECT count(*) FROM events WHERE app_id = :a"), {"a": app_id}) == 0
        assert (
            await conn.scalar(
                text("SELECT count(*) FROM messages WHERE app_id = :a AND address IS NULL"), {"a": app_id}
            )
            == 1
        )
        marker = (
            await conn.execute(
                text("SELECT address_sha256, counts FROM consent_erasures WHERE app_id = :a"), {"a": app_id}
            )
        ).one()
        entry = await suppression_repo.get(conn, address)
    assert marker.address_sha256 == consent_repo.address_hash(address) and address not in json.dumps(
        marker.counts
    )
    assert entry is not None and entry.reason == "COMPLAINT"

    missing = sojourn(database_url, "consent", "export", "--app", "nope", "--address", address)
    assert missing.returncode == 2 and "application nope not found" in missing.stderr


async def test_consent_import(database_url: str, db: AsyncEngine, tmp_path: Path) -> None:
    app_id, address = await _contact(db)
    good = tmp_path / "consent.csv"
    good.write_text(
        "address,status,recorded_at,method,consent_text\n"
        f"{address},granted,2024-01-01T00:00:00Z,single_opt_in,Old newsletter\n"
        f"{address},withdrawn,2024-06-01T00:00:00Z,,\n"
    )
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"address": address, "status": "granted"}, {"address": address, "status": "maybe"}])
    )
    refused = sojourn(database_url, "consent", "import", "--app", app_id, str(bad))
    assert (
        refused.returncode == 2
        and "row 2: status 'maybe'" in refused.stderr
        and "nothing imported" in refused.stderr
    )
    done = sojourn(database_url, "consent", "import", "--app", app_id, str(good))
    assert done.returncode == 0 and "imported 2 consent records" in done.stdout, done.stderr
    async with db.connect() as conn:
        records = await consent_repo.contact_records(conn, app_id, address)
        imported = [r for r in records if r["source"] == "import"]
        assert [(r["status"], r["endpoint_id"]) for r in imported] == [("granted", "ep"), ("withdrawn", "ep")]
        # The imported rows are older than the contact's own confirmation: the permission stays granted.
        assert await consent_repo.permission(conn, app_id, "ep", "EMAIL") == "granted"
    fresh = tmp_path / "fresh.json"
    fresh.write_text(
        json.dumps([{"address": address, "status": "withdrawn", "recorded_at": "2099-01-01T00:00:00Z"}])
    )
    assert sojourn(database_url, "consent", "import", "--app", app_id, str(fresh)).returncode == 0
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, app_id, "ep", "EMAIL") == "withdrawn"


async def test_hygiene_report_and_enable(
    database_url: str, db: AsyncEngine, dev_env: WorkflowEnvironment
) -> None:
    app_id = await seed_history(
        db, datetime.now(UTC), {"silent": History(200, 10, None), "engaged": History(200, 10, 3)}
    )
    report = sojourn(database_url, "hygiene", "report", "--app", app_id, "--days", "90")
    assert report.returncode == 0, report.stderr
    assert f"application {app_id}: 1 unengaged endpoints" in report.stdout
    assert "  silent  silent-" in report.stdout and "stored policy: none" in report.stdout
    bad = sojourn(database_url, "hygiene", "report", "--app", app_id, "--days", "10")
    assert bad.returncode == 2 and "between 30 and 365" in bad.stderr

    task_queue = f"tq-{uuid.uuid4().hex}"
    target = dev_env.client.service_client.config.target_host
    enabled = sojourn(
        database_url,
        "hygiene", "enable", "--app", app_id, "--days", "60", "--policy", "segment",
        SOJOURN_TEMPORAL_ADDRESS=target,
        SOJOURN_TASK_QUEUE=task_queue,
    )  # fmt: skip
    assert enabled.returncode == 0, enabled.stderr
    assert (
        "1 unengaged endpoints" in enabled.stdout
        and f"workflow sunset/{app_id} runs it daily" in enabled.stdout
    )
    handle = dev_env.client.get_workflow_handle(sunset_workflow_id(app_id))
    try:
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        # Dry run again: the stored policy shows; nothing was changed yet (no worker on that queue).
        again = sojourn(database_url, "hygiene", "report", "--app", app_id, "--days", "60")
        assert "stored policy: segment, 60 days, enabled" in again.stdout and "1 unengaged" in again.stdout
        disabled = sojourn(database_url, "hygiene", "disable", "--app", app_id)
        assert disabled.returncode == 0 and "disabled" in disabled.stdout
    finally:
        await handle.terminate("test over")


async def test_consent_subscriptions_prints_a_lists_subscription_events(
    database_url: str, db: AsyncEngine
) -> None:
    from sojourn.domain.lists import topics_from_json
    from sojourn.domain.subscription_events import ONE_CLICK, ContactSubscription
    from sojourn.store import lists_repo, subscription_repo

    name, address = f"cli-{uuid.uuid4().hex[:8]}", f"{uuid.uuid4().hex[:10]}@example.com"
    async with db.begin() as conn:
        await conn.execute(
            text("INSERT INTO contact_lists (name, topics) VALUES (:n, CAST(:t AS jsonb))"),
            {
                "n": name,
                "t": json.dumps(
                    [{"TopicName": "weekly", "DisplayName": "Weekly", "DefaultSubscriptionStatus": "OPT_IN"}]
                ),
            },
        )
        row = await lists_repo.get_list(conn, name)
        before = await subscription_repo.current(conn, name, address)
        await lists_repo.unsubscribe(conn, name, address, "weekly")
        await subscription_repo.record_change(
            conn,
            list_name=name,
            email=address,
            source=ONE_CLICK,
            old=before,
            topics=topics_from_json(row.topics),
        )
    assert before == ContactSubscription()

    result = sojourn(database_url, "consent", "subscriptions", "--list", name, "--address", address.upper())
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    event = json.loads(line)
    assert event["eventType"] == "Subscription" and event["emailAddress"] == address
    assert event["subscription"]["source"] == "UnsubscribeFromOneClick"
    assert event["subscription"]["newTopicPreferences"]["topicSubscriptionStatus"] == [
        {"topicName": "weekly", "subscriptionStatus": "OptOut"}
    ]
    later = sojourn(
        database_url, "consent", "subscriptions", "--list", name, "--since", "2999-01-01T00:00:00Z"
    )
    assert later.returncode == 0 and later.stdout == ""
    bad = sojourn(database_url, "consent", "subscriptions", "--list", name, "--since", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
