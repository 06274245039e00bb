"""Segment definition models: wire round-trips and validation messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.session
import pytest
from botocore import serialize
from pydantic import ValidationError

from sojourn.domain.segments import (
    MAX_DIMENSIONS,
    AttributeDimension,
    GPSPointDimension,
    SegmentDimensions,
    SegmentReference,
    SetDimension,
    WriteSegmentRequest,
    parse_instant,
)

EVERY_DIMENSION: dict[str, Any] = {
    "Attributes": {
        "plan": {"AttributeType": "INCLUSIVE", "Values": ["gold", "silver"]},
        "nickname": {"AttributeType": "CONTAINS", "Values": ["Ab"]},
        "signup": {"AttributeType": "BETWEEN", "Values": ["2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z"]},
        "renewal": {"AttributeType": "ON", "Values": ["2025-06-01T00:00:00.000Z"]},
    },
    "UserAttributes": {"team": {"AttributeType": "EXCLUSIVE", "Values": ["red"]}},
    "Behavior": {"Recency": {"Duration": "DAY_7", "RecencyType": "ACTIVE"}},
    "Demographic": {
        "AppVersion": {"DimensionType": "INCLUSIVE", "Values": ["1.2.3"]},
        "Channel": {"DimensionType": "INCLUSIVE", "Values": ["EMAIL", "SMS"]},
        "DeviceType": {"DimensionType": "EXCLUSIVE", "Values": ["TABLET"]},
        "Make": {"Values": ["Apple"]},
        "Model": {"Values": ["iPhone"]},
        "Platform": {"DimensionType": "EXCLUSIVE", "Values": ["android"]},
    },
    "Location": {
        "Country": {"DimensionType": "INCLUSIVE", "Values": ["US", "CA"]},
        "GPSPoint": {"Coordinates": {"Latitude": 47.6, "Longitude": -122.3}, "RangeInKilometers": 25.0},
    },
    "Metrics": {"score": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 4.5}},
}

GROUPED: dict[str, Any] = {
    "Name": "engaged-but-not-vip",
    "SegmentGroups": {
        "Include": "ALL",
        "Groups": [
            {
                "SourceSegments": [{"Id": "a1b2c3"}, {"Id": "d4e5f6", "Version": 3}],
                "SourceType": "ANY",
                "Type": "ALL",
                "Dimensions": [
                    {"Behavior": {"Recency": {"Duration": "DAY_30", "RecencyType": "ACTIVE"}}},
                    {"Demographic": {"Channel": {"Values": ["EMAIL"]}}},
                ],
            },
            {"Type": "NONE", "Dimensions": [{"Attributes": {"tier": {"Values": ["vip"]}}}]},
        ],
    },
    "tags": {"team": "growth"},
}


def boto3_body(request: dict[str, Any]) -> dict[str, Any]:
    """The JSON body boto3 sends for CreateSegment with this WriteSegmentRequest (botocore's own serializer)."""
    model = botocore.session.get_session().get_service_model("pinpoint")
    serializer = serialize.create_serializer(model.metadata["protocol"])
    params = {"ApplicationId": "app", "WriteSegmentRequest": request}
    http = serializer.serialize_to_request(params, model.operation_model("CreateSegment"))
    body: dict[str, Any] = json.loads(http["body"])
    return body


@pytest.mark.parametrize(
    "request_",
    [
        {"Name": "everything", "Dimensions": EVERY_DIMENSION, "tags": {"k": "v"}},
        GROUPED,
        {"Name": "all endpoints", "Dimensions": {}},
        {"Name": "no criteria"},
    ],
    ids=["dimensions", "groups", "empty-dimensions", "bare"],
)
def test_boto3_request_bodies_round_trip(request_: dict[str, Any]) -> None:
    body = boto3_body(request_)
    model = WriteSegmentRequest.model_validate(body)
    assert model.model_dump(exclude_none=True, mode="json") == body
    # And once more from the dump: what we store reads back to the same model.
    assert WriteSegmentRequest.model_validate(model.model_dump(exclude_none=True, mode="json")) == model


def test_integers_where_doubles_are_expected_read_as_numbers() -> None:
    dims = SegmentDimensions.model_validate({"Metrics": {"m": {"ComparisonOperator": "EQUAL", "Value": 5}}})
    assert dims.model_dump(exclude_none=True, mode="json") == {
        "Metrics": {"m": {"ComparisonOperator": "EQUAL", "Value": 5.0}}
    }


def test_left_out_types_stay_unset_but_read_as_inclusive() -> None:
    dim = AttributeDimension.model_validate({"Values": ["x"]})
    assert dim.AttributeType is None and dim.operator == "INCLUSIVE"
    assert SetDimension(Values=["x"]).inclusive
    assert not SetDimension(DimensionType="EXCLUSIVE", Values=["x"]).inclusive


def test_dimensions_and_groups_are_mutually_exclusive() -> None:
    with pytest.raises(ValidationError, match="either Dimensions or SegmentGroups, not both"):
        WriteSegmentRequest.model_validate({"Dimensions": {}, "SegmentGroups": {"Groups": []}})


@pytest.mark.parametrize("values", [["2024-01-01T00:00:00Z"], ["2024-01-01T00:00:00Z"] * 3, []])
def test_between_needs_exactly_two_values(values: list[str]) -> None:
    with pytest.raises(ValidationError, match="BETWEEN needs exactly two Values"):
        AttributeDimension.model_validate({"AttributeType": "BETWEEN", "Values": values})


@pytest.mark.parametrize("kind", ["BEFORE", "AFTER", "ON", "BETWEEN"])
def test_date_operators_need_iso_instants(kind: str) -> None:
    values = ["2024-01-01T00:00:00Z", "next tuesday"]
    with pytest.raises(
        ValidationError, match=rf"AttributeType {kind}: 'next tuesday' is not an ISO-8601 date-time"
    ):
        AttributeDimension.model_validate({"AttributeType": kind, "Values": values})


def test_date_operators_need_a_value() -> None:
    with pytest.raises(ValidationError, match="BEFORE needs at least one ISO-8601 date-time"):
        AttributeDimension.model_validate({"AttributeType": "BEFORE", "Values": []})


def test_non_date_operators_take_any_strings() -> None:
    for kind in ("INCLUSIVE", "EXCLUSIVE", "CONTAINS"):
        AttributeDimension.model_validate({"AttributeType": kind, "Values": ["next tuesday"]})


def test_date_values_are_read_as_instants() -> None:
    dim = AttributeDimension.model_validate(
        {"AttributeType": "BETWEEN", "Values": ["2024-01-01T10:00:00+02:00", "2024-01-02"]}
    )
    assert dim.instants() == [datetime(2024, 1, 1, 8, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:00Z", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T10:00:00.250Z", datetime(2026, 11, 23, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2026-11-23T10:00:00-05:00", datetime(2026, 11, 23, 10, tzinfo=timezone(timedelta(hours=-5)))),
        ("2026-11-23T10:00:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23", datetime(2026, 11, 23, tzinfo=UTC)),
    ],
)
def test_parse_instant(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


def test_unknown_members_are_refused() -> None:
    with pytest.raises(ValidationError, match="Attribute\n  Extra inputs are not permitted"):
        SegmentDimensions.model_validate({"Attribute": {"plan": {"Values": ["gold"]}}})


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (
            {"Attributes": {"a": {"AttributeType": "STARTS_WITH", "Values": ["x"]}}},
            "Attributes.a.AttributeType",
        ),
        ({"Metrics": {"m": {"ComparisonOperator": "GT", "Value": 1}}}, "Metrics.m.ComparisonOperator"),
        ({"Metrics": {"m": {"ComparisonOperator": "EQUAL"}}}, "Metrics.m.Value"),
        (
            {"Behavior": {"Recency": {"Duration": "DAY_90", "RecencyType": "ACTIVE"}}},
            "Behavior.Recency.Duration",
        ),
        (
            {"Demographic": {"Platform": {"DimensionType": "CONTAINS", "Values": ["x"]}}},
            "Demographic.Platform",
        ),
        ({"Demographic": {"Platform": {"DimensionType": "INCLUSIVE"}}}, "Demographic.Platform.Values"),
    ],
)
def test_bad_values_name_the_member(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        SegmentDimensions.model_validate(raw)
    assert where in str(info.value)


def test_gps_point_needs_coordinates() -> None:
    with pytest.raises(ValidationError, match=r"GPSPoint needs Coordinates \{Latitude, Longitude\}"):
        GPSPointDimension.model_validate({"RangeInKilometers": 10})
    with pytest.raises(ValidationError, match="GPSPoint needs Coordinates"):
        SegmentDimensions.model_validate({"Location": {"GPSPoint": {"Coordinates": None}}})
    with pytest.raises(ValidationError, match=r"Coordinates\.Longitude\n  Field required"):
        GPSPointDimension.model_validate({"Coordinates": {"Latitude": 1.0}})


@pytest.mark.parametrize(
    "raw",
    [
        {"Coordinates": {"Latitude": 91, "Longitude": 0}},
        {"Coordinates": {"Latitude": 0, "Longitude": -180.5}},
        {"Coordinates": {"Latitude": 0, "Longitude": 0}, "RangeInKilometers": 0},
    ],
)
def test_gps_point_ranges(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GPSPointDimension.model_validate(raw)


def _attributes(n: int) -> dict[str, Any]:
    return {"Attributes": {f"a{i}": {"Values": ["x"]} for i in range(n)}}


def test_at_most_100_dimensions_in_one_block() -> None:
    SegmentDimensions.model_validate(_attributes(MAX_DIMENSIONS))
    with pytest.raises(ValidationError, match="at most 100 dimensions, this one has 101"):
        SegmentDimensions.model_validate(_attributes(MAX_DIMENSIONS + 1))


def test_at_most_100_dimensions_across_groups() -> None:
    groups = {
        "Groups": [{"Dimensions": [_attributes(40), _attributes(40)]}, {"Dimensions": [_attributes(21)]}]
    }
    with pytest.raises(ValidationError, match="at most 100 dimensions, this one has 101"):
        WriteSegmentRequest.model_validate({"SegmentGroups": groups})


def test_dimension_count_counts_every_criterion() -> None:
    assert SegmentDimensions.model_validate(EVERY_DIMENSION).dimension_count() == 4 + 1 + 1 + 6 + 2 + 1
    assert WriteSegmentRequest.model_validate(GROUPED).dimension_count() == 3


def test_source_segments_are_listed() -> None:
    request = WriteSegmentRequest.model_validate(GROUPED)
    assert request.source_segments() == [
        SegmentReference(Id="a1b2c3"),
        SegmentReference(Id="d4e5f6", Version=3),
    ]
    assert WriteSegmentRequest.model_validate({"Dimensions": {}}).source_segments() == []


def test_segment_references_need_an_id() -> None:
    with pytest.raises(ValidationError, match=r"SourceSegments\.0\.Id"):
        WriteSegmentRequest.model_validate(
            {"SegmentGroups": {"Groups": [{"SourceSegments": [{"Version": 1}]}]}}
        )
