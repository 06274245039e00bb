"""Endpoints in Postgres: the row <-> EndpointResponse mapping and the one set-based upsert every writer uses.

UpdateEndpoint, UpdateEndpointsBatch and the ``Endpoint`` blocks of PutEvents all go through
:func:`upsert_endpoints`, so Pinpoint's endpoint rules live in one place:

- a partial body changes only the fields it names; an attribute given with an empty list is removed;
- every update sets ``EndpointStatus`` ACTIVE unless the body says otherwise, and an ACTIVE endpoint with an
  ``Address`` makes every other endpoint of the app with that address INACTIVE;
- endpoints that share a ``UserId`` form a user whose ``UserAttributes`` are kept the same on all of them;
- at most 15 endpoints per user, at most 250 attribute keys per app, and the attribute size limits of the
  Pinpoint quotas.

The upsert costs a fixed number of statements whatever the batch size.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.api.errors import BadRequestError
from sojourn.domain.journeys import parse_instant
from sojourn.store.direct_ledger import opted_out_addresses
from sojourn.store.tables import endpoints

CHANNEL_TYPES = frozenset(
    {"PUSH", "GCM", "APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "ADM", "SMS", "VOICE", "EMAIL",
     "BAIDU", "CUSTOM", "IN_APP"}
)  # fmt: skip
# A user over the limit loses its oldest endpoint of these types instead of the request failing.
PUSH_CHANNEL_TYPES = frozenset(
    {"GCM", "APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "ADM", "BAIDU"}
)
ENDPOINT_STATUSES = ("ACTIVE", "INACTIVE")
OPT_OUT_VALUES = ("ALL", "NONE")

MAX_NAME = 50
MAX_VALUE = 100
MAX_VALUES = 50
MAX_ENDPOINTS_PER_USER = 15
MAX_KEYS_PER_APP = 250
MAX_ENDPOINT_BYTES = 15 * 1024
MAX_BATCH = 100

# Where the app's known attribute keys are kept (apps.settings), to enforce MAX_KEYS_PER_APP without a scan.
KEY_REGISTRY = "endpoint_attribute_keys"

_MAP_FIELDS = {"Attributes": "attributes", "Metrics": "metrics"}
_OBJECT_FIELDS = {"Demographic": "demographic", "Location": "location"}
_SCALAR_FIELDS = {"ChannelType": "channel_type", "Address": "address", "OptOut": "opt_out"}


def iso_timestamp(value: datetime) -> str:
    """A timestamp as Pinpoint writes them: ISO-8601 in UTC with milliseconds, e.g. ``2026-01-02T03:04:05.000Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def endpoint_response(row: Mapping[Any, Any], names: Container[str] | None = None) -> dict[str, Any]:
    """A row of ``endpoints`` as Pinpoint's EndpointResponse; empty maps and unset fields are left out.

    Args:
        row: The row's columns by name (a SQLAlchemy ``RowMapping`` or a plain dict; extra keys are ignored).
        names: Only these top-level fields (a message whose template reads a few of them: see
            :func:`sojourn.domain.templates.root_names`); None for all of them.

    Returns:
        The EndpointResponse dict (``CohortId`` as a string, dates as ISO-8601 strings).
    """
    if names is None:
        names = _ALL_FIELDS
    response: dict[str, Any] = {}
    for name, column in _SCALAR_RESPONSE_FIELDS:
        if name in names:
            response[name] = row[column]
    if "CohortId" in names:
        response["CohortId"] = str(row["cohort_id"])
    for name, column in _DATE_FIELDS:
        if name in names:
            response[name] = iso_timestamp(row[column])
    for name, column in _OPTIONAL_FIELDS:
        if name in names and row.get(column) is not None:
            response[name] = row[column]
    for name, column in _MAP_AND_OBJECT_FIELDS:
        if name in names and row.get(column):
            response[name] = row[column]
    if "User" in names:
        user: dict[str, Any] = {}
        if row.get("user_id") is not None:
            user["UserId"] = row["user_id"]
        if row.get("user_attributes"):
            user["UserAttributes"] = row["user_attributes"]
        if user:
            response["User"] = user
    return response


