"""Dynamic segment definitions: Pinpoint's ``WriteSegmentRequest`` and its dimensions as pydantic models.

Field names are the API's own (PascalCase), so a request body validates into these models unchanged and
``model_dump(exclude_none=True, mode="json")`` gives back the wire form. Optional members the client left out
stay ``None`` (they are not filled with their defaults), so a stored definition reads back as it was written;
the defaults are applied where a definition is evaluated (``sojourn.store.segment_sql``).

The models only validate; they do no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_DIMENSIONS = 100
"""Pinpoint's quota: dimensions per segment (DG quotas.md), counted across all groups."""

DimensionKind = Literal["INCLUSIVE", "EXCLUSIVE"]
AttributeKind = Literal["INCLUSIVE", "EXCLUSIVE", "CONTAINS", "BEFORE", "AFTER", "ON", "BETWEEN"]
Comparison = Literal["GREATER_THAN", "LESS_THAN", "GREATER_THAN_OR_EQUAL", "LESS_THAN_OR_EQUAL", "EQUAL"]
RecencyWindow = Literal["HR_24", "DAY_7", "DAY_14", "DAY_30"]
RecencyKind = Literal["ACTIVE", "INACTIVE"]
Combine = Literal["ALL", "ANY", "NONE"]

DATE_OPERATORS: frozenset[str] = frozenset({"BEFORE", "AFTER", "ON", "BETWEEN"})


def parse_instant(value: str) -> datetime:
    """Parse an ISO-8601 date or date-time as an aware ``datetime``.

    ``Z`` and numeric offsets are honoured; a value without an offset, or a bare date, is read as UTC (the
    Pinpoint console's dates are 00:00 UTC).

    Args:
        value: e.g. ``2026-11-23T10:00:00Z``, ``2026-11-23T10:00:00+02:00`` or ``2026-11-23``.

    Raises:
        ValueError: ``value`` is not an ISO-8601 date or date-time.
    """
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(f"{value!r} is not an ISO-8601 date-time, e.g. 2026-11-23T10:00:00Z") from err
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class _Wire(BaseModel):
    """Base of the wire-shaped models: unknown members are refused, so a misspelt dimension is a 400
    instead of a segment that silently selects every endpoint."""

    model_config = ConfigDict(extra="forbid")


class SetDimension(_Wire):
    """A set of values to include or exclude (``DimensionType`` defaults to INCLUSIVE)."""

    DimensionType: DimensionKind | None = None
    Values: list[str]

    @property
    def inclusive(self) -> bool:
        """Whether matching endpoints are included (True) or excluded (False)."""
        return self.DimensionType != "EXCLUSIVE"


class AttributeDimension(_Wire):
    """Criteria on one custom attribute (``AttributeType`` defaults to INCLUSIVE)."""

    AttributeType: AttributeKind | None = None
    Values: list[str]

    @property
    def operator(self) -> AttributeKind:
        """The attribute type, INCLUSIVE when it was left out."""
        return self.AttributeType or "INCLUSIVE"

    @model_validator(mode="after")
    def _dates(self) -> AttributeDimension:
        op = self.operator
        if op not in DATE_OPERATORS:
            return self
        if op == "BETWEEN" and len(self.Values) != 2:
            raise ValueError(
                f"AttributeType BETWEEN needs exactly two Values (a start and an end), got {len(self.Values)}"
            )
        if not self.Values:
            raise ValueError(f"AttributeType {op} needs at least one ISO-8601 date-time in Values")
        for value in self.Values:
            try:
                parse_instant(value)
            except ValueError as err:
                raise ValueError(f"AttributeType {op}: {err}") from None
        return self

    def instants(self) -> list[datetime]:
        """The Values as aware datetimes (only meaningful for BEFORE, AFTER, ON and BETWEEN)."""
        return [parse_instant(v) for v in self.Values]


class MetricDimension(_Wire):
    """A comparison of one custom metric with a number."""

    ComparisonOperator: Comparison
    Value: float


class SegmentDemographics(_Wire):
    """Criteria on the endpoint's channel and device."""

    AppVersion: SetDimension | None = None
    Channel: SetDimension | None = None
    DeviceType: SetDimension | None = None
    Make: SetDimension | None = None
    Model: SetDimension | None = None
    Platform: SetDimension | None = None

    def dimension_count(self) -> int:
        """How many criteria are set."""
        return sum(getattr(self, name) is not None for name in type(self).model_fields)


class GPSCoordinates(_Wire):
    """A point on Earth, in degrees."""

    Latitude: float = Field(ge=-90, le=90)
    Longitude: float = Field(ge=-180, le=180)


