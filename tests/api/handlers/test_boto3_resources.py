"""A real boto3 client against the real protocol layer and handlers, served by uvicorn on a free port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sojourn.api.handlers import HANDLERS
from sojourn.api.server import build_app
from sojourn.api.state import AppState
from sojourn.settings import Settings
from sojourn.store.db import create_engine
from tests.support.api_server import serve

ACCESS_KEY_ID = "SOJOURNTESTKEY"
SECRET_ACCESS_KEY = "sojourn-test-secret"


@pytest.fixture(scope="module")
def endpoint_url(database_url: str) -> Iterator[str]:
    """The API on its own thread and event loop (so it gets its own engine, not the tests' one)."""
    state = AppState(db=create_engine(database_url, pool_size=2), settings=Settings())

    async def dispose() -> None:
        await state.db.dispose()

    app = build_app(
        services=["pinpoint", "sesv2"],
        handlers=HANDLERS,
        state=state,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        on_shutdown=[dispose],
    )
    with serve(app) as url:
        yield url


@pytest.fixture
def pinpoint(endpoint_url: str) -> Any:
    return boto3.client(
        "pinpoint",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 1}),
    )


def test_resources_round_trip(pinpoint: Any) -> None:
    app = pinpoint.create_app(CreateApplicationRequest={"Name": "boto3", "tags": {"suite": "handlers"}})
    assert app["ResponseMetadata"]["HTTPStatusCode"] == 201
    app_id = app["ApplicationResponse"]["Id"]
    assert pinpoint.get_app(ApplicationId=app_id)["ApplicationResponse"]["tags"] == {"suite": "handlers"}

    pinpoint.update_endpoint(
        ApplicationId=app_id,
        EndpointId="ep-1",
        EndpointRequest={
            "ChannelType": "EMAIL",
            "Address": "ada@example.com",
            "Attributes": {"plan": ["pro"]},
            "Metrics": {"visits": 2.0},
            "Location": {"Country": "GB", "Latitude": 51.5},
            "User": {"UserId": "ada", "UserAttributes": {"FirstName": ["Ada"]}},
        },
    )
    endpoint = pinpoint.get_endpoint(ApplicationId=app_id, EndpointId="ep-1")["EndpointResponse"]
    assert endpoint["Address"] == "ada@example.com" and endpoint["EndpointStatus"] == "ACTIVE"
    assert endpoint["Metrics"] == {"visits": 2.0} and endpoint["Location"]["Latitude"] == 51.5
    assert endpoint["CohortId"].isdigit() and endpoint["CreationDate"].endswith("Z")
    users = pinpoint.get_user_endpoints(ApplicationId=app_id, UserId="ada")["EndpointsResponse"]["Item"]
    assert [e["Id"] for e in users] == ["ep-1"] and users[0]["User"]["UserAttributes"] == {
        "FirstName": ["Ada"]
    }

    name = f"boto3-{uuid.uuid4().hex[:10]}"
    created = pinpoint.create_email_template(
        TemplateName=name,
        EmailTemplateRequest={
            "Subject": "Hi {{User.UserAttributes.FirstName}}",
            "HtmlPart": "<p>Hello</p>",
            "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "there"}',
        },
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["CreateTemplateMessageBody"]["Arn"].endswith(f":templates/{name}/EMAIL")
    template = pinpoint.get_email_template(TemplateName=name)["EmailTemplateResponse"]
    assert (
        template["Version"] == "1"
        and template["TemplateType"] == "EMAIL"
        and template["Subject"].startswith("Hi ")
    )
    pinpoint.update_email_template(
        TemplateName=name, CreateNewVersion=True, EmailTemplateRequest={"Subject": "v2"}
    )
    assert (
        pinpoint.get_email_template(TemplateName=name, Version="2")["EmailTemplateResponse"]["Subject"]
        == "v2"
    )

    channel = pinpoint.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "team@sojourn.test", "Identity": "sojourn.test", "Enabled": True},
    )
    assert channel["EmailChannelResponse"]["Platform"] == "EMAIL"
    fetched = pinpoint.get_email_channel(ApplicationId=app_id)["EmailChannelResponse"]
    assert (
        fetched["FromAddress"] == "team@sojourn.test"
        and fetched["Enabled"] is True
        and fetched["Version"] == 1
    )

    deleted = pinpoint.delete_app(ApplicationId=app_id)["ApplicationResponse"]
    assert deleted["Id"] == app_id
    with pytest.raises(pinpoint.exceptions.NotFoundException, match=f"Application {app_id} not found"):
        pinpoint.get_endpoint(ApplicationId=app_id, EndpointId="ep-1")
    pinpoint.delete_email_template(TemplateName=name)


