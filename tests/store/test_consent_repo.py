"""The consent ledger: records, the OptOut trigger, exports and erasure, on the real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.state import AppState
from sojourn.settings import Settings
from sojourn.store import consent_repo
from tests.support.seed import call, call_sesv2


async def _app(state: AppState) -> str:
    app = await call(state, "CreateApp", CreateApplicationRequest={"Name": "consent"})
    return str(app["ApplicationResponse"]["Id"])


async def test_every_opt_out_change_through_the_api_is_in_the_ledger(db: AsyncEngine) -> None:
    state = AppState(db=db, settings=Settings())
    app_id = await _app(state)
    address = f"{uuid.uuid4().hex[:8]}@Example.com"
    await call(
        state,
        "UpdateEndpoint",
        ApplicationId=app_id,
        EndpointId="ep",
        EndpointRequest={"ChannelType": "EMAIL", "Address": address},
    )
    for opt_out in ("ALL", "ALL", "NONE"):
        await call(
            state,
            "UpdateEndpoint",
            ApplicationId=app_id,
            EndpointId="ep",
            EndpointRequest={"OptOut": opt_out},
        )
    # Created opted out: recorded too.
    await call(
        state,
        "UpdateEndpointsBatch",
        ApplicationId=app_id,
        EndpointBatchRequest={
            "Item": [{"Id": "ep2", "ChannelType": "EMAIL", "Address": "x@y.io", "OptOut": "ALL"}]
        },
    )
    async with db.connect() as conn:
        records = await consent_repo.contact_records(conn, app_id, address)
        other = await consent_repo.contact_records(conn, app_id, "x@y.io")
    assert [(r["status"], r["source"], r["method"], r["channel"]) for r in records] == [
        ("withdrawn", "api", None, "EMAIL"),
        ("granted", "api", "single_opt_in", "EMAIL"),
    ]
    assert records[0]["address"] == address.lower() and records[0]["reason"] == "OptOut set to ALL"
    assert [r["status"] for r in other] == ["withdrawn"]
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, app_id, "ep", "EMAIL") == "granted"
        assert await consent_repo.permission(conn, app_id, "ep2", "EMAIL") == "withdrawn"


async def test_record_sets_permission_and_exports(db: AsyncEngine) -> None:
    state = AppState(db=db, settings=Settings())
    app_id = await _app(state)
    async with db.begin() as conn:
        await consent_repo.record(
            conn,
            consent_repo.ConsentEvent(
                app_id=app_id,
                endpoint_id="e1",
                address="Ana@Example.com",
                channel="EMAIL",
                status="granted",
                source="import",
                method="single_opt_in",
                consent_text='Tips, "weekly"',
            ),
        )
        assert await consent_repo.permission(conn, app_id, "e1", "EMAIL") == "granted"
        records = await consent_repo.contact_records(conn, app_id, "ana@example.com")
    rows = list(csv.DictReader(io.StringIO(consent_repo.export_csv(records))))
    assert rows[0]["consent_text"] == 'Tips, "weekly"' and rows[0]["source"] == "import"
    assert json.loads(consent_repo.export_json(records))[0]["address"] == "ana@example.com"


def test_consent_event_checks() -> None:
    with pytest.raises(ValueError, match="status 'maybe'"):
        consent_repo.ConsentEvent(app_id="a", channel="EMAIL", status="maybe", source="api", address="a@b.c")
    with pytest.raises(ValueError, match="source 'fax'"):
        consent_repo.ConsentEvent(
            app_id="a", channel="EMAIL", status="granted", source="fax", address="a@b.c"
        )
    with pytest.raises(ValueError, match="endpoint id or an address"):
        consent_repo.ConsentEvent(app_id="a", channel="EMAIL", status="granted", source="api")


async def test_erasure_keeps_no_address(db: AsyncEngine) -> None:
    state = AppState(db=db, settings=Settings())
    app_id = await _app(state)
    address = f"{uuid.uuid4().hex[:8]}@example.com"
    await call(
        state,
        "UpdateEndpoint",
        ApplicationId=app_id,
        EndpointId="ep",
        EndpointRequest={"ChannelType": "EMAIL", "Address": address, "OptOut": "ALL"},
    )
    list_name = f"erase-{uuid.uuid4().hex[:8]}"
    await call_sesv2(state, "CreateContactList", ContactListName=list_name)
    await call_sesv2(
        state, "CreateContact", ContactListName=list_name, EmailAddress=address, UnsubscribeAll=True
    )
    async with db.begin() as conn:
        counts = await consent_repo.erase_contact(conn, app_id, address)
    # Consent rows: the OptOut, and the withdrawal the list's unsubscribe-all wrote.
    assert counts["endpoints"] == 1 and counts["consent"] == 2
    assert counts["contacts"] == 1 and counts["subscription_events"] == 1
    async with db.connect() as conn:
        suppressed = await conn.scalar(
            text("SELECT reason FROM suppressed_destinations WHERE email_address = :x"), {"x": address}
        )
    assert suppressed == "UNSUBSCRIBE", "the suppression entry outlives the erased contact"
    async with db.connect() as conn:
        markers = (
            await conn.execute(text("SELECT * FROM consent_erasures WHERE app_id = :a"), {"a": app_id})
        ).all()
    assert (
        len(markers) == 1
        and address not in str(markers[0])
        and markers[0].address_sha256 == consent_repo.address_hash(address.upper())
    )


def test_parse_import_checks_rows_and_orders_oldest_first() -> None:
    events = consent_repo.parse_import(
        [
            {"address": "a@x.io", "status": "withdrawn", "recorded_at": "2025-02-01T00:00:00Z"},
            {
                "address": "a@x.io",
                "status": "granted",
                "recorded_at": "2024-01-01T00:00:00+00:00",
                "method": "double_opt_in",
            },
        ],
        "app",
    )
    assert [(e.status, e.source, e.channel) for e, _ in events] == [
        ("granted", "import", "EMAIL"),
        ("withdrawn", "import", "EMAIL"),
    ]
    for row, message in (
        ({"address": "nobody", "status": "granted"}, "row 1: address"),
        ({"address": "a@x.io", "status": "pending"}, "row 1: status 'pending' must be granted or withdrawn"),
        ({"address": "a@x.io", "status": "granted", "recorded_at": "2024-01-01"}, "needs a time zone"),
        ({"address": "a@x.io", "status": "granted", "method": "fax"}, "row 1: consent method 'fax'"),
        ({"address": "2065550100", "status": "granted", "channel": "sms"}, "row 1: address .* E.164"),
        ({"address": "+12065550100", "status": "granted", "channel": "PUSH"}, "row 1: channel 'PUSH'"),
    ):
        with pytest.raises(ValueError, match=message):
            consent_repo.parse_import([row], "app")


async def test_imported_sms_consent_sets_the_sms_endpoints_permission(db: AsyncEngine) -> None:
    state = AppState(db=db, settings=Settings())
    app_id = await _app(state)
    number = "+1206" + str(uuid.uuid4().int)[:7]
    # The same address on an EMAIL-less CUSTOM endpoint must not take the SMS permission.
    for endpoint_id, channel in (("custom", "CUSTOM"), ("phone", "SMS")):
        await call(
            state,
            "UpdateEndpoint",
            ApplicationId=app_id,
            EndpointId=endpoint_id,
            EndpointRequest={"ChannelType": channel, "Address": number},
        )
    events = consent_repo.parse_import(
        [{"address": number, "status": "withdrawn", "channel": "sms", "recorded_at": "2030-01-01T00:00:00Z"}],
        app_id,
    )
    async with db.begin() as conn:
        assert await consent_repo.import_records(conn, events) == 1
    async with db.connect() as conn:
        assert await consent_repo.permission(conn, app_id, "phone", "SMS") == "withdrawn"
        assert await consent_repo.permission(conn, app_id, "custom", "SMS") is None
