"""ListContacts over a large contact list: milliseconds per page, with and without filters.

    python bench/list_contacts.py --contacts 1000000

Starts its own embedded PostgreSQL in a temporary directory, creates a list with two topics through the
CreateContactList handler, bulk-inserts N contacts with SQL (seeding is not what is measured) and then pages
through the list with the ListContacts handler (in process: handler + SQL, no HTTP), from the start and from
the middle of the list, for each filter. Contact mix: 1% unsubscribed from all, 10% opted out of "weekly"
(default OPT_IN), 5% opted in to "offers" (default OPT_OUT). The last line is machine-readable:

    contacts=<n> page_size=<n> <filter>_ms_per_page=<float> ...
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from sojourn.api.handlers import HANDLERS
from sojourn.api.server import RequestContext
from sojourn.api.state import AppState
from sojourn.domain.lists import encode_page_token
from sojourn.settings import Settings
from sojourn.stack import EmbeddedPostgres, port_is_free
from sojourn.store.db import create_engine
from sojourn.store.migrate import upgrade_async

LIST = "bench"
FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "unsubscribed_all": {"FilteredStatus": "OPT_OUT"},
    "weekly_in_with_default": {
        "FilteredStatus": "OPT_IN",
        "TopicFilter": {"TopicName": "weekly", "UseDefaultIfPreferenceUnavailable": True},
    },
    "offers_in_explicit": {
        "FilteredStatus": "OPT_IN",
        "TopicFilter": {"TopicName": "offers", "UseDefaultIfPreferenceUnavailable": False},
    },
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert port_is_free(port)
    return port


async def call(state: AppState, operation: str, **params: Any) -> dict[str, Any]:
    ctx = RequestContext(request_id=uuid.uuid4().hex, operation=operation, service="sesv2", state=state)
    return await HANDLERS[f"sesv2:{operation}"](ctx, params)


async def seed(state: AppState, n: int) -> None:
    await call(
        state,
        "CreateContactList",
        ContactListName=LIST,
        Topics=[
            {"TopicName": "weekly", "DisplayName": "Weekly", "DefaultSubscriptionStatus": "OPT_IN"},
            {"TopicName": "offers", "DisplayName": "Offers", "DefaultSubscriptionStatus": "OPT_OUT"},
        ],
    )
    async with state.db.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO contacts (list_name, email_address, topic_preferences, unsubscribe_all)
                SELECT :l, 'c' || lpad(i::text, 8, '0') || '@example.com',
                       CASE WHEN i % 10 = 1 THEN '{"weekly": "OPT_OUT"}'::jsonb
                            WHEN i % 20 = 2 THEN '{"offers": "OPT_IN"}'::jsonb
                            ELSE '{}'::jsonb END,
                       i % 100 = 0
                FROM generate_series(1, :n) AS i
                """
            ),
            {"l": LIST, "n": n},
        )
    async with state.db.connect() as conn:
        # What autovacuum does soon after a bulk load: statistics, hint bits and the visibility map (without
        # it, the first pages to touch the fresh rows pay for setting their hint bits: 0.2-0.5 s pages).
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE contacts"))


async def walk(
    state: AppState, flt: dict[str, Any] | None, start: str | None, pages: int, size: int
) -> list[float]:
    """Milliseconds of each of ``pages`` consecutive pages from ``start``."""
    timings: list[float] = []
    token = encode_page_token(start) if start else None
    for _ in range(pages):
        params: dict[str, Any] = {"ContactListName": LIST, "PageSize": size}
        if flt:
            params["Filter"] = flt
        if token:
            params["NextToken"] = token
        began = time.perf_counter()
        out = await call(state, "ListContacts", **params)
        timings.append((time.perf_counter() - began) * 1000)
        token = out.get("NextToken")
        if not token:
            break
    return timings


async def main(contacts: int, pages: int, size: int) -> str:
    with tempfile.TemporaryDirectory(prefix="sojourn-bench-lists-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", port=free_port())
        pg.start()
        try:
            pg.ensure_database("sojourn")
            settings = Settings(database_url=pg.url("sojourn"), smtp_url="null://")
            await upgrade_async(settings.database_url or "")
            state = AppState(db=create_engine(settings.database_url or "", pool_size=2), settings=settings)
            print(f"seeding {contacts} contacts...", flush=True)
            began = time.perf_counter()
            await seed(state, contacts)
            print(f"seeded in {time.perf_counter() - began:.1f} s", flush=True)
            middle = f"c{contacts // 2:08d}@example.com"
            results: dict[str, float] = {}
            for name, flt in FILTERS.items():
                await walk(state, flt, None, 3, size)  # warm the cache and the statement path
                head = await walk(state, flt, None, pages, size)
                deep = await walk(state, flt, middle, pages, size)
                median = statistics.median(head + deep)
                results[name] = median
                print(
                    f"{name:24s} median {median:7.2f} ms/page  (start: p50 {statistics.median(head):.2f}, "
                    f"middle: p50 {statistics.median(deep):.2f}, max {max(head + deep):.2f}; {len(head + deep)} pages)",
                    flush=True,
                )
            await state.db.dispose()
        finally:
            pg.stop()
    fields = " ".join(f"{name}_ms_per_page={ms:.2f}" for name, ms in results.items())
    return f"contacts={contacts} page_size={size} {fields}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument(
        "--pages", type=int, default=50, help="pages walked from the start and from the middle"
    )
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    print(asyncio.run(main(args.contacts, args.pages, args.page_size)))
    sys.exit(0)