class GPSPointDimension(_Wire):
    """Endpoints within ``RangeInKilometers`` of ``Coordinates``."""

    Coordinates: GPSCoordinates
    RangeInKilometers: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _coordinates_given(cls, data: object) -> object:
        # The default message would only say "Field required"; name what is missing and why.
        if isinstance(data, dict) and data.get("Coordinates") is None:
            raise ValueError("GPSPoint needs Coordinates {Latitude, Longitude} to measure the range from")
        return data


class SegmentLocation(_Wire):
    """Criteria on where the endpoint is."""

    Country: SetDimension | None = None
    GPSPoint: GPSPointDimension | None = None

    def dimension_count(self) -> int:
        """How many criteria are set."""
        return (self.Country is not None) + (self.GPSPoint is not None)


class RecencyDimension(_Wire):
    """Whether the endpoint was active (or not) within the last ``Duration``."""

    Duration: RecencyWindow
    RecencyType: RecencyKind


class SegmentBehaviors(_Wire):
    """Criteria on the endpoint's activity."""

    Recency: RecencyDimension | None = None


class SegmentDimensions(_Wire):
    """One block of criteria; every criterion must hold (AND), any value of a criterion may match (OR)."""

    Attributes: dict[str, AttributeDimension] | None = None
    Behavior: SegmentBehaviors | None = None
    Demographic: SegmentDemographics | None = None
    Location: SegmentLocation | None = None
    Metrics: dict[str, MetricDimension] | None = None
    UserAttributes: dict[str, AttributeDimension] | None = None

    def dimension_count(self) -> int:
        """How many criteria the block sets: each attribute, metric, demographic and location criterion."""
        count = len(self.Attributes or {}) + len(self.UserAttributes or {}) + len(self.Metrics or {})
        count += self.Demographic.dimension_count() if self.Demographic else 0
        count += self.Location.dimension_count() if self.Location else 0
        count += 1 if self.Behavior is not None and self.Behavior.Recency is not None else 0
        return count

    @model_validator(mode="after")
    def _limit(self) -> SegmentDimensions:
        _check_limit(self.dimension_count())
        return self


class SegmentReference(_Wire):
    """A segment by id, at a version (``None``: its latest version)."""

    Id: str = Field(min_length=1)
    Version: int | None = Field(default=None, ge=1)


class SegmentGroup(_Wire):
    """Base segments (combined by ``SourceType``) narrowed by dimension blocks (combined by ``Type``).

    With no ``SourceSegments`` the base is every endpoint of the app; with no ``Dimensions`` there is no filter.
    """

    Dimensions: list[SegmentDimensions] | None = None
    SourceSegments: list[SegmentReference] | None = None
    SourceType: Combine | None = None
    Type: Combine | None = None

    def dimension_count(self) -> int:
        """How many criteria the group's dimension blocks set."""
        return sum(d.dimension_count() for d in self.Dimensions or [])


class SegmentGroupList(_Wire):
    """Segment groups, combined by ``Include`` (ALL: and, ANY: or, NONE: in none of them)."""

    Groups: list[SegmentGroup] | None = None
    Include: Combine | None = None

    def dimension_count(self) -> int:
        """How many criteria all groups set."""
        return sum(g.dimension_count() for g in self.Groups or [])


class WriteSegmentRequest(_Wire):
    """The body of CreateSegment and UpdateSegment: either ``Dimensions`` or ``SegmentGroups``, never both.

    With neither, the segment is every endpoint of the app.
    """

    Name: str | None = None
    Dimensions: SegmentDimensions | None = None
    SegmentGroups: SegmentGroupList | None = None
    tags: dict[str, str] | None = None

    def dimension_count(self) -> int:
        """How many criteria the segment sets, across all its groups."""
        if self.Dimensions is not None:
            return self.Dimensions.dimension_count()
        return self.SegmentGroups.dimension_count() if self.SegmentGroups is not None else 0

    @model_validator(mode="after")
    def _shape(self) -> WriteSegmentRequest:
        if self.Dimensions is not None and self.SegmentGroups is not None:
            raise ValueError("a segment takes either Dimensions or SegmentGroups, not both")
        _check_limit(self.dimension_count())
        return self

    def source_segments(self) -> list[SegmentReference]:
        """Every segment this one is built on (its groups' ``SourceSegments``)."""
        groups = (self.SegmentGroups.Groups or []) if self.SegmentGroups is not None else []
        return [ref for g in groups for ref in g.SourceSegments or []]


def _check_limit(count: int) -> None:
    if count > MAX_DIMENSIONS:
        raise ValueError(f"a segment can have at most {MAX_DIMENSIONS} dimensions, this one has {count}")
