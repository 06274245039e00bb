"""sesv2 email templates over HTTP with boto3, sharing the store with Pinpoint's templates."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_string
from email.policy import default as default_policy
from typing import Any

import pytest

from tests.support.api_server import boto3_client, serve_api
from tests.support.helpers import unique


@pytest.fixture(scope="module")
def clients(database_url: str) -> Iterator[tuple[Any, Any]]:
    with serve_api(database_url, smtp_url="null://") as (url, _):
        yield boto3_client("sesv2", url), boto3_client("pinpoint", url)


def test_sesv2_template_round_trip_and_render(clients: tuple[Any, Any]) -> None:
    sesv2, _ = clients
    name = unique("tpl-")
    sesv2.create_email_template(
        TemplateName=name,
        TemplateContent={"Subject": "Hi {{name}}", "Text": "Hello {{name}}", "Html": "<p>Hello {{name}}</p>"},
        Tags=[{"Key": "team", "Value": "growth"}],
    )
    got = sesv2.get_email_template(TemplateName=name)
    assert got["TemplateContent"] == {
        "Subject": "Hi {{name}}",
        "Text": "Hello {{name}}",
        "Html": "<p>Hello {{name}}</p>",
    }
    assert got["Tags"] == [{"Key": "team", "Value": "growth"}]

    rendered = sesv2.test_render_email_template(TemplateName=name, TemplateData='{"name": "Ada <3"}')
    message = message_from_string(rendered["RenderedTemplate"], policy=default_policy)
    assert message["Subject"] == "Hi Ada <3"
    assert message.get_body(("plain",)).get_content().strip() == "Hello Ada <3"  # type: ignore[union-attr]
    assert "Hello Ada &lt;3" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]

    sesv2.update_email_template(TemplateName=name, TemplateContent={"Subject": "New {{name}}", "Text": "t"})
    got = sesv2.get_email_template(TemplateName=name)
    assert got["TemplateContent"] == {"Subject": "New {{name}}", "Text": "t"}

    with pytest.raises(sesv2.exceptions.AlreadyExistsException):
        sesv2.create_email_template(TemplateName=name, TemplateContent={"Subject": "x"})
    with pytest.raises(sesv2.exceptions.BadRequestException, match="TemplateData"):
        sesv2.test_render_email_template(TemplateName=name, TemplateData="[1]")
    with pytest.raises(sesv2.exceptions.BadRequestException, match="not a valid template"):
        sesv2.create_email_template(TemplateName=unique("tpl-"), TemplateContent={"Subject": "{{#if}}"})

    sesv2.delete_email_template(TemplateName=name)
    for call in (
        lambda: sesv2.get_email_template(TemplateName=name),
        lambda: sesv2.delete_email_template(TemplateName=name),
        lambda: sesv2.update_email_template(TemplateName=name, TemplateContent={"Subject": "x"}),
        lambda: sesv2.test_render_email_template(TemplateName=name, TemplateData="{}"),
    ):
        with pytest.raises(sesv2.exceptions.NotFoundException):
            call()


def test_templates_are_shared_with_pinpoint(clients: tuple[Any, Any]) -> None:
    sesv2, pinpoint = clients
    from_ses, from_pinpoint = unique("ses-"), unique("pin-")
    sesv2.create_email_template(TemplateName=from_ses, TemplateContent={"Subject": "S", "Html": "<b>H</b>"})
    template = pinpoint.get_email_template(TemplateName=from_ses)["EmailTemplateResponse"]
    assert template["Subject"] == "S" and template["HtmlPart"] == "<b>H</b>"

    pinpoint.create_email_template(
        TemplateName=from_pinpoint,
        EmailTemplateRequest={
            "Subject": "P {{name}}",
            "TextPart": "T",
            "DefaultSubstitutions": '{"name": "friend"}',
        },
    )
    assert sesv2.get_email_template(TemplateName=from_pinpoint)["TemplateContent"] == {
        "Subject": "P {{name}}",
        "Text": "T",
    }
    # An sesv2 update keeps Pinpoint-only fields such as DefaultSubstitutions.
    sesv2.update_email_template(
        TemplateName=from_pinpoint, TemplateContent={"Subject": "Q {{name}}", "Text": "T"}
    )
    rendered = sesv2.test_render_email_template(TemplateName=from_pinpoint, TemplateData="{}")[
        "RenderedTemplate"
    ]
    assert "Subject: Q friend" in rendered


def test_list_email_templates_pages(clients: tuple[Any, Any]) -> None:
    sesv2, _ = clients
    prefix = unique("page-")
    made = [f"{prefix}-{i}" for i in range(5)]
    for name in made:
        sesv2.create_email_template(TemplateName=name, TemplateContent={"Subject": name})
    seen: list[str] = []
    kwargs: dict[str, Any] = {"PageSize": 2}
    while True:
        page = sesv2.list_email_templates(**kwargs)
        assert len(page["TemplatesMetadata"]) <= 2
        seen += [t["TemplateName"] for t in page["TemplatesMetadata"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert [s for s in seen if s.startswith(prefix)] == made and seen == sorted(seen)
    with pytest.raises(sesv2.exceptions.BadRequestException, match="PageSize"):
        sesv2.list_email_templates(PageSize=101)
