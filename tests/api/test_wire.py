"""parse_request / serialize_response on real Pinpoint and SESv2 operations.

Requests are produced by botocore's own rest-json serializer and responses read back with botocore's
own parser, so these tests check wire compatibility with boto3, not just our idea of it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import HeadersDict
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from sojourn.api.errors import BadRequestError, PayloadTooLargeError
from sojourn.api.service_model import Router, load_service
from sojourn.api.wire import MAX_BODY_BYTES, parse_request, serialize_response

ROUTER = Router(["pinpoint", "sesv2"])


def via_botocore(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Serialize ``params`` as boto3 would send them, route the request and parse it back."""
    op = load_service(service).operation_model(operation)
    request = create_serializer("rest-json", include_validation=True).serialize_to_request(params, op)
    query: list[tuple[str, str]] = []
    for key, value in request["query_string"].items():
        query.extend((key, str(v)) for v in (value if isinstance(value, list) else [value]))
    matched, path_params = ROUTER.match(request["method"], request["url_path"], query)
    assert matched is op
    return parse_request(op, path_params, query, request["headers"], request["body"])


def parse_body(service: str, operation: str, path_params: dict[str, str], body: Any) -> dict[str, Any]:
    """Parse a hand-written JSON body (for inputs boto3's client-side validation would refuse)."""
    op = load_service(service).operation_model(operation)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(op, path_params, [], {}, raw)