_SCALAR_RESPONSE_FIELDS = (
    ("Id", "id"),
    ("ApplicationId", "app_id"),
    ("EndpointStatus", "endpoint_status"),
    ("OptOut", "opt_out"),
)
_DATE_FIELDS = (("CreationDate", "creation_date"), ("EffectiveDate", "effective_date"))
_OPTIONAL_FIELDS = (("ChannelType", "channel_type"), ("Address", "address"), ("RequestId", "request_id"))
_MAP_AND_OBJECT_FIELDS = (*_MAP_FIELDS.items(), *_OBJECT_FIELDS.items())
_ALL_FIELDS = frozenset(
    [
        *(name for name, _ in (*_SCALAR_RESPONSE_FIELDS, *_DATE_FIELDS, *_OPTIONAL_FIELDS)),
        *(name for name, _ in _MAP_AND_OBJECT_FIELDS),
        "CohortId",
        "User",
    ]
)


# ---- validation ----


def _check_attribute_map(where: str, values: Mapping[str, Any]) -> None:
    for name, items in values.items():
        if not name or len(name) > MAX_NAME:
            raise BadRequestError(f"{where}: attribute name {name!r} must be 1-{MAX_NAME} characters")
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise BadRequestError(f'{where}.{name}: the value must be a list of strings, e.g. ["gold"]')
        if len(items) > MAX_VALUES:
            raise BadRequestError(
                f"{where}.{name}: {len(items)} values; an attribute has at most {MAX_VALUES}"
            )
        for value in items:
            if len(value) > MAX_VALUE:
                raise BadRequestError(
                    f"{where}.{name}: value {value[:20]!r}... is {len(value)} characters; at most {MAX_VALUE} are allowed"
                )


