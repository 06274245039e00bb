"""The ASGI app under uvicorn, driven by real boto3 clients (and httpx for what boto3 cannot send).

The handlers here are test stand-ins: these tests are about the protocol layer (routing, SigV4,
parsing, serialization, errors), not about sojourn's behaviour.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore
import httpx
import pytest
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sojourn.api.errors import ERRORS_BY_CODE, NotFoundError
from sojourn.api.server import Handler, RequestContext, build_app
from tests.support.helpers import free_port

KEY_ID = "AKIDSOJOURNSERVER"
SECRET = "server-test-secret"
PINPOINT_ERRORS = [
    ("BadRequestException", 400),
    ("NotFoundException", 404),
    ("ConflictException", 409),
    ("ForbiddenException", 403),
    ("MethodNotAllowedException", 405),
    ("PayloadTooLargeException", 413),
    ("TooManyRequestsException", 429),
    ("InternalServerErrorException", 500),
]


@dataclass
class FakeState:
    """The ``state`` handed to build_app; the fake handlers keep their data and observations here."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[tuple[RequestContext, dict[str, Any]]] = field(default_factory=list)
    started: bool = False
    stopped: bool = False


async def create_app(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_id = uuid.uuid4().hex
    app = {
        "Id": app_id,
        "Arn": f"arn:aws:mobiletargeting:us-east-1:000000000000:apps/{app_id}",
        "Name": params["CreateApplicationRequest"]["Name"],
        "tags": params["CreateApplicationRequest"].get("tags"),
        "CreationDate": datetime(2026, 1, 31, 9, 0, tzinfo=UTC),
    }
    ctx.state.apps[app_id] = app
    return {"ApplicationResponse": app}


async def get_app(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_id = params["ApplicationId"]
    if app_id.startswith("raise-"):
        code = app_id.removeprefix("raise-")
        raise ERRORS_BY_CODE[code](f"{code} raised on purpose; fix the test input")
    if app_id == "crash":
        raise RuntimeError("secret internals must not leak")
    if app_id not in ctx.state.apps:
        raise NotFoundError(f"Application {app_id} not found; create it with CreateApp")
    return {"ApplicationResponse": ctx.state.apps[app_id]}


async def record(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ctx.state.seen.append((ctx, params))
    return {"MessageBody": {"Message": "Accepted", "RequestID": ctx.request_id}}


async def create_journey(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ctx.state.seen.append((ctx, params))
    journey = params["WriteJourneyRequest"]
    return {"JourneyResponse": {"Id": "j1", "ApplicationId": params["ApplicationId"], **journey}}


async def create_email_template_v2(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ctx.state.seen.append((ctx, params))
    return {}


async def send_email(_: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    if params["FromEmailAddress"].startswith("crash@"):
        raise RuntimeError("boom")
    return {"MessageId": "m-1"}


HANDLERS: dict[str, Handler] = {
    "CreateApp": create_app,
    "GetApp": get_app,
    "UpdateEndpoint": record,
    "CreateJourney": create_journey,
    "sesv2:CreateEmailTemplate": create_email_template_v2,
    "SendEmail": send_email,
}


async def pixel(_: Request) -> Response:
    return PlainTextResponse("pixel")


@pytest.fixture(scope="module")
def state() -> FakeState:
    return FakeState()


@pytest.fixture(scope="module")
def endpoint(state: FakeState) -> Iterator[str]:
    """The app served by uvicorn on a free 127.0.0.1 port in a background thread."""

    async def startup() -> None:
        state.started = True

    async def shutdown() -> None:
        state.stopped = True

    app = build_app(
        services=["pinpoint", "sesv2"],
        handlers=HANDLERS,
        state=state,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        extra_routes=[Route("/t/o/{token}.gif", pixel, methods=["GET"])],
        on_startup=[startup],
        on_shutdown=[shutdown],
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert state.stopped


def client(endpoint: str, service: str = "pinpoint", **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "config": Config(retries={"max_attempts": 1}),
    }
    options.update(overrides)
    return boto3.client(service, **options)


@pytest.fixture(scope="module")
def pinpoint(endpoint: str) -> Any:
    return client(endpoint)


def signed(method: str, url: str, body: bytes = b"", service: str = "mobiletargeting") -> httpx.Response:
    """Send a request signed like botocore signs it, but with any body (boto3 only sends valid JSON)."""
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(KEY_ID, SECRET), service, "us-east-1").add_auth(request)
    return httpx.request(method, url, content=body, headers=dict(request.headers.items()))


# --- the happy path ---------------------------------------------------------------------------------


def test_create_and_get_app(pinpoint: Any, state: FakeState) -> None:
    created = pinpoint.create_app(CreateApplicationRequest={"Name": "shop", "tags": {"team": "growth"}})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["ResponseMetadata"]["RequestId"]
    app = created["ApplicationResponse"]
    assert app["Name"] == "shop" and app["tags"] == {"team": "growth"}
    assert app["CreationDate"] == "2026-01-31T09:00:00.000Z"
    assert state.started

    fetched = pinpoint.get_app(ApplicationId=app["Id"])
    assert fetched["ApplicationResponse"] == app


def test_special_characters_in_labels_reach_the_handler(pinpoint: Any, state: FakeState) -> None:
    endpoint_id = "ep/1 é+%~:x"
    response = pinpoint.update_endpoint(
        ApplicationId="app 1",
        EndpointId=endpoint_id,
        EndpointRequest={"Address": "a@b.c", "ChannelType": "EMAIL"},
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    ctx, params = state.seen[-1]
    assert (ctx.operation, ctx.service, ctx.state) == ("UpdateEndpoint", "pinpoint", state)
    assert response["MessageBody"]["RequestID"] == ctx.request_id == response["ResponseMetadata"]["RequestId"]
    assert params == {
        "ApplicationId": "app 1",
        "EndpointId": endpoint_id,
        "EndpointRequest": {"Address": "a@b.c", "ChannelType": "EMAIL"},
    }


def test_timestamps_round_trip(pinpoint: Any, state: FakeState) -> None:
    start = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    response = pinpoint.create_journey(
        ApplicationId="a", WriteJourneyRequest={"Name": "j", "Schedule": {"StartTime": start}}
    )
    assert state.seen[-1][1]["WriteJourneyRequest"]["Schedule"]["StartTime"] == start
    assert response["JourneyResponse"]["Schedule"]["StartTime"] == start


def test_second_service_and_qualified_handler_keys(endpoint: str, state: FakeState) -> None:
    sesv2 = client(endpoint, "sesv2")
    sesv2.create_email_template(TemplateName="welcome", TemplateContent={"Subject": "Hi", "Text": "Hello"})
    ctx, params = state.seen[-1]
    assert (ctx.service, ctx.operation) == ("sesv2", "CreateEmailTemplate")
    assert params["TemplateContent"] == {"Subject": "Hi", "Text": "Hello"}
    assert (
        sesv2.send_email(
            FromEmailAddress="shop@example.com",
            Destination={"ToAddresses": ["a@b.c"]},
            Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}},
        )["MessageId"]
        == "m-1"
    )
    # Pinpoint's operation of the same name is a different operation, with no handler here.
    with pytest.raises(ClientError) as info:
        client(endpoint).create_email_template(TemplateName="t", EmailTemplateRequest={"Subject": "s"})
    assert info.value.response["Error"]["Code"] == "MethodNotAllowedException"


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), PINPOINT_ERRORS)
def test_modeled_errors_raise_their_boto3_class(pinpoint: Any, code: str, status: int) -> None:
    with pytest.raises(getattr(pinpoint.exceptions, code)) as info:
        pinpoint.get_app(ApplicationId=f"raise-{code}")
    error = info.value.response
    assert error["Error"]["Code"] == code
    assert error["Error"]["Message"] == f"{code} raised on purpose; fix the test input"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["ResponseMetadata"]["RequestId"]


def test_unexpected_exception_is_a_500_without_internals(pinpoint: Any) -> None:
    with pytest.raises(pinpoint.exceptions.InternalServerErrorException) as info:
        pinpoint.get_app(ApplicationId="crash")
    message = info.value.response["Error"]["Message"]
    assert "secret internals" not in message and "RuntimeError" not in message
    assert info.value.response["ResponseMetadata"]["RequestId"] in message


def test_unexpected_exception_uses_the_services_500_name(endpoint: str) -> None:
    sesv2 = client(endpoint, "sesv2")
    with pytest.raises(sesv2.exceptions.InternalServiceErrorException):
        sesv2.send_email(
            FromEmailAddress="crash@example.com",
            Destination={"ToAddresses": ["a@b.c"]},
            Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}},
        )


def test_unimplemented_operation(pinpoint: Any) -> None:
    with pytest.raises(pinpoint.exceptions.MethodNotAllowedException) as info:
        pinpoint.get_campaigns(ApplicationId="a")
    assert info.value.response["Error"]["Message"] == "sojourn does not implement GetCampaigns yet"


def test_validation_error_names_the_field(endpoint: str) -> None:
    unchecked = client(endpoint, config=Config(retries={"max_attempts": 1}, parameter_validation=False))
    with pytest.raises(unchecked.exceptions.BadRequestException) as info:
        unchecked.create_journey(
            ApplicationId="a", WriteJourneyRequest={"Name": "j", "Limits": {"DailyCap": "2"}}
        )
    assert info.value.response["Error"]["Message"] == (
        "WriteJourneyRequest.Limits.DailyCap: expected an integer, got '2'"
    )


def test_wrong_secret(endpoint: str) -> None:
    with pytest.raises(ClientError) as info:
        client(endpoint, aws_secret_access_key="wrong").get_app(ApplicationId="x")
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert info.value.response["Error"]["Message"].startswith(
        "The request signature we calculated does not match the signature you provided."
    )


def test_unknown_access_key(endpoint: str) -> None:
    with pytest.raises(ClientError) as info:
        client(endpoint, aws_access_key_id="AKIDNOBODY").get_app(ApplicationId="x")
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["Error"]["Message"].startswith(
        "The security token included in the request is invalid"
    )


def test_unsigned_request(endpoint: str) -> None:
    unsigned = client(
        endpoint, config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1})
    )
    with pytest.raises(ClientError) as info:
        unsigned.get_app(ApplicationId="x")
    assert info.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert info.value.response["Error"]["Message"].startswith("Missing Authentication Token")


