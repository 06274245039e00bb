"""Segment definitions evaluated as SQL against a real PostgreSQL (the session ``db`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import ColumnElement, exists, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable, Select

from sojourn.domain.segments import SegmentDimensions, WriteSegmentRequest
from sojourn.store.ingest_tables import endpoint_activity
from sojourn.store.segment_sql import (
    SegmentCycle,
    audience_clause,
    dimensions_clause,
    json_text_keeps,
    reachable_clause,
    segment_clause,
)
from sojourn.store.tables import apps, endpoints

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ALL = {"e1", "e2", "e3", "e4", "e5"}

# Five endpoints, each a different corner of every dimension. Ids are prefixed per app at insert time.
ENDPOINTS: dict[str, dict[str, Any]] = {
    "e1": {
        "channel_type": "EMAIL",
        "address": "e1@example.com",
        "demographic": {"Platform": "iOS", "Make": "Apple", "Model": "iPhone", "AppVersion": "1.0"},
        "location": {"Country": "US", "Latitude": 47.61, "Longitude": -122.33},  # Seattle
        "attributes": {"plan": ["gold"], "tags": ["Alpha", "beta"], "signup": ["2024-01-15T10:00:00Z"]},
        "user_attributes": {"team": ["red"]},
        "metrics": {"score": 10},
        "last_active_at": NOW - timedelta(hours=1),
    },
    "e2": {
        "channel_type": "SMS",
        "address": "+12065550100",
        "demographic": {"Platform": "android", "Make": "Samsung", "AppVersion": "2.0"},
        "location": {"Country": "us", "Latitude": 45.52, "Longitude": -122.68},  # Portland, ~235 km away
        "attributes": {"plan": ["silver"], "tags": ["alpha"], "signup": ["2024-01-15"]},
        "metrics": {"score": 5},
        "last_active_at": NOW - timedelta(days=3),
    },
    "e3": {
        "channel_type": "GCM",
        "address": "token-3",
        "endpoint_status": "INACTIVE",
        "demographic": {"Platform": "ANDROID", "DeviceType": "TABLET"},
        "location": {"Country": "DE", "Latitude": 52.52, "Longitude": 13.40},  # Berlin
        # 23:30 at UTC-2 is 01:30 UTC on the 2nd.
        "attributes": {"plan": ["gold", "silver"], "signup": ["2024-03-01T23:30:00-02:00"]},
        "user_attributes": {"team": ["blue"]},
        "metrics": {"score": 5.5},
        "last_active_at": NOW - timedelta(days=20),
    },
    "e4": {
        "channel_type": "EMAIL",
        "address": "e4@example.com",
        "opt_out": "ALL",
        # Values that must be ignored rather than break the query: words timestamptz would accept,
        # an impossible date, a non-numeric metric.
        "attributes": {"plan": ["bronze"], "signup": ["now", "2024-13-45T00:00:00Z", "not a date"]},
        "metrics": {"score": "high"},
    },
    "e5": {
        "channel_type": "APNS",
        "address": None,
        "demographic": {"Platform": "ios"},
        "location": {"Country": "FR", "Latitude": "48.85"},
        "attributes": {"tags": "alpha"},  # not a list: ignored by list operators
        "last_active_at": NOW - timedelta(days=40),
    },
}


async def make_app(db: AsyncEngine, rows: dict[str, dict[str, Any]]) -> str:
    """A new app holding ``rows`` as endpoints (ids ``<app>-<key>``); returns the app id."""
    app_id = uuid4().hex
    async with db.begin() as conn:
        await conn.execute(apps.insert().values(id=app_id, name="segments test"))
        # One statement per row: the rows set different columns (the others keep their server defaults).
        for key, row in rows.items():
            columns = {k: v for k, v in row.items() if k != "last_active_at"}
            await conn.execute(
                endpoints.insert().values(app_id=app_id, id=f"{app_id}-{key}", cohort_id=0, **columns)
            )
            if row.get("last_active_at") is not None:
                # Activity lives in its own table (what PutEvents' touch_active writes).
                await conn.execute(
                    endpoint_activity.insert().values(
                        app_id=app_id, endpoint_id=f"{app_id}-{key}", last_active_at=row["last_active_at"]
                    )
                )
    return app_id


@dataclass
class Audience:
    """The endpoints of one app, and how to ask which of them a condition selects."""

    db: AsyncEngine
    app_id: str

    async def select(self, clause: ColumnElement[bool]) -> set[str]:
        """The short keys (``e1``...) of the app's endpoints that ``clause`` selects."""
        query = select(endpoints.c.id).where(audience_clause(self.app_id, clause))
        async with self.db.connect() as conn:
            ids = (await conn.execute(query)).scalars().all()
        return {i.removeprefix(f"{self.app_id}-") for i in ids}

    async def dims(self, raw: dict[str, Any]) -> set[str]:
        """The keys a ``SegmentDimensions`` (wire JSON) selects."""
        return await self.select(dimensions_clause(SegmentDimensions.model_validate(raw), now=NOW))

    async def segment(
        self, raw: dict[str, Any], library: dict[str, dict[str, Any]] | None = None
    ) -> set[str]:
        """The keys a ``WriteSegmentRequest`` (wire JSON) selects; ``library`` holds the segments it refers to."""
        resolve = resolver(library or {})
        return await self.select(
            segment_clause(WriteSegmentRequest.model_validate(raw), now=NOW, resolve=resolve)
        )


