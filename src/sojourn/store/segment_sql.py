"""Segment definitions as SQL: boolean SQLAlchemy Core expressions over the ``endpoints`` table.

Everything here is pure: a definition goes in, a ``ColumnElement[bool]`` comes out, and every value of the
definition travels as a bound parameter. Callers put the expression in a ``WHERE`` (``audience_clause`` adds
the app), so a segment is evaluated entirely in PostgreSQL, against the endpoints' latest data.

Matching rules (Pinpoint semantics where the docs state them, ours where they don't):

- Every expression is two-valued (never SQL NULL), so NOT (EXCLUSIVE, ``NONE`` groups) is the exact
  complement: an endpoint without the attribute/field is *not* matched by INCLUSIVE and *is* kept by EXCLUSIVE.
- ``Attributes`` / ``UserAttributes`` INCLUSIVE and EXCLUSIVE compare whole values exactly (case-sensitive,
  as attribute names and values are in Pinpoint), through JSONB containment ``@>`` so that the GIN
  ``jsonb_path_ops`` indexes answer INCLUSIVE filters. CONTAINS is a case-sensitive substring test.
- BEFORE / AFTER / ON / BETWEEN read each attribute value as an ISO-8601 instant; a value without an offset is
  UTC, a value that is not a date is ignored (never an error). ON compares the UTC calendar day, BETWEEN is
  inclusive at both ends.
- ``Demographic`` (AppVersion, DeviceType, Make, Model, Platform) and ``Location.Country`` are compared
  case-insensitively (inferred): SDKs report these with varying case ("iOS"/"ios", "us"/"US") and the console
  offers them as picked values, so an exact match would silently drop endpoints. ``DeviceType`` reads a
  ``DeviceType`` key of the demographic, which Pinpoint's EndpointDemographic does not define, so it only
  matches endpoints whose demographic carries one.
- ``Channel`` compares ``channel_type`` with the upper-cased values; the console's ``PUSH`` stands for every
  push channel type (GCM, APNS, APNS_SANDBOX, APNS_VOIP, APNS_VOIP_SANDBOX, ADM, BAIDU and PUSH itself).
- Omitted combinators default to: ``SetDimension.DimensionType`` / ``AttributeType`` INCLUSIVE, group ``Type``
  ALL, ``SourceType`` ANY (the console's default), ``Include`` ALL.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    Text,
    and_,
    case,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from sojourn.domain.segments import (
    AttributeDimension,
    Combine,
    GPSPointDimension,
    MetricDimension,
    SegmentBehaviors,
    SegmentDemographics,
    SegmentDimensions,
    SegmentGroup,
    SegmentGroupList,
    SegmentLocation,
    SegmentReference,
    SetDimension,
    WriteSegmentRequest,
)
from sojourn.store.ingest_tables import endpoint_activity
from sojourn.store.tables import endpoints

Resolver = Callable[[str, int | None], WriteSegmentRequest]
"""Looks up a referenced segment's definition by (id, version); version ``None`` is the latest."""

RECENCY_WINDOWS: dict[str, timedelta] = {
    "HR_24": timedelta(hours=24),
    "DAY_7": timedelta(days=7),
    "DAY_14": timedelta(days=14),
    "DAY_30": timedelta(days=30),
}

PUSH_CHANNEL_TYPES = ("PUSH", "GCM", "APNS", "APNS_SANDBOX", "APNS_VOIP", "APNS_VOIP_SANDBOX", "ADM", "BAIDU")

DEFAULT_GPS_RANGE_KM = 100.0
"""Range of a GPSPoint without ``RangeInKilometers``; Pinpoint does not document its default (unverified)."""

EARTH_RADIUS_KM = 6371.0088

_DEMOGRAPHIC_KEYS = ("AppVersion", "DeviceType", "Make", "Model", "Platform")

# What an attribute value not ending in Z must look like before PostgreSQL is asked to read it as a time: words
# such as 'now', 'today' or 'epoch', which timestamptz input accepts, must not read as instants.
_ISO_DATE_TIME = r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?"
_WITH_OFFSET = _ISO_DATE_TIME + r"([Zz]|[+-]\d{2}(:?\d{2})?)$"
_WITHOUT_OFFSET = _ISO_DATE_TIME + r"$"

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "GREATER_THAN": operator.gt,
    "LESS_THAN": operator.lt,
    "GREATER_THAN_OR_EQUAL": operator.ge,
    "LESS_THAN_OR_EQUAL": operator.le,
    "EQUAL": operator.eq,
}

_E = endpoints.c
_TIMESTAMPTZ = DateTime(timezone=True)


class SegmentCycle(ValueError):
    """Segments that are built, through their ``SourceSegments``, on themselves."""


# --- public API -------------------------------------------------------------------------------------------