def as_boto3_reads_it(service: str, operation: str, output: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Serialize a handler's output and parse the response with botocore's rest-json parser."""
    op = load_service(service).operation_model(operation)
    status, headers, body = serialize_response(op, output)
    response = {"status_code": status, "headers": HeadersDict(headers), "body": body}
    parsed = create_parser("rest-json").parse(response, op.output_shape)
    parsed.pop("ResponseMetadata", None)
    return status, parsed


# --- parse_request ----------------------------------------------------------------------------------


def test_create_app_payload_is_the_body() -> None:
    params = {"CreateApplicationRequest": {"Name": "shop", "tags": {"team": "growth"}}}
    assert via_botocore("pinpoint", "CreateApp", params) == params


def test_update_endpoint_reads_labels_and_nested_payload() -> None:
    request = {
        "Address": "ada@example.com",
        "ChannelType": "EMAIL",
        "Attributes": {"plan": ["pro"], "interests": ["tea", "chess"]},
        "Location": {"Country": "GB", "Latitude": 51.5, "Longitude": -0.12},
        "Metrics": {"visits": 3},
        "User": {"UserId": "u/1 é", "UserAttributes": {"name": ["Ada"]}},
    }
    params = {"ApplicationId": "app-1", "EndpointId": "ep/with space%and é", "EndpointRequest": request}
    parsed = via_botocore("pinpoint", "UpdateEndpoint", params)
    assert parsed["ApplicationId"] == "app-1"
    assert parsed["EndpointId"] == "ep/with space%and é"
    assert parsed["EndpointRequest"]["Metrics"] == {"visits": 3.0}
    assert isinstance(parsed["EndpointRequest"]["Metrics"]["visits"], float)
    assert parsed["EndpointRequest"]["User"] == request["User"]


def _event(i: int) -> dict[str, Any]:
    return {
        "EventType": "purchase",
        "Timestamp": "2026-01-31T09:00:00Z",
        "Attributes": {"sku": f"sku-{i}", "channel": "web"},
        "Metrics": {"amount": 9.5 + i},
        "Session": {"Id": f"s{i}", "StartTimestamp": "2026-01-31T08:59:00Z", "Duration": 60},
    }


def test_put_events_with_a_hundred_events() -> None:
    batch = {
        f"ep{i}": {
            "Endpoint": {
                "Address": f"user{i}@example.com",
                "ChannelType": "EMAIL",
                "Attributes": {"x": ["1"]},
            },
            "Events": {f"ev{i}": _event(i)},
        }
        for i in range(100)
    }
    params = {"ApplicationId": "app", "EventsRequest": {"BatchItem": batch}}
    parsed = via_botocore("pinpoint", "PutEvents", params)
    assert parsed["EventsRequest"]["BatchItem"]["ep42"]["Events"]["ev42"]["Metrics"] == {"amount": 51.5}
    assert parsed["EventsRequest"]["BatchItem"]["ep7"]["Events"]["ev7"]["Session"]["Duration"] == 60

    # Hot path: compiled decoders keep a 100-event batch far below a millisecond per event.
    op = load_service("pinpoint").operation_model("PutEvents")
    body = json.dumps(params["EventsRequest"]).encode()
    started = time.perf_counter()
    for _ in range(20):
        parse_request(op, {"application-id": "app"}, [], {}, body)
    assert (time.perf_counter() - started) / 20 < 0.05


def test_create_journey_nested_activities_and_iso_timestamps() -> None:
    journey = {
        "Name": "welcome",
        "State": "DRAFT",
        "LocalTime": True,
        "Limits": {"DailyCap": 2, "EndpointReentryCap": 1},
        "Schedule": {"StartTime": datetime(2026, 1, 31, 9, 0, tzinfo=UTC), "Timezone": "UTC"},
        "StartActivity": "welcome",
        "Activities": {
            "welcome": {"EMAIL": {"TemplateName": "hello", "NextActivity": "pause"}},
            "pause": {"Wait": {"WaitTime": {"WaitFor": "P1D"}, "NextActivity": "split"}},
            "split": {
                "ConditionalSplit": {
                    "Condition": {
                        "Conditions": [{"EventCondition": {"MessageActivity": "welcome"}}],
                        "Operator": "ANY",
                    },
                    "TrueActivity": "welcome",
                }
            },
        },
    }
    parsed = via_botocore("pinpoint", "CreateJourney", {"ApplicationId": "a", "WriteJourneyRequest": journey})
    written = parsed["WriteJourneyRequest"]
    assert written["Schedule"]["StartTime"] == datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    assert written["Activities"] == journey["Activities"]
    assert written["Limits"] == {"DailyCap": 2, "EndpointReentryCap": 1}


def test_body_timestamps_may_be_epoch_numbers() -> None:
    parsed = parse_body(
        "pinpoint",
        "CreateJourney",
        {"application-id": "a"},
        {"Name": "j", "Schedule": {"StartTime": 1769850000, "EndTime": "2026-02-01T00:00:00+01:00"}},
    )
    schedule = parsed["WriteJourneyRequest"]["Schedule"]
    assert schedule["StartTime"] == datetime.fromtimestamp(1769850000, UTC)
    assert schedule["EndTime"] == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)


def test_get_journey_execution_metrics_reads_the_query() -> None:
    params = {"ApplicationId": "a", "JourneyId": "j", "NextToken": "tok+/=", "PageSize": "25"}
    assert via_botocore("pinpoint", "GetJourneyExecutionMetrics", params) == params


def test_delete_user_endpoints_has_no_body() -> None:
    params = {"ApplicationId": "a", "UserId": "user:42/x"}
    assert via_botocore("pinpoint", "DeleteUserEndpoints", params) == params


def test_repeated_query_parameters_make_a_list() -> None:
    arn = "arn:aws:mobiletargeting:us-east-1:123456789012:apps/abc"
    params = {"ResourceArn": arn, "TagKeys": ["team", "cost center"]}
    assert via_botocore("pinpoint", "UntagResource", params) == params


def test_query_values_are_converted_to_their_types() -> None:
    parsed = via_botocore(
        "sesv2",
        "ListSuppressedDestinations",
        {
            "PageSize": 50,
            "Reasons": ["BOUNCE", "COMPLAINT"],
            "StartDate": datetime(2026, 1, 1, tzinfo=UTC),
        },
    )
    assert parsed == {
        "PageSize": 50,
        "Reasons": ["BOUNCE", "COMPLAINT"],
        "StartDate": datetime(2026, 1, 1, tzinfo=UTC),
    }
    kpi = via_botocore(
        "pinpoint",
        "GetApplicationDateRangeKpi",
        {"ApplicationId": "a", "KpiName": "k", "StartTime": datetime(2026, 1, 1, 12, tzinfo=UTC)},
    )
    assert kpi["StartTime"] == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_sesv2_body_members_without_payload() -> None:
    params = {
        "FromEmailAddress": "shop@example.com",
        "Destination": {"ToAddresses": ["ada@example.com"]},
        "Content": {"Simple": {"Subject": {"Data": "Hi"}, "Body": {"Text": {"Data": "Hello"}}}},
        "EmailTags": [{"Name": "campaign", "Value": "welcome"}],
    }
    assert via_botocore("sesv2", "SendEmail", params) == params


# --- validation errors ------------------------------------------------------------------------------


def _bad(service: str, operation: str, path_params: dict[str, str], body: Any) -> str:
    with pytest.raises(BadRequestError) as info:
        parse_body(service, operation, path_params, body)
    assert info.value.status == 400 and info.value.code == "BadRequestException"
    return info.value.message


def test_wrong_type_names_the_full_path() -> None:
    body = {"Name": "j", "Activities": {"welcome": {"EMAIL": {"TemplateName": 42}}}}
    message = _bad("pinpoint", "CreateJourney", {"application-id": "a"}, body)
    assert message == "WriteJourneyRequest.Activities.welcome.EMAIL.TemplateName: expected a string, got 42"


def test_integer_given_as_a_string_is_an_error() -> None:
    message = _bad(
        "pinpoint", "CreateJourney", {"application-id": "a"}, {"Name": "j", "Limits": {"DailyCap": "2"}}
    )
    assert message == "WriteJourneyRequest.Limits.DailyCap: expected an integer, got '2'"


def test_fractional_number_for_an_integer_is_an_error() -> None:
    message = _bad(
        "pinpoint", "CreateJourney", {"application-id": "a"}, {"Name": "j", "Limits": {"DailyCap": 2.5}}
    )
    assert message == "WriteJourneyRequest.Limits.DailyCap: expected an integer, got 2.5"


def test_boolean_must_be_a_boolean() -> None:
    message = _bad("pinpoint", "CreateJourney", {"application-id": "a"}, {"Name": "j", "LocalTime": "yes"})
    assert message == "WriteJourneyRequest.LocalTime: expected true or false, got 'yes'"


def test_unknown_member_is_rejected_with_its_path() -> None:
    body = {"Name": "j", "Activities": {"w": {"EMAIL": {"TemplateNme": "x"}}}}
    message = _bad("pinpoint", "CreateJourney", {"application-id": "a"}, body)
    assert message.startswith("WriteJourneyRequest.Activities.w.EMAIL.TemplateNme: unknown field; ")
    assert "TemplateName" in message  # says what the valid fields are


def test_missing_required_member() -> None:
    message = _bad("pinpoint", "CreateApp", {}, {"tags": {}})
    assert message == "CreateApplicationRequest.Name: missing required field"
    body = {"BatchItem": {"ep": {"Endpoint": {}, "Events": {"e": {"EventType": "x"}}}}}
    message = _bad("pinpoint", "PutEvents", {"application-id": "a"}, body)
    assert message == "EventsRequest.BatchItem.ep.Events.e.Timestamp: missing required field"


def test_missing_required_payload() -> None:
    message = _bad("pinpoint", "CreateApp", {}, b"")
    assert message == "CreateApplicationRequest: missing required field; send it in the JSON request body"


def test_enum_values_are_checked() -> None:
    message = _bad("pinpoint", "CreateJourney", {"application-id": "a"}, {"Name": "j", "State": "RUNNING"})
    assert message.startswith(
        "WriteJourneyRequest.State: 'RUNNING' is not a valid value; use one of: DRAFT, ACTIVE"
    )


def test_list_items_are_indexed_in_the_path() -> None:
    body = {"FromEmailAddress": "a@b.c", "Destination": {"ToAddresses": ["ok@x.y", 7]}, "Content": {}}
    message = _bad("sesv2", "SendEmail", {}, body)
    assert message == "Destination.ToAddresses[1]: expected a string, got 7"


def test_model_bounds_are_checked() -> None:
    # SESv2's EmailTemplateName is 1-64 characters.
    message = _bad("sesv2", "CreateEmailTemplate", {}, {"TemplateName": "", "TemplateContent": {}})
    assert message == "TemplateName: must have at least 1 characters, got 0"


def test_malformed_json() -> None:
    message = _bad("pinpoint", "CreateApp", {}, b'{"Name": "x",')
    assert message.startswith("Request body is not valid JSON: ")


def test_body_must_be_an_object() -> None:
    message = _bad("pinpoint", "CreateApp", {}, b"[1, 2]")
    assert message == "CreateApplicationRequest: expected an object, got a list"


def test_bad_query_value_names_the_member() -> None:
    op = load_service("sesv2").operation_model("ListSuppressedDestinations")
    with pytest.raises(BadRequestError) as info:
        parse_request(op, {}, [("PageSize", "many")], {}, b"")
    assert info.value.message == "PageSize: expected an integer, got 'many'"
    with pytest.raises(BadRequestError) as info:
        parse_request(op, {}, [("Reason", "BOUNCE"), ("Reason", "SPAM")], {}, b"")
    assert info.value.message.startswith("Reasons: 'SPAM' is not a valid value; use one of: ")


def test_body_size_is_limited() -> None:
    op = load_service("pinpoint").operation_model("CreateApp")
    with pytest.raises(PayloadTooLargeError) as info:
        parse_request(op, {}, [], {}, b" " * (MAX_BODY_BYTES + 1))
    assert info.value.status == 413


# --- serialize_response -----------------------------------------------------------------------------


def test_create_app_response_as_boto3_reads_it() -> None:
    created = datetime(2026, 1, 31, 9, 0, 0, 123000, tzinfo=UTC)
    output = {
        "ApplicationResponse": {
            "Id": "abc",
            "Arn": "arn:aws:mobiletargeting:us-east-1:000000000000:apps/abc",
            "Name": "shop",
            "tags": {"team": "growth"},
            "CreationDate": created,  # a string in the model: sent as ISO 8601
            "Unmodeled": "dropped",
            "Missing": None,
        }
    }
    status, parsed = as_boto3_reads_it("pinpoint", "CreateApp", output)
    assert status == 201
    assert parsed == {
        "ApplicationResponse": {
            "Id": "abc",
            "Arn": "arn:aws:mobiletargeting:us-east-1:000000000000:apps/abc",
            "Name": "shop",
            "tags": {"team": "growth"},
            "CreationDate": "2026-01-31T09:00:00.123Z",
        }
    }


def test_timestamps_follow_the_member_format() -> None:
    start = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    output = {
        "JourneyResponse": {
            "Id": "j",
            "ApplicationId": "a",
            "Name": "n",
            "Schedule": {"StartTime": start},
        }
    }
    op = load_service("pinpoint").operation_model("GetJourney")
    _, _, body = serialize_response(op, output)
    assert json.loads(body)["Schedule"]["StartTime"] == "2026-01-31T09:00:00.000Z"  # __timestampIso8601
    _, parsed = as_boto3_reads_it("pinpoint", "GetJourney", output)
    assert parsed["JourneyResponse"]["Schedule"]["StartTime"] == start

    # SESv2 timestamps have no format: rest-json's default, epoch seconds.
    updated = datetime(2026, 1, 31, 9, 0, 0, 500000, tzinfo=UTC)
    suppressed = {
        "SuppressedDestination": {"EmailAddress": "a@b.c", "Reason": "BOUNCE", "LastUpdateTime": updated}
    }
    op = load_service("sesv2").operation_model("GetSuppressedDestination")
    _, _, body = serialize_response(op, suppressed)
    assert json.loads(body)["SuppressedDestination"]["LastUpdateTime"] == updated.timestamp()
    _, parsed = as_boto3_reads_it("sesv2", "GetSuppressedDestination", suppressed)
    assert parsed["SuppressedDestination"]["LastUpdateTime"] == updated


def test_status_codes_and_empty_responses() -> None:
    op = load_service("pinpoint").operation_model("UntagResource")
    assert serialize_response(op, {}) == (204, {}, b"")
    status, parsed = as_boto3_reads_it(
        "pinpoint", "DeleteUserEndpoints", {"EndpointsResponse": {"Item": [{"Id": "e1", "Address": "x@y.z"}]}}
    )
    assert status == 202
    assert parsed == {"EndpointsResponse": {"Item": [{"Id": "e1", "Address": "x@y.z"}]}}


def test_non_payload_output_members_form_the_body() -> None:
    status, parsed = as_boto3_reads_it("sesv2", "SendEmail", {"MessageId": "m-1"})
    assert (status, parsed) == (200, {"MessageId": "m-1"})


def test_serializing_a_large_response_is_fast() -> None:
    op = load_service("pinpoint").operation_model("PutEvents")
    results = {
        f"ep{i}": {
            "EndpointItemResponse": {"StatusCode": 202, "Message": "Accepted"},
            "EventsItemResponse": {},
        }
        for i in range(100)
    }
    started = time.perf_counter()
    for _ in range(20):
        _, _, body = serialize_response(op, {"EventsResponse": {"Results": results}})
    assert (time.perf_counter() - started) / 20 < 0.05
    assert json.loads(body)["Results"]["ep3"]["EndpointItemResponse"]["StatusCode"] == 202


def test_non_payload_body_must_be_an_object() -> None:
    message = _bad("sesv2", "SendEmail", {}, b'"text"')
    assert message == "Request body: expected an object, got 'text'"