def resolver(library: dict[str, dict[str, Any]]) -> Callable[[str, int | None], WriteSegmentRequest]:
    """Resolve ``id`` or ``id@version`` keys of ``library``."""

    def resolve(segment_id: str, version: int | None) -> WriteSegmentRequest:
        key = segment_id if version is None else f"{segment_id}@{version}"
        return WriteSegmentRequest.model_validate(library[key])

    return resolve


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def audience(db: AsyncEngine) -> Audience:
    return Audience(db, await make_app(db, ENDPOINTS))


def attr(kind: str, *values: str, name: str = "plan", where: str = "Attributes") -> dict[str, Any]:
    return {where: {name: {"AttributeType": kind, "Values": list(values)}}}


def demo(key: str, *values: str, kind: str = "INCLUSIVE") -> dict[str, Any]:
    return {"Demographic": {key: {"DimensionType": kind, "Values": list(values)}}}


def metric(op: str, value: float) -> dict[str, Any]:
    return {"Metrics": {"score": {"ComparisonOperator": op, "Value": value}}}


def recency(duration: str, kind: str = "ACTIVE") -> dict[str, Any]:
    return {"Behavior": {"Recency": {"Duration": duration, "RecencyType": kind}}}


# --- Demographic and Location ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (demo("Platform", "IOS"), {"e1", "e5"}),  # case-insensitive
        (demo("Platform", "ios", kind="EXCLUSIVE"), {"e2", "e3", "e4"}),  # e4 has no platform: kept
        (demo("Platform", "ios", "Android"), {"e1", "e2", "e3", "e5"}),
        (demo("Make", "apple"), {"e1"}),
        (demo("Model", "iPhone"), {"e1"}),
        (demo("AppVersion", "2.0"), {"e2"}),
        (demo("DeviceType", "tablet"), {"e3"}),
        (demo("Channel", "email"), {"e1", "e4"}),
        (demo("Channel", "PUSH"), {"e3", "e5"}),  # GCM and APNS are push channels
        (demo("Channel", "EMAIL", kind="EXCLUSIVE"), {"e2", "e3", "e5"}),
        (
            {"Demographic": {"Platform": {"Values": ["ios"]}}},
            {"e1", "e5"},
        ),  # DimensionType defaults to INCLUSIVE
        ({"Location": {"Country": {"Values": ["US"]}}}, {"e1", "e2"}),
        ({"Location": {"Country": {"DimensionType": "EXCLUSIVE", "Values": ["us", "DE"]}}}, {"e4", "e5"}),
    ],
)
async def test_set_dimensions(audience: Audience, raw: dict[str, Any], expected: set[str]) -> None:
    assert await audience.dims(raw) == expected


@pytest.mark.parametrize(("km", "expected"), [(50, {"e1"}), (300, {"e1", "e2"}), (9000, {"e1", "e2", "e3"})])
async def test_gps_point_range(audience: Audience, km: float, expected: set[str]) -> None:
    seattle = {"Coordinates": {"Latitude": 47.6062, "Longitude": -122.3321}, "RangeInKilometers": km}
    # e4 has no location and e5 a latitude that is a string: never within range.
    assert await audience.dims({"Location": {"GPSPoint": seattle}}) == expected