def test_malformed_json(endpoint: str) -> None:
    response = signed("POST", f"{endpoint}/v1/apps", b'{"Name": "shop",')
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "BadRequestException"
    assert response.headers["x-amzn-RequestId"]
    body = response.json()
    assert body["Message"].startswith("Request body is not valid JSON: ")
    assert body["message"] == body["Message"]
    assert body["RequestID"] == response.headers["x-amzn-RequestId"]


def test_unknown_path_and_wrong_method(endpoint: str) -> None:
    response = signed("GET", f"{endpoint}/v1/nothing-here")
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (404, "NotFoundException")
    assert "No API operation matches GET /v1/nothing-here" in response.json()["Message"]
    response = signed("PATCH", f"{endpoint}/v1/apps/x")
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (405, "MethodNotAllowedException")
    assert response.json()["Message"] == "PATCH is not allowed on /v1/apps/x; this path takes DELETE or GET"


def test_body_too_large(endpoint: str) -> None:
    response = httpx.post(f"{endpoint}/v1/apps", content=b"x" * (7 * 1024 * 1024 + 1))
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (413, "PayloadTooLargeException")


def test_healthz_and_extra_routes_are_unauthenticated(endpoint: str) -> None:
    health = httpx.get(f"{endpoint}/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert health.headers["x-amzn-RequestId"]
    pixel_response = httpx.get(f"{endpoint}/t/o/abc.gif")
    assert (pixel_response.status_code, pixel_response.text) == (200, "pixel")
    assert pixel_response.headers["x-amzn-RequestId"]


def test_unknown_handler_keys_fail_at_build() -> None:
    with pytest.raises(ValueError, match="CreateAppp"):
        build_app(
            services=["pinpoint", "sesv2"],
            handlers={"CreateAppp": create_app},
            state=None,
            access_key_id="a",
            secret_access_key="b",
        )