def test_helpful_errors(pinpoint: Any) -> None:
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "errors"})["ApplicationResponse"]["Id"]

    with pytest.raises(pinpoint.exceptions.NotFoundException, match="Application nope not found"):
        pinpoint.get_app(ApplicationId="nope")
    with pytest.raises(
        pinpoint.exceptions.NotFoundException, match=f"Endpoint ghost not found in application {app_id}"
    ):
        pinpoint.get_endpoint(ApplicationId=app_id, EndpointId="ghost")
    with pytest.raises(pinpoint.exceptions.BadRequestException, match=r"ChannelType.*'FAX'"):
        pinpoint.update_endpoint(ApplicationId=app_id, EndpointId="e", EndpointRequest={"ChannelType": "FAX"})
    with pytest.raises(pinpoint.exceptions.BadRequestException, match="at most 100 are allowed"):
        pinpoint.update_endpoint(
            ApplicationId=app_id, EndpointId="e", EndpointRequest={"Attributes": {"a": ["x" * 101]}}
        )
    with pytest.raises(
        pinpoint.exceptions.BadRequestException, match="UpdateEndpointsBatch takes at most 100"
    ):
        pinpoint.update_endpoints_batch(
            ApplicationId=app_id, EndpointBatchRequest={"Item": [{"Id": str(i)} for i in range(101)]}
        )
    with pytest.raises(pinpoint.exceptions.BadRequestException, match="starts with a letter or digit"):
        pinpoint.create_email_template(TemplateName="_bad", EmailTemplateRequest={"Subject": "x"})
    with pytest.raises(pinpoint.exceptions.BadRequestException, match=r"HtmlPart is not a valid template"):
        pinpoint.create_email_template(
            TemplateName=f"t{uuid.uuid4().hex[:8]}", EmailTemplateRequest={"HtmlPart": "{{#if a}}open"}
        )
    with pytest.raises(pinpoint.exceptions.NotFoundException, match="has no email channel"):
        pinpoint.get_email_channel(ApplicationId=app_id)
    with pytest.raises(pinpoint.exceptions.BadRequestException, match="is not an email address"):
        pinpoint.update_email_channel(
            ApplicationId=app_id, EmailChannelRequest={"FromAddress": "nobody", "Identity": "x"}
        )


def test_application_settings_through_boto3(pinpoint: Any) -> None:
    app_id = pinpoint.create_app(CreateApplicationRequest={"Name": "settings"})["ApplicationResponse"]["Id"]
    written = pinpoint.update_application_settings(
        ApplicationId=app_id,
        WriteApplicationSettingsRequest={
            "Limits": {"Daily": 2, "Total": 20},
            "JourneyLimits": {"DailyCap": 1, "TimeframeCap": {"Cap": 4, "Days": 7}},
            "QuietTime": {"Start": "21:00", "End": "08:00"},
        },
    )["ApplicationSettingsResource"]
    read = pinpoint.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    assert read == written
    assert read["JourneyLimits"]["TimeframeCap"] == {"Cap": 4, "Days": 7}
    with pytest.raises(pinpoint.exceptions.BadRequestException, match=r"Limits\.Daily"):
        pinpoint.update_application_settings(
            ApplicationId=app_id, WriteApplicationSettingsRequest={"Limits": {"Daily": 500}}
        )