# --- Attributes and UserAttributes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (attr("INCLUSIVE", "gold"), {"e1", "e3"}),
        (attr("INCLUSIVE", "gold", "bronze"), {"e1", "e3", "e4"}),
        (attr("INCLUSIVE", "Gold"), set()),  # exact, case-sensitive
        (
            {"Attributes": {"plan": {"Values": ["silver"]}}},
            {"e2", "e3"},
        ),  # AttributeType defaults to INCLUSIVE
        (attr("EXCLUSIVE", "gold"), {"e2", "e4", "e5"}),  # e5 has no plan: kept
        (attr("EXCLUSIVE", "gold", "silver"), {"e4", "e5"}),
        (attr("INCLUSIVE", "red", name="team", where="UserAttributes"), {"e1"}),
        (attr("EXCLUSIVE", "red", name="team", where="UserAttributes"), {"e2", "e3", "e4", "e5"}),
        (attr("INCLUSIVE", "gold", where="UserAttributes"), set()),  # user and endpoint attributes are apart
        (attr("INCLUSIVE", "gold", name="nope"), set()),
    ],
)
async def test_inclusive_and_exclusive_attributes(
    audience: Audience, raw: dict[str, Any], expected: set[str]
) -> None:
    assert await audience.dims(raw) == expected


@pytest.mark.parametrize(
    ("needles", "expected"),
    [
        (["lph"], {"e1", "e2"}),  # any value of the list; e5's non-list value is ignored
        (["Al"], {"e1"}),  # case-sensitive
        (["al"], {"e2"}),
        (["Al", "et"], {"e1"}),
        (["bet", "pha"], {"e1", "e2"}),
        (["%"], set()),  # literal, not a LIKE wildcard
        (["_"], set()),
    ],
)
async def test_contains_is_a_case_sensitive_substring(
    audience: Audience, needles: list[str], expected: set[str]
) -> None:
    assert await audience.dims(attr("CONTAINS", *needles, name="tags")) == expected


ODD_VALUES: dict[str, dict[str, Any]] = {
    "q": {"attributes": {"v": ['say "hi"', "back\\slash", "two", "words"]}},
    "u": {"attributes": {"v": ["naïve café", "日本語 🚀"]}},
    "n": {"attributes": {"v": [12345, True, None, {"k": "inner"}]}},
    "s": {"attributes": {"v": "not a list, contains two"}},
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def odd(db: AsyncEngine) -> Audience:
    return Audience(db, await make_app(db, ODD_VALUES))


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ('"hi"', {"q"}),  # escaped in JSON text: matched without the pre-filter
        ("k\\s", {"q"}),
        ("café", {"u"}),
        ("本語 🚀", {"u"}),
        ("234", {"n"}),  # non-string elements match on their text, as before
        ("tru", {"n"}),
        ("inner", {"n"}),
        ("two", {"q"}),  # never the non-list value
        ('o", "w', set()),  # never across elements
        ("o, w", set()),
        (", ", set()),
        ("null", set()),  # a JSON null element has no text
    ],
)
async def test_contains_is_exact_with_odd_values(odd: Audience, needle: str, expected: set[str]) -> None:
    key = {"Attributes": {"v": {"AttributeType": "CONTAINS", "Values": [needle]}}}
    assert await odd.dims(key) == expected


@pytest.mark.parametrize(
    ("needle", "kept"),
    [
        ("ent", True),
        ("naïve 🚀", True),
        ("100%_", True),
        ('say "hi"', False),
        ("a\\b", False),
        ("tab\t", False),
    ],
)
def test_json_text_keeps_only_needles_without_escaped_characters(needle: str, kept: bool) -> None:
    assert json_text_keeps(needle) is kept