def dimensions_clause(dims: SegmentDimensions, *, now: datetime) -> ColumnElement[bool]:
    """The condition on an endpoint row that one ``SegmentDimensions`` block sets.

    Every dimension must hold (AND); within a dimension any of its values may match (OR). An empty block
    matches every endpoint.

    Args:
        dims: The dimensions.
        now: The time ``Behavior.Recency`` windows end at (naive means UTC).

    Returns:
        A boolean expression over ``endpoints``, never NULL.
    """
    parts = [
        *_demographic_parts(dims.Demographic),
        *_location_parts(dims.Location),
        *_attribute_parts(_E.attributes, dims.Attributes),
        *_attribute_parts(_E.user_attributes, dims.UserAttributes),
        *_metric_parts(dims.Metrics),
        *_behavior_parts(dims.Behavior, _aware(now)),
    ]
    return _combine("ALL", parts)


def segment_clause(
    definition: WriteSegmentRequest, *, now: datetime, resolve: Resolver
) -> ColumnElement[bool]:
    """The condition on an endpoint row for membership of a segment.

    A segment with ``Dimensions`` is that block; one with ``SegmentGroups`` combines its groups by
    ``Include``. Each group is its base segments (``SourceSegments`` combined by ``SourceType``; none means
    every endpoint) AND its filters (``Dimensions`` blocks combined by ``Type``; none means no filter). A
    segment with neither is every endpoint.

    Args:
        definition: The segment.
        now: The time ``Behavior.Recency`` windows end at.
        resolve: Returns the definition of a referenced segment; whatever it raises (e.g. not found)
            propagates.

    Returns:
        A boolean expression over ``endpoints``, never NULL.

    Raises:
        SegmentCycle: a segment is built, directly or not, on itself.
    """
    return _segment(definition, _aware(now), resolve, ())


def audience_clause(app_id: str, clause: ColumnElement[bool]) -> ColumnElement[bool]:
    """Restrict ``clause`` to the endpoints of one app.

    Args:
        app_id: The application (project) id.
        clause: A segment condition from ``segment_clause`` or ``dimensions_clause``.

    Returns:
        ``app_id = :app_id AND clause``.
    """
    return and_(_E.app_id == app_id, clause)


def reachable_clause() -> ColumnElement[bool]:
    """Endpoints a message can go to: ACTIVE, not opted out of everything, with an address.

    The send path applies this on top of the audience (and counts the rest as ENDPOINT_INACTIVE,
    ENDPOINT_OPT_OUT, ENDPOINT_MISSING_ADDRESS); segments themselves include such endpoints.
    """
    return and_(_E.endpoint_status == "ACTIVE", _E.opt_out != "ALL", _E.address.is_not(None))


# --- segments and groups ----------------------------------------------------------------------------------


def _segment(
    definition: WriteSegmentRequest,
    now: datetime,
    resolve: Resolver,
    path: tuple[tuple[str, int | None], ...],
) -> ColumnElement[bool]:
    if definition.SegmentGroups is not None:
        return _group_list(definition.SegmentGroups, now, resolve, path)
    if definition.Dimensions is not None:
        return dimensions_clause(definition.Dimensions, now=now)
    return true()


def _group_list(
    groups: SegmentGroupList, now: datetime, resolve: Resolver, path: tuple[tuple[str, int | None], ...]
) -> ColumnElement[bool]:
    if not groups.Groups:
        return true()
    return _combine(groups.Include or "ALL", [_group(g, now, resolve, path) for g in groups.Groups])


def _group(
    group: SegmentGroup, now: datetime, resolve: Resolver, path: tuple[tuple[str, int | None], ...]
) -> ColumnElement[bool]:
    base: ColumnElement[bool] = true()
    if group.SourceSegments:
        sources = [_source(ref, now, resolve, path) for ref in group.SourceSegments]
        base = _combine(group.SourceType or "ANY", sources)
    filters: ColumnElement[bool] = true()
    if group.Dimensions:
        filters = _combine(group.Type or "ALL", [dimensions_clause(d, now=now) for d in group.Dimensions])
    return and_(base, filters)


def _source(
    ref: SegmentReference, now: datetime, resolve: Resolver, path: tuple[tuple[str, int | None], ...]
) -> ColumnElement[bool]:
    key = (ref.Id, ref.Version)
    # Any endless recursion must revisit some (id, version): the references of a finite set of definitions.
    if key in path:
        chain = " -> ".join(_label(k) for k in (*path, key))
        raise SegmentCycle(f"segment {_label(key)} is built on itself: {chain}")
    return _segment(resolve(ref.Id, ref.Version), now, resolve, (*path, key))


def _label(key: tuple[str, int | None]) -> str:
    return key[0] if key[1] is None else f"{key[0]}@{key[1]}"


