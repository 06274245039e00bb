"""Every class of invalid journey definition, as a boto3 caller meets it: BadRequestException, saying what to fix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.handlers.test_journeys import INVALID, draft
from tests.support.api_server import boto3_client, serve_api
from tests.support.seed import PAGE

# Over the wire, an enum the botocore model defines is checked before the journey rules see the request.
WIRE_MESSAGES = {
    "unknown estimation method": "TimezoneEstimationMethods[0]: 'IP_ADDRESS' is not a valid value; use one of: PHONE_NUMBER, POSTAL_CODE",
    "open hours on an unknown day": "'FUNDAY' is not a valid value; use one of: MONDAY, TUESDAY",
}


@pytest.fixture(scope="module")
def pinpoint_app(database_url: str) -> Iterator[tuple[Any, str, str]]:
    """A boto3 pinpoint client, an app with templates welcome/tips/nudge and a segment."""
    with serve_api(database_url, smtp_url="null://") as (url, _):
        client = boto3_client("pinpoint", url)
        app_id = client.create_app(CreateApplicationRequest={"Name": "journey-errors"})[
            "ApplicationResponse"
        ]["Id"]
        for name in ("welcome", "tips", "nudge"):
            try:
                client.get_email_template(TemplateName=name)
            except client.exceptions.NotFoundException:
                client.create_email_template(
                    TemplateName=name,
                    EmailTemplateRequest={"Subject": name, "HtmlPart": PAGE.format(title=name, slug=name)},
                )
        segment_id = client.create_segment(
            ApplicationId=app_id,
            WriteSegmentRequest={
                "Name": "all",
                "Dimensions": {"Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["pro"]}}},
            },
        )["SegmentResponse"]["Id"]
        yield client, app_id, segment_id


@pytest.mark.parametrize("case", sorted(INVALID))
def test_boto3_gets_bad_request_for_each_invalid_journey(
    pinpoint_app: tuple[Any, str, str], case: str
) -> None:
    client, app_id, segment_id = pinpoint_app
    changes, message = INVALID[case]
    message = WIRE_MESSAGES.get(case, message)
    with pytest.raises(client.exceptions.BadRequestException) as err:
        client.create_journey(ApplicationId=app_id, WriteJourneyRequest=draft(segment_id, **changes))
    assert message in str(err.value)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