async def test_contains_on_user_attributes(audience: Audience) -> None:
    assert await audience.dims(attr("CONTAINS", "lu", name="team", where="UserAttributes")) == {"e3"}


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        ("BEFORE", ["2024-02-01T00:00:00Z"], {"e1", "e2"}),
        ("BEFORE", ["2024-01-15T10:00:00Z"], {"e2"}),  # strictly before; e2 is midnight UTC
        ("BEFORE", ["2024-01-15T05:00:00-05:00"], {"e2"}),  # 10:00 UTC again, given with an offset
        ("AFTER", ["2024-02-01T00:00:00Z"], {"e3"}),
        ("AFTER", ["2024-03-02T01:30:00Z"], set()),  # strictly after
        ("AFTER", ["2030-01-01T00:00:00Z", "2024-03-01T00:00:00Z"], {"e3"}),  # any value
        ("ON", ["2024-01-15T23:59:00Z"], {"e1", "e2"}),  # the time of day is ignored
        ("ON", ["2024-03-02"], {"e3"}),  # the UTC day, not the day at the value's own offset
        ("ON", ["2024-03-01"], set()),
        ("BETWEEN", ["2024-01-15T00:00:00Z", "2024-01-15T10:00:00Z"], {"e1", "e2"}),  # inclusive ends
        ("BETWEEN", ["2024-12-31T00:00:00Z", "2024-02-01T00:00:00Z"], {"e3"}),  # either order
        ("BETWEEN", ["1999-01-01T00:00:00Z", "2999-01-01T00:00:00Z"], {"e1", "e2", "e3"}),  # never e4's junk
    ],
)
async def test_date_attributes(audience: Audience, kind: str, values: list[str], expected: set[str]) -> None:
    assert await audience.dims(attr(kind, *values, name="signup")) == expected


# --- Metrics and Behavior ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("GREATER_THAN", 5, {"e1", "e3"}),
        ("GREATER_THAN_OR_EQUAL", 5.5, {"e1", "e3"}),
        ("LESS_THAN", 6, {"e2", "e3"}),
        ("LESS_THAN_OR_EQUAL", 5, {"e2"}),
        ("EQUAL", 5.5, {"e3"}),
        ("EQUAL", 11, set()),
    ],
)
async def test_metrics(audience: Audience, op: str, value: float, expected: set[str]) -> None:
    # e4's "high" and e5's missing score are never compared (and never break the query).
    assert await audience.dims(metric(op, value)) == expected


@pytest.mark.parametrize(
    ("duration", "active"),
    [("HR_24", {"e1"}), ("DAY_7", {"e1", "e2"}), ("DAY_14", {"e1", "e2"}), ("DAY_30", {"e1", "e2", "e3"})],
)
async def test_recency(audience: Audience, duration: str, active: set[str]) -> None:
    assert await audience.dims(recency(duration, "ACTIVE")) == active
    # Never seen (e4) counts as inactive.
    assert await audience.dims(recency(duration, "INACTIVE")) == ALL - active


# --- combining --------------------------------------------------------------------------------------------------


async def test_empty_dimensions_select_every_endpoint(audience: Audience) -> None:
    assert await audience.dims({}) == ALL
    assert await audience.segment({"Name": "everyone"}) == ALL
    assert await audience.segment({"SegmentGroups": {"Groups": []}}) == ALL


async def test_dimensions_are_anded(audience: Audience) -> None:
    android_silver = {**demo("Platform", "android"), **attr("INCLUSIVE", "silver")}
    assert await audience.dims(android_silver) == {"e2", "e3"}
    assert await audience.dims({**android_silver, "Location": {"Country": {"Values": ["US"]}}}) == {"e2"}
    assert await audience.dims({**android_silver, **metric("GREATER_THAN", 5), **recency("DAY_30")}) == {"e3"}


def group(*dims: dict[str, Any], kind: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"Dimensions": list(dims), **({"Type": kind} if kind else {}), **extra}


GOLD = attr("INCLUSIVE", "gold")  # e1 e3
US = {"Location": {"Country": {"Values": ["US"]}}}  # e1 e2


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(None, {"e1"}), ("ALL", {"e1"}), ("ANY", {"e1", "e2", "e3"}), ("NONE", {"e4", "e5"})],
)
async def test_group_type_combines_its_dimensions(
    audience: Audience, kind: str | None, expected: set[str]
) -> None:
    assert await audience.segment({"SegmentGroups": {"Groups": [group(GOLD, US, kind=kind)]}}) == expected