def _check_metrics(where: str, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        if not name or len(name) > MAX_NAME:
            raise BadRequestError(f"{where}: metric name {name!r} must be 1-{MAX_NAME} characters")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BadRequestError(f"{where}.{name}: a metric must be a finite number, not {value!r}")


def _check_choice(where: str, value: Any, allowed: Iterable[str]) -> None:
    allowed = sorted(allowed)
    if value not in allowed:
        raise BadRequestError(f"{where} must be one of {', '.join(allowed)}, not {value!r}")


def _check_location(where: str, location: Mapping[str, Any]) -> None:
    for name, bound in (("Latitude", 90), ("Longitude", 180)):
        value = location.get(name)
        if value is not None and not -bound <= value <= bound:
            raise BadRequestError(
                f"{where}.Location.{name} must be between -{bound} and {bound}, not {value}"
            )


def validate_endpoint_request(where: str, body: Mapping[str, Any]) -> None:
    """Check one EndpointRequest (or batch item, or PutEvents ``Endpoint``) against Pinpoint's rules.

    Args:
        where: How the caller names this body in error messages, e.g. ``EndpointBatchRequest.Item[3]``.
        body: The request body as received.

    Raises:
        BadRequestError: saying which field is wrong and what it must be.
    """
    if body.get("ChannelType") is not None:
        _check_choice(f"{where}.ChannelType", body["ChannelType"], CHANNEL_TYPES)
    if body.get("EndpointStatus") is not None:
        _check_choice(f"{where}.EndpointStatus", body["EndpointStatus"], ENDPOINT_STATUSES)
    if body.get("OptOut") is not None:
        _check_choice(f"{where}.OptOut", body["OptOut"], OPT_OUT_VALUES)
    _check_attribute_map(f"{where}.Attributes", body.get("Attributes") or {})
    _check_attribute_map(f"{where}.User.UserAttributes", (body.get("User") or {}).get("UserAttributes") or {})
    _check_metrics(f"{where}.Metrics", body.get("Metrics") or {})
    _check_location(where, body.get("Location") or {})
    if body.get("EffectiveDate"):
        try:
            parse_instant(str(body["EffectiveDate"]))
        except ValueError as err:
            raise BadRequestError(f"{where}.EffectiveDate: {err}") from None


# ---- the upsert ----


@dataclass
class _Change:
    """The net effect of every body of one batch that names the same endpoint id, in request order."""

    endpoint_id: str
    order: int
    fields: dict[str, Any] = field(default_factory=dict)
    # Per-map merges (attribute name -> values, [] meaning remove), applied in order.
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_attributes: list[dict[str, Any]] = field(default_factory=list)
    has_user_id: bool = False
    user_id: str | None = None

    def add(self, body: Mapping[str, Any], order: int) -> None:
        self.order = order
        for name in (*_SCALAR_FIELDS, "EndpointStatus", "RequestId", "EffectiveDate"):
            if body.get(name) is not None:
                self.fields[name] = body[name]
        for name in (*_MAP_FIELDS, *_OBJECT_FIELDS):
            if body.get(name) is not None:
                self.maps.setdefault(name, {}).update(body[name])
        user = body.get("User")
        if user is not None:
            if "UserId" in user and user["UserId"] is not None:
                # An empty UserId takes the endpoint out of its user.
                self.has_user_id, self.user_id = True, user["UserId"] or None
            if user.get("UserAttributes") is not None:
                self.user_attributes.append(dict(user["UserAttributes"]))


def _merge(base: Mapping[str, Any], update: Mapping[str, Any], *, drop_empty: bool) -> dict[str, Any]:
    merged = {**base, **update}
    if drop_empty:
        merged = {k: v for k, v in merged.items() if v != []}
    return merged


def _collect(items: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, _Change]:
    changes: dict[str, _Change] = {}
    for order, (endpoint_id, body) in enumerate(items):
        if not endpoint_id:
            raise BadRequestError(f"Item {order}: an endpoint needs an Id")
        validate_endpoint_request(f"Endpoint {endpoint_id}", body)
        changes.setdefault(endpoint_id, _Change(endpoint_id, order)).add(body, order)
    return changes


@dataclass
class _UserInfo:
    """One user in the database: its attributes, how many of its endpoints are outside the batch, and which of
    those are push endpoints (oldest first)."""

    attributes: dict[str, Any]
    others: int
    push_ids: list[str]


def _lock_keys(
    app_id: str, changes: Mapping[str, _Change], rows: Mapping[str, Mapping[str, Any]]
) -> set[str]:
    """Everything a batch may write outside its own rows, as advisory-lock keys.

    Besides its endpoints, a batch writes the other endpoints of the users whose attributes it changes and the
    other endpoints with the addresses it activates. Two batches that share any of these serialise on it, so
    that neither ends up waiting for a row the other holds while the other waits for one of its rows.
    """
    keys = {f"endpoint/{app_id}/{i}" for i in changes}
    for endpoint_id, change in changes.items():
        row = rows.get(endpoint_id) or {}
        if change.has_user_id or change.user_attributes:
            user_id = change.user_id if change.has_user_id else row.get("user_id")
            if user_id:
                keys.add(f"user/{app_id}/{user_id}")
        address = change.fields.get("Address") or row.get("address")
        if address and change.fields.get("EndpointStatus", "ACTIVE") == "ACTIVE":
            keys.add(f"address/{app_id}/{address}")
    return keys


async def _advisory_lock(conn: AsyncConnection, keys: set[str]) -> None:
    # Taken in the order of the lock ids themselves, so two transactions never wait for each other in a circle.
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended('sojourn/' || k, 0) AS h "
            "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) s"
        ),
        {"keys": sorted(keys)},
    )


async def _lock_and_load(
    conn: AsyncConnection, app_id: str, changes: Mapping[str, _Change]
) -> dict[str, dict[str, Any]]:
    """Lock what the batch will write and return the current rows of its endpoints."""
    ids = sorted(changes)
    params = {"a": app_id, "ids": ids}
    # A first, lock-free look tells which users and addresses the batch touches; advisory locks (unlike row
    # locks) also cover endpoints that do not exist yet.
    peek = await conn.execute(
        text("SELECT id, user_id, address FROM endpoints WHERE app_id = :a AND id = ANY(:ids)"), params
    )
    keys = _lock_keys(app_id, changes, {r.id: dict(r._mapping) for r in peek})
    await _advisory_lock(conn, keys)
    result = await conn.execute(
        text("SELECT * FROM endpoints WHERE app_id = :a AND id = ANY(:ids) FOR UPDATE"), params
    )
    rows = {r.id: dict(r._mapping) for r in result}
    # Rarely, a row changed user or address between the look and the lock.
    missing = _lock_keys(app_id, changes, rows) - keys
    if missing:
        await _advisory_lock(conn, missing)
    return rows