def _combine(kind: Combine, parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """ALL (and), ANY (or) or NONE (not any) of ``parts``; of no parts: true, false, true."""
    if kind == "ALL":
        return and_(true(), *parts)
    found = or_(false(), *parts)
    return found if kind == "ANY" else not_(found)


# --- Demographic and Location -------------------------------------------------------------------------------


def _demographic_parts(demo: SegmentDemographics | None) -> list[ColumnElement[bool]]:
    if demo is None:
        return []
    parts: list[ColumnElement[bool]] = []
    for key in _DEMOGRAPHIC_KEYS:
        dim: SetDimension | None = getattr(demo, key)
        if dim is not None:
            value = func.lower(_E.demographic[key].astext)
            parts.append(_set_match(value, [v.lower() for v in dim.Values], dim.inclusive))
    if demo.Channel is not None:
        parts.append(_set_match(_E.channel_type, _channel_types(demo.Channel.Values), demo.Channel.inclusive))
    return parts


def _channel_types(values: list[str]) -> list[str]:
    wanted = {v.upper() for v in values}
    if "PUSH" in wanted:
        wanted.update(PUSH_CHANNEL_TYPES)
    return sorted(wanted)


def _location_parts(location: SegmentLocation | None) -> list[ColumnElement[bool]]:
    if location is None:
        return []
    parts: list[ColumnElement[bool]] = []
    if location.Country is not None:
        country = func.upper(_E.location["Country"].astext)
        values = [v.upper() for v in location.Country.Values]
        parts.append(_set_match(country, values, location.Country.inclusive))
    if location.GPSPoint is not None:
        parts.append(_within_range(location.GPSPoint))
    return parts


def _set_match(value: ColumnElement[Any], values: list[str], inclusive: bool) -> ColumnElement[bool]:
    matched = _is_true(value.in_(values))
    return matched if inclusive else not_(matched)


def _within_range(point: GPSPointDimension) -> ColumnElement[bool]:
    """Great-circle (haversine) distance from the point to the endpoint's Latitude/Longitude, within range."""
    lat0, lon0 = point.Coordinates.Latitude, point.Coordinates.Longitude
    range_km = point.RangeInKilometers if point.RangeInKilometers is not None else DEFAULT_GPS_RANGE_KM
    lat, lon = _json_number(_E.location, "Latitude"), _json_number(_E.location, "Longitude")
    sin2_dlat = func.power(func.sin(func.radians(lat - lat0) * 0.5), 2)
    sin2_dlon = func.power(func.sin(func.radians(lon - lon0) * 0.5), 2)
    a = sin2_dlat + math.cos(math.radians(lat0)) * func.cos(func.radians(lat)) * sin2_dlon
    # least(): rounding can push `a` a hair above 1 for antipodal points, where asin() would raise.
    distance_km = 2 * EARTH_RADIUS_KM * func.asin(func.sqrt(func.least(1.0, a)))
    return _is_true(distance_km <= range_km)


# --- Attributes and UserAttributes --------------------------------------------------------------------------


def _attribute_parts(
    column_: ColumnElement[Any], attributes: dict[str, AttributeDimension] | None
) -> list[ColumnElement[bool]]:
    return [_attribute_clause(column_, name, dim) for name, dim in (attributes or {}).items()]


def _attribute_clause(column_: ColumnElement[Any], name: str, dim: AttributeDimension) -> ColumnElement[bool]:
    kind = dim.operator
    if kind in ("INCLUSIVE", "EXCLUSIVE"):
        # One `attributes @> {"name": ["value"]}` per value: containment is what the GIN jsonb_path_ops index
        # answers, and the OR of several becomes a BitmapOr of index scans.
        found = _combine("ANY", [column_.contains({name: [value]}) for value in dim.Values])
        return found if kind == "INCLUSIVE" else not_(found)
    values = _values_of(column_, name)
    if kind == "CONTAINS":
        # strpos(), not LIKE: the needle is matched literally, '%' and '_' included.
        matched = _combine("ANY", [func.strpos(values.c.value, needle) > 0 for needle in dim.Values])
        found = exists(select(1).select_from(values).where(matched))
        if all(json_text_keeps(needle) for needle in dim.Values):
            # A needle inside a value is also inside the attribute's JSON text (see json_text_keeps): that
            # cheap test spares most endpoints the per-value scan, which still decides. CASE (not AND) makes
            # PostgreSQL test it first and keeps the planner's row estimate, hence its plans, as they were.
            whole = cast(column_[name], Text)
            hint = _combine("ANY", [func.strpos(whole, n) > 0 for n in dim.Values])
            return case((hint, found), else_=false())
        return found
    matched = _date_match(kind, _as_instant(values.c.value), dim.instants())
    return exists(select(1).select_from(values).where(matched))


def json_text_keeps(needle: str) -> bool:
    """Whether ``needle`` appears unchanged in PostgreSQL's JSON text of any value that contains it.

    ``jsonb`` output escapes only ``"``, ``\\`` and control characters (below U+0020), one character at a
    time, and writes numbers, booleans and nested values as ``jsonb_array_elements_text`` does; so a needle
    without those characters that is a substring of an element's text is a substring of the array's text.
    The converse does not hold (a needle may match across elements), hence only a pre-filter.
    """
    return not any(c in '"\\' or c < " " for c in needle)


def _values_of(column_: ColumnElement[Any], name: str) -> Any:
    """The attribute's values as a one-column (``value``) table; a missing or non-list attribute has none."""
    raw = column_[name]
    as_list = case((func.jsonb_typeof(raw) == "array", raw), else_=func.jsonb_build_array())
    return func.jsonb_array_elements_text(as_list).table_valued(column("value", Text))


def _as_instant(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """``text`` read as a timestamptz (no offset: UTC), or NULL when it is not an ISO-8601 date-time."""
    readable = func.pg_input_is_valid(text, "timestamptz")
    looks_iso = text.like("____-__-__%")
    return case(
        # Pinpoint's ISO_INSTANT form ends in Z: a LIKE is enough to let PostgreSQL parse it, and several
        # times cheaper than the regular expressions below (pg_input_is_valid still refuses the rest).
        (and_(text.like("____-__-__%Z"), readable), cast(text, _TIMESTAMPTZ)),
        (and_(looks_iso, text.regexp_match(_WITH_OFFSET), readable), cast(text, _TIMESTAMPTZ)),
        (
            and_(looks_iso, text.regexp_match(_WITHOUT_OFFSET), readable),
            func.timezone("UTC", cast(text, DateTime())),
        ),
        else_=None,
    )


def _date_match(kind: str, instant: ColumnElement[Any], bounds: list[datetime]) -> ColumnElement[bool]:
    """``instant`` within the operator's time ranges, as one ``multirange @> instant``.

    One containment test, rather than a comparison per bound, reads each attribute value once.
    """
    if kind == "BEFORE":  # before any of the values: before the latest
        ranges = [_range(None, max(bounds), "()")]
    elif kind == "AFTER":  # after any of the values: after the earliest
        ranges = [_range(min(bounds), None, "()")]
    elif kind == "ON":
        ranges = [_range(day, day + timedelta(days=1), "[)") for day in map(_utc_midnight, bounds)]
    else:
        low, high = sorted(bounds)
        ranges = [_range(low, high, "[]")]
    return func.tstzmultirange(*ranges).op("@>", return_type=Boolean)(instant)


def _range(low: datetime | None, high: datetime | None, bounds: str) -> ColumnElement[Any]:
    """``tstzrange(low, high, bounds)``; ``None`` is unbounded."""
    return func.tstzrange(_timestamptz(low), _timestamptz(high), bounds)


def _timestamptz(moment: datetime | None) -> ColumnElement[Any]:
    return cast(null(), _TIMESTAMPTZ) if moment is None else literal(moment, _TIMESTAMPTZ)


def _utc_midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# --- Metrics and Behavior ---------------------------------------------------------------------------------


def _metric_parts(metrics: dict[str, MetricDimension] | None) -> list[ColumnElement[bool]]:
    parts: list[ColumnElement[bool]] = []
    for name, dim in (metrics or {}).items():
        compare = _COMPARE[dim.ComparisonOperator]
        parts.append(_is_true(compare(_json_number(_E.metrics, name), dim.Value)))
    return parts


def _behavior_parts(behavior: SegmentBehaviors | None, now: datetime) -> list[ColumnElement[bool]]:
    if behavior is None or behavior.Recency is None:
        return []
    since = now - RECENCY_WINDOWS[behavior.Recency.Duration]
    # Last activity lives in the narrow endpoint_activity table (see touch_active); no row means never active.
    seen = endpoint_activity.c
    active = exists(
        select(1)
        .select_from(endpoint_activity)
        .where(seen.app_id == _E.app_id, seen.endpoint_id == _E.id, seen.last_active_at >= since)
    )
    if behavior.Recency.RecencyType == "ACTIVE":
        return [active]
    return [not_(active)]


# --- helpers ----------------------------------------------------------------------------------------------


def _json_number(column_: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    """``column_ -> key`` as double precision when it is a JSON number, else NULL (never a cast error)."""
    raw = column_[key]
    return case((func.jsonb_typeof(raw) == "number", cast(raw.astext, Float)), else_=None)


def _is_true(condition: ColumnElement[Any]) -> ColumnElement[bool]:
    """``condition IS TRUE``: NULL (a missing field) reads as false, so NOT stays the exact complement."""
    return condition.is_(true())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