@pytest.mark.parametrize(
    ("include", "expected"),
    [(None, {"e1"}), ("ALL", {"e1"}), ("ANY", {"e1", "e2", "e3"}), ("NONE", {"e4", "e5"})],
)
async def test_include_combines_groups(audience: Audience, include: str | None, expected: set[str]) -> None:
    groups: dict[str, Any] = {"Groups": [group(GOLD), group(US)]}
    if include:
        groups["Include"] = include
    assert await audience.segment({"SegmentGroups": groups}) == expected


async def test_none_is_the_exact_complement(audience: Audience) -> None:
    # Every kind of criterion, including ones with missing fields, NOT-ed through a NONE group.
    criteria = [
        demo("Platform", "ios"),
        demo("Channel", "SMS"),
        {"Location": {"Country": {"Values": ["FR"]}}},
        {
            "Location": {
                "GPSPoint": {"Coordinates": {"Latitude": 47.6, "Longitude": -122.3}, "RangeInKilometers": 10}
            }
        },
        attr("CONTAINS", "lph", name="tags"),
        attr("AFTER", "2024-02-01T00:00:00Z", name="signup"),
        metric("GREATER_THAN", 5),
        recency("DAY_7"),
    ]
    for dims in criteria:
        selected = await audience.dims(dims)
        assert (
            await audience.segment({"SegmentGroups": {"Groups": [group(dims, kind="NONE")]}})
            == ALL - selected
        )


# --- source segments ---------------------------------------------------------------------------------------------

LIBRARY: dict[str, dict[str, Any]] = {
    "gold": {"Name": "gold", "Dimensions": GOLD},  # e1 e3
    "gold@1": {"Name": "gold v1", "Dimensions": attr("INCLUSIVE", "bronze")},  # e4
    "us": {"Name": "us", "Dimensions": US},  # e1 e2
    # Built on other segments itself: gold or us, then only the ones active in the last week.
    "gold-or-us-recent": {
        "SegmentGroups": {
            "Groups": [{"SourceSegments": [{"Id": "gold"}, {"Id": "us"}], **group(recency("DAY_7"))}]
        }
    },  # e1 e2
}


@pytest.mark.parametrize(
    ("source_type", "expected"),
    [(None, {"e1", "e2", "e3"}), ("ANY", {"e1", "e2", "e3"}), ("ALL", {"e1"}), ("NONE", {"e4", "e5"})],
)
async def test_source_type_combines_base_segments(
    audience: Audience, source_type: str | None, expected: set[str]
) -> None:
    g: dict[str, Any] = {"SourceSegments": [{"Id": "gold"}, {"Id": "us"}]}
    if source_type:
        g["SourceType"] = source_type
    assert await audience.segment({"SegmentGroups": {"Groups": [g]}}, LIBRARY) == expected


async def test_base_segments_are_narrowed_by_the_groups_dimensions(audience: Audience) -> None:
    g = {"SourceSegments": [{"Id": "gold"}], **group(recency("DAY_7"))}
    assert await audience.segment({"SegmentGroups": {"Groups": [g]}}, LIBRARY) == {"e1"}