async def _load_users(
    conn: AsyncConnection, app_id: str, user_ids: set[str], ids: list[str]
) -> dict[str, _UserInfo]:
    if not user_ids:
        return {}
    rows = await conn.execute(
        text(
            """
            SELECT user_id,
                   (array_agg(user_attributes ORDER BY effective_date DESC, id))[1] AS attributes,
                   count(*) FILTER (WHERE NOT id = ANY(:ids)) AS others,
                   array_remove(array_agg(CASE WHEN channel_type = ANY(:push) AND NOT id = ANY(:ids) THEN id END
                                          ORDER BY effective_date, id), NULL) AS push_ids
            FROM endpoints WHERE app_id = :a AND user_id = ANY(:users)
            GROUP BY user_id
            """
        ),
        {"a": app_id, "ids": ids, "users": sorted(user_ids), "push": sorted(PUSH_CHANNEL_TYPES)},
    )
    return {
        r.user_id: _UserInfo(dict(r.attributes or {}), int(r.others), list(r.push_ids or [])) for r in rows
    }


def _final_row(
    app_id: str, change: _Change, old: dict[str, Any] | None, request_id: str | None
) -> dict[str, Any]:
    """The endpoint's columns after ``change`` (user attributes are settled later, per user)."""
    row: dict[str, Any] = (
        dict(old)
        if old
        else {
            "app_id": app_id,
            "id": change.endpoint_id,
            "channel_type": None,
            "address": None,
            "opt_out": "NONE",
            "user_id": None,
            "user_attributes": {},
            "attributes": {},
            "metrics": {},
            "demographic": {},
            "location": {},
            "request_id": None,
            "cohort_id": random.randrange(100),  # a sampling bucket, not a secret
            "creation_date": datetime.now(UTC),
        }
    )
    for name, column in _SCALAR_FIELDS.items():
        if name in change.fields:
            row[column] = change.fields[name]
    for name, column in (*_MAP_FIELDS.items(), *_OBJECT_FIELDS.items()):
        if name in change.maps:
            row[column] = _merge(row[column] or {}, change.maps[name], drop_empty=name in _MAP_FIELDS)
    if change.has_user_id:
        row["user_id"] = change.user_id
    # Pinpoint: "automatically sets this value to ACTIVE when you create an endpoint or update an existing one".
    row["endpoint_status"] = change.fields.get("EndpointStatus", "ACTIVE")
    row["request_id"] = change.fields.get("RequestId") or request_id or row["request_id"]
    effective = change.fields.get("EffectiveDate")
    row["effective_date"] = parse_instant(str(effective)) if effective else datetime.now(UTC)
    return row


async def _keep_numbers_opted_out(
    conn: AsyncConnection,
    app_id: str,
    rows: Mapping[str, dict[str, Any]],
    old: Mapping[str, dict[str, Any]],
) -> None:
    """A new SMS endpoint, or one given a new number, whose number sent STOP starts with OptOut ALL.

    The number's STOP (``address_opt_outs``, in this app or from a number no app knew) holds until the number
    sends START; an UpdateEndpoint that later sets OptOut NONE on the endpoint is the app's own decision.
    """
    fresh = {
        i: r["address"]
        for i, r in rows.items()
        if r["channel_type"] == "SMS"
        and r["address"]
        and r["opt_out"] != "ALL"
        and (i not in old or old[i]["address"] != r["address"] or old[i]["channel_type"] != "SMS")
    }
    stopped = await opted_out_addresses(conn, app_id, "SMS", fresh.values())
    for endpoint_id, address in fresh.items():
        if address in stopped:
            rows[endpoint_id]["opt_out"] = "ALL"