async def test_pinned_versions_and_nested_segments(audience: Audience) -> None:
    pinned = {"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "gold", "Version": 1}]}]}}
    assert await audience.segment(pinned, LIBRARY) == {"e4"}
    nested = {"SourceSegments": [{"Id": "gold-or-us-recent"}], "SourceType": "NONE"}
    assert await audience.segment({"SegmentGroups": {"Groups": [nested]}}, LIBRARY) == {"e3", "e4", "e5"}


async def test_two_groups_one_excluding_a_segment(audience: Audience) -> None:
    # The console's "group 2 excludes audiences": Include ALL with a NONE group.
    groups = {
        "Include": "ALL",
        "Groups": [
            {"SourceSegments": [{"Id": "us"}, {"Id": "gold"}]},
            {"SourceSegments": [{"Id": "gold"}], "SourceType": "NONE"},
        ],
    }
    assert await audience.segment({"SegmentGroups": groups}, LIBRARY) == {"e2"}


def test_cycles_are_refused() -> None:
    library = {
        "a": {"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "b"}]}]}},
        "b": {"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "gold"}, {"Id": "a"}]}]}},
        "gold": LIBRARY["gold"],
    }
    with pytest.raises(SegmentCycle, match=r"segment b is built on itself: b -> a -> b"):
        segment_clause(WriteSegmentRequest.model_validate(library["a"]), now=NOW, resolve=resolver(library))
    self_ref = {"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "s", "Version": 2}]}]}}
    with pytest.raises(SegmentCycle, match="s@2"):
        segment_clause(
            WriteSegmentRequest.model_validate(self_ref), now=NOW, resolve=resolver({"s@2": self_ref})
        )


def test_a_segment_used_twice_is_not_a_cycle() -> None:
    diamond = {
        "SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "gold-or-us-recent"}, {"Id": "gold"}]}]}
    }
    segment_clause(WriteSegmentRequest.model_validate(diamond), now=NOW, resolve=resolver(LIBRARY))


def test_resolver_errors_propagate() -> None:
    missing = {"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "missing"}]}]}}
    with pytest.raises(KeyError, match="missing"):
        segment_clause(WriteSegmentRequest.model_validate(missing), now=NOW, resolve=resolver({}))


# --- app scope, reachability, embedding ---------------------------------------------------------------------------


async def test_audience_is_one_apps_endpoints(db: AsyncEngine, audience: Audience) -> None:
    other = Audience(db, await make_app(db, {"e1": ENDPOINTS["e1"]}))
    assert await other.dims(GOLD) == {"e1"}
    assert await audience.dims(GOLD) == {"e1", "e3"}


async def test_reachable_clause(audience: Audience) -> None:
    # e3 is INACTIVE, e4 opted out of everything, e5 has no address.
    assert await audience.select(reachable_clause()) == {"e1", "e2"}


async def test_clause_inside_a_correlated_subquery(audience: Audience) -> None:
    # As the journey splits use it: EXISTS (SELECT 1 FROM endpoints WHERE <keys match> AND <clause>).
    outer = endpoints.alias("outer_endpoints")
    clause = dimensions_clause(
        SegmentDimensions.model_validate(attr("CONTAINS", "lph", name="tags")), now=NOW
    )
    inner = select(1).where(endpoints.c.app_id == outer.c.app_id, endpoints.c.id == outer.c.id, clause)
    query = select(outer.c.id).where(outer.c.app_id == audience.app_id, exists(inner))
    async with audience.db.connect() as conn:
        ids = set((await conn.execute(query)).scalars())
    assert ids == {f"{audience.app_id}-e1", f"{audience.app_id}-e2"}


def test_values_are_bound_parameters() -> None:
    evil = "x'); DROP TABLE endpoints; --"
    dims = SegmentDimensions.model_validate(
        {
            "Attributes": {evil: {"AttributeType": "CONTAINS", "Values": [evil]}},
            "UserAttributes": {evil: {"Values": [evil]}},
            "Demographic": {"Platform": {"Values": [evil]}},
            "Location": {"Country": {"Values": [evil]}},
            "Metrics": {evil: {"ComparisonOperator": "EQUAL", "Value": 1}},
        }
    )
    sql = str(
        select(endpoints.c.id).where(dimensions_clause(dims, now=NOW)).compile(dialect=postgresql.dialect())
    )
    assert "DROP" not in sql


# --- the GIN index ----------------------------------------------------------------------------------------------


class Explain(Executable, ClauseElement):
    """``EXPLAIN <select>``, compiled with the select's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)


async def test_inclusive_attributes_can_use_the_gin_index(db: AsyncEngine) -> None:
    # Plan values unique to this test, so the index condition alone decides which rows come back.
    tag = uuid4().hex
    rows = {f"n{i}": {"attributes": {"plan": [f"{tag}-{i % 100}"], "n": [str(i)]}} for i in range(3000)}
    app_id = await make_app(db, rows)
    dims = SegmentDimensions.model_validate(attr("INCLUSIVE", f"{tag}-7", f"{tag}-8"))
    query = select(endpoints.c.id).where(dimensions_clause(dims, now=NOW))
    async with db.begin() as conn:
        await conn.execute(text("ANALYZE endpoints"))
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join((await conn.execute(Explain(query))).scalars())
        found = set((await conn.execute(query)).scalars())
    assert "Bitmap Index Scan on ix_endpoints_attributes" in plan, plan
    assert found == {f"{app_id}-n{i}" for i in range(3000) if i % 100 in (7, 8)}