def _settle_users(
    rows: dict[str, dict[str, Any]],
    changes: dict[str, _Change],
    old: dict[str, dict[str, Any]],
    users: dict[str, _UserInfo],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Apply user attribute changes per user, check the per-user limit.

    Returns:
        The synced attributes of every user the batch changed, and the ids of push endpoints evicted from
        their users to make room.
    """
    ordered = sorted(changes.values(), key=lambda c: c.order)
    synced: dict[str, dict[str, Any]] = {}
    for change in ordered:
        row = rows[change.endpoint_id]
        user_id = row["user_id"]
        previous = (old.get(change.endpoint_id) or {}).get("user_id")
        if user_id is None:
            # An endpoint without a user keeps its own attributes; one that just left its user keeps none of them.
            attributes = {} if previous is not None and change.has_user_id else row["user_attributes"]
            for given in change.user_attributes:
                attributes = _merge(attributes, given, drop_empty=True)
            row["user_attributes"] = attributes
            continue
        if user_id != previous or change.user_attributes:
            attributes = synced.get(user_id)
            if attributes is None:
                attributes = users[user_id].attributes if user_id in users else {}
            for given in change.user_attributes:
                attributes = _merge(attributes, given, drop_empty=True)
            synced[user_id] = attributes
    for row in rows.values():
        if row["user_id"] in synced:
            row["user_attributes"] = synced[row["user_id"]]
    return synced, _check_user_sizes(rows, old, users)


def _check_user_sizes(
    rows: dict[str, dict[str, Any]], old: dict[str, dict[str, Any]], users: dict[str, _UserInfo]
) -> list[str]:
    members: dict[str, list[dict[str, Any]]] = {}
    for row in rows.values():
        if row["user_id"] is not None:
            members.setdefault(row["user_id"], []).append(row)
    evicted: list[str] = []
    for user_id, batch_rows in sorted(members.items()):
        info = users.get(user_id) or _UserInfo({}, 0, [])
        excess = info.others + len(batch_rows) - MAX_ENDPOINTS_PER_USER
        joining = [r for r in batch_rows if (old.get(r["id"]) or {}).get("user_id") != user_id]
        if excess <= 0 or not joining:
            continue
        # Pinpoint makes room for a new push endpoint by retiring the user's oldest push endpoint.
        pushes = sum(1 for r in joining if r["channel_type"] in PUSH_CHANNEL_TYPES)
        room = info.push_ids[: min(excess, pushes)]
        evicted += room
        if excess > len(room):
            raise BadRequestError(
                f"User {user_id} would have {info.others + len(batch_rows) - len(room)} endpoints; a user has at most "
                f"{MAX_ENDPOINTS_PER_USER}. Delete endpoints of the user (DeleteEndpoint) or give the new ones another UserId"
            )
    return evicted


def _retire_duplicate_addresses(
    rows: dict[str, dict[str, Any]], changes: dict[str, _Change]
) -> dict[str, str]:
    """The one ACTIVE endpoint per address among the batch (the last one written); the others go INACTIVE."""
    winners: dict[str, str] = {}
    for change in sorted(changes.values(), key=lambda c: c.order):
        row = rows[change.endpoint_id]
        if row["endpoint_status"] == "ACTIVE" and row["address"]:
            loser = winners.get(row["address"])
            if loser is not None:
                rows[loser]["endpoint_status"] = "INACTIVE"
            winners[row["address"]] = change.endpoint_id
    return winners


def _attribute_keys(changes: Iterable[_Change]) -> set[str]:
    keys: set[str] = set()
    for change in changes:
        for kind in _MAP_FIELDS:
            keys |= {f"{kind}.{k}" for k, v in change.maps.get(kind, {}).items() if v != []}
        for given in change.user_attributes:
            keys |= {f"UserAttributes.{k}" for k, v in given.items() if v != []}
    return keys


async def _register_keys(conn: AsyncConnection, app_id: str, keys: set[str]) -> None:
    if not keys:
        return
    new = json.dumps(dict.fromkeys(sorted(keys), True))
    # Writes (and locks the app row) only when a key is new, which is rare after an app's first few requests.
    total = await conn.scalar(
        text(
            f"""
            UPDATE apps SET settings = jsonb_set(settings, '{{{KEY_REGISTRY}}}',
                                                 COALESCE(settings -> '{KEY_REGISTRY}', '{{}}') || CAST(:new AS jsonb))
            WHERE id = :a AND NOT COALESCE(settings -> '{KEY_REGISTRY}', '{{}}') @> CAST(:new AS jsonb)
            RETURNING (SELECT count(*) FROM jsonb_object_keys(settings -> '{KEY_REGISTRY}'))
            """
        ),
        {"a": app_id, "new": new},
    )
    if total is not None and total > MAX_KEYS_PER_APP:
        raise BadRequestError(
            f"Application {app_id} would have {total} endpoint attribute keys (Attributes, Metrics and UserAttributes "
            f"together); at most {MAX_KEYS_PER_APP} are allowed. Reuse existing attribute names"
        )


def _check_sizes(rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        size = len(json.dumps(endpoint_response(row), separators=(",", ":")).encode())
        if size > MAX_ENDPOINT_BYTES:
            raise BadRequestError(f"Endpoint {row['id']} is {size} bytes; an endpoint is at most 15 KB")


_WRITTEN = (
    "channel_type", "address", "endpoint_status", "opt_out", "user_id", "user_attributes", "attributes", "metrics",
    "demographic", "location", "request_id", "effective_date",
)  # fmt: skip


async def upsert_endpoints(
    conn: AsyncConnection,
    app_id: str,
    items: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    request_id: str | None,
) -> None:
    """Create or update endpoints of ``app_id`` in the caller's transaction, all or nothing.

    Args:
        conn: A connection inside a transaction (the app must exist: see ``apps_repo.require_app``).
        app_id: The application.
        items: ``(endpoint id, EndpointRequest-shaped body)`` in request order; a later body for the same id
            applies on top of an earlier one.
        request_id: Stored as the endpoints' ``RequestId`` unless a body gives its own.

    Raises:
        BadRequestError: a body breaks a Pinpoint rule or limit; nothing is written.
    """
    if not items:
        return
    changes = _collect(items)
    ids = sorted(changes)
    # Before any endpoint lock: a batch that holds the app row then never waits behind one that wants it.
    await _register_keys(conn, app_id, _attribute_keys(changes.values()))
    old = await _lock_and_load(conn, app_id, changes)
    rows = {i: _final_row(app_id, changes[i], old.get(i), request_id) for i in ids}
    await _keep_numbers_opted_out(conn, app_id, rows, old)
    users = await _load_users(conn, app_id, {r["user_id"] for r in rows.values() if r["user_id"]}, ids)
    synced, evicted = _settle_users(rows, changes, old, users)
    winners = _retire_duplicate_addresses(rows, changes)
    _check_sizes(rows.values())

    await _write_rows(conn, app_id, rows)
    await _write_others(conn, app_id, ids, evicted=evicted, synced=synced, winners=winners)


async def _write_rows(conn: AsyncConnection, app_id: str, rows: Mapping[str, dict[str, Any]]) -> None:
    insert = pg_insert(endpoints).values(
        [
            {"app_id": app_id, "id": i, "cohort_id": r["cohort_id"], **{c: r[c] for c in _WRITTEN}}
            for i, r in rows.items()
        ]
    )
    # cohort_id and creation_date are set once, when the endpoint is created.
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=[endpoints.c.app_id, endpoints.c.id],
            set_={c: insert.excluded[c] for c in _WRITTEN},
        )
    )


async def _write_others(
    conn: AsyncConnection,
    app_id: str,
    ids: list[str],
    *,
    evicted: list[str],
    synced: dict[str, dict[str, Any]],
    winners: dict[str, str],
) -> None:
    """What a batch changes in endpoints outside it: evicted push endpoints, synced users, retired addresses."""
    if evicted:
        await conn.execute(
            text(
                "UPDATE endpoints SET endpoint_status = 'INACTIVE', user_id = NULL, user_attributes = '{}' "
                "WHERE app_id = :a AND id = ANY(:ids)"
            ),
            {"a": app_id, "ids": evicted},
        )
    if synced:
        await conn.execute(
            text(
                "UPDATE endpoints e SET user_attributes = s.value FROM jsonb_each(CAST(:m AS jsonb)) s "
                "WHERE e.app_id = :a AND e.user_id = s.key AND NOT e.id = ANY(:ids) AND e.user_attributes <> s.value"
            ),
            {"a": app_id, "m": json.dumps(synced), "ids": ids},
        )
    if winners:
        await conn.execute(
            text(
                "UPDATE endpoints e SET endpoint_status = 'INACTIVE' "
                "FROM unnest(CAST(:addresses AS text[]), CAST(:ids AS text[])) AS w(address, id) "
                "WHERE e.app_id = :a AND e.address = w.address AND e.id <> w.id AND e.endpoint_status = 'ACTIVE'"
            ),
            {"a": app_id, "addresses": list(winners), "ids": list(winners.values())},
        )


ACTIVITY_GRANULARITY = timedelta(minutes=15)
"""How stale a stored last-activity time may get before an event rewrites it.

Behavior.Recency windows are 24 hours to 30 days, so a time up to 15 minutes old moves a window's edge by at most
1% of a day, while an endpoint that sends events all day long is rewritten at most 96 times a day instead of
once per event batch.
"""


async def touch_active(conn: AsyncConnection, app_id: str, endpoint_ids: Sequence[str], at: datetime) -> None:
    """Record that endpoints were active at ``at`` (for Behavior.Recency segments); never moves time back.

    A stored time is only replaced when it is more than :data:`ACTIVITY_GRANULARITY` older than ``at``, and
    endpoints whose stored time is recent enough are filtered out before the upsert so that their rows are not
    even locked.

    Args:
        conn: A connection inside a transaction.
        app_id: The application.
        endpoint_ids: Endpoints that sent events; unknown ids are ignored.
        at: When they were active.
    """
    if not endpoint_ids:
        return
    # Rows are written in endpoint id order so that concurrent event batches never wait for each other in a circle.
    await conn.execute(
        text(
            """
            INSERT INTO endpoint_activity AS a (app_id, endpoint_id, last_active_at)
            SELECT e.app_id, e.id, :at FROM endpoints e
            WHERE e.app_id = :a AND e.id = ANY(CAST(:ids AS text[]))
              -- A scalar subquery, not NOT EXISTS: always one primary-key probe per endpoint, never a plan
              -- that reads all of the app's activity rows.
              AND COALESCE((SELECT s.last_active_at FROM endpoint_activity s
                            WHERE s.app_id = e.app_id AND s.endpoint_id = e.id), '-infinity')
                  < CAST(:at AS timestamptz) - CAST(:grain AS interval)
            ORDER BY e.id
            ON CONFLICT (app_id, endpoint_id) DO UPDATE SET last_active_at = EXCLUDED.last_active_at
            WHERE a.last_active_at < EXCLUDED.last_active_at - CAST(:grain AS interval)
            """
        ),
        {"a": app_id, "ids": list(endpoint_ids), "at": at, "grain": ACTIVITY_GRANULARITY},
    )


async def last_active(conn: AsyncConnection, app_id: str, endpoint_id: str) -> datetime | None:
    """When the endpoint was last recorded active, or None."""
    found: datetime | None = await conn.scalar(
        text("SELECT last_active_at FROM endpoint_activity WHERE app_id = :a AND endpoint_id = :e"),
        {"a": app_id, "e": endpoint_id},
    )
    return found


# ---- reads and deletes ----


async def get_endpoint(conn: AsyncConnection, app_id: str, endpoint_id: str) -> dict[str, Any] | None:
    """The endpoint's row (column name -> value), or None."""
    row = (
        await conn.execute(
            text("SELECT * FROM endpoints WHERE app_id = :a AND id = :i"), {"a": app_id, "i": endpoint_id}
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def delete_endpoint(conn: AsyncConnection, app_id: str, endpoint_id: str) -> dict[str, Any] | None:
    """Delete an endpoint; returns its row, or None if there was none."""
    row = (
        await conn.execute(
            text("DELETE FROM endpoints WHERE app_id = :a AND id = :i RETURNING *"),
            {"a": app_id, "i": endpoint_id},
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def user_endpoints(conn: AsyncConnection, app_id: str, user_id: str) -> list[dict[str, Any]]:
    """Rows of every endpoint of a user, oldest first."""
    rows = await conn.execute(
        text("SELECT * FROM endpoints WHERE app_id = :a AND user_id = :u ORDER BY creation_date, id"),
        {"a": app_id, "u": user_id},
    )
    return [dict(r._mapping) for r in rows]


async def delete_user_endpoints(conn: AsyncConnection, app_id: str, user_id: str) -> list[dict[str, Any]]:
    """Delete every endpoint of a user; returns their rows, oldest first."""
    rows = await conn.execute(
        text("DELETE FROM endpoints WHERE app_id = :a AND user_id = :u RETURNING *"),
        {"a": app_id, "u": user_id},
    )
    return sorted((dict(r._mapping) for r in rows), key=lambda r: (r["creation_date"], r["id"]))
