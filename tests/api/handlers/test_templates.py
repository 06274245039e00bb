"""Email templates through the handlers, against a real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.state import AppState
from sojourn.store.templates_repo import load_email_template
from tests.api.handlers import call, make_state

BODY = {
    "Subject": "Hello {{User.UserAttributes.FirstName}}",
    "HtmlPart": "<p>Hi {{User.UserAttributes.FirstName}}</p>",
    "TextPart": "Hi {{User.UserAttributes.FirstName}}",
    "DefaultSubstitutions": json.dumps({"User.UserAttributes.FirstName": "there"}),
    "TemplateDescription": "welcome mail",
}


@pytest.fixture
def state(db: AsyncEngine) -> AppState:
    return make_state(db)


def unique_name() -> str:
    return f"welcome-{uuid.uuid4().hex[:12]}"


async def create(state: AppState, name: str, **overrides: Any) -> dict[str, Any]:
    return await call(
        state, "CreateEmailTemplate", TemplateName=name, EmailTemplateRequest={**BODY, **overrides}
    )


async def get(state: AppState, name: str, version: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"TemplateName": name}
    if version is not None:
        params["Version"] = version
    return dict((await call(state, "GetEmailTemplate", **params))["EmailTemplateResponse"])


async def update(state: AppState, name: str, subject: str, **params: Any) -> None:
    await call(
        state,
        "UpdateEmailTemplate",
        TemplateName=name,
        EmailTemplateRequest={**BODY, "Subject": subject},
        **params,
    )


async def test_create_and_get(state: AppState) -> None:
    name = unique_name()
    created = await create(state, name, tags={"team": "growth"})

    body = created["CreateTemplateMessageBody"]
    assert body["Arn"] == f"arn:aws:mobiletargeting:us-east-1:000000000000:templates/{name}/EMAIL"
    assert body["Message"] == "Created" and body["RequestID"]

    template = await get(state, name)
    assert (
        template["TemplateName"] == name
        and template["TemplateType"] == "EMAIL"
        and template["Version"] == "1"
    )
    for key in ("Subject", "HtmlPart", "TextPart", "DefaultSubstitutions", "TemplateDescription"):
        assert template[key] == BODY[key]
    assert template["tags"] == {"team": "growth"} and template["Arn"] == body["Arn"]
    assert template["CreationDate"].endswith("Z") and template["LastModifiedDate"].endswith("Z")


async def test_duplicate_name_is_a_bad_request(state: AppState) -> None:
    name = unique_name()
    await create(state, name)
    with pytest.raises(BadRequestError, match="Template already exists"):
        await create(state, name)


@pytest.mark.parametrize("name", ["-starts-with-hyphen", "has space", "dots.not.allowed", "x" * 129, ""])
async def test_invalid_names_are_refused(state: AppState, name: str) -> None:
    with pytest.raises(BadRequestError, match="starts with a letter or digit and has at most 128"):
        await create(state, name)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"HtmlPart": "<p>{{#if x}}never closed</p>"},
            r"EmailTemplateRequest\.HtmlPart is not a valid template",
        ),
        ({"Subject": "{{#each}}{{/if}}"}, r"EmailTemplateRequest\.Subject is not a valid template"),
        ({"DefaultSubstitutions": "{not json"}, r"DefaultSubstitutions: .*JSON object"),
        ({"DefaultSubstitutions": "[1, 2]"}, r"DefaultSubstitutions: .*JSON object"),
        (
            {"Headers": [{"Name": f"X-{i}", "Value": "v"} for i in range(16)]},
            r"16 headers; a template has at most 15",
        ),
        ({"TextPart": "x" * 600_001}, r"at most 600000"),
    ],
)
async def test_invalid_content_is_refused(state: AppState, override: dict[str, Any], message: str) -> None:
    name = unique_name()
    with pytest.raises(BadRequestError, match=message):
        await create(state, name, **override)
    with pytest.raises(NotFoundError):
        await get(state, name)


async def test_versions_overwrite_new_version_and_active(state: AppState, db: AsyncEngine) -> None:
    name = unique_name()
    await create(state, name)

    await update(state, name, "v1 edited")
    assert (await get(state, name))["Subject"] == "v1 edited"

    await update(state, name, "v2", CreateNewVersion=True)
    await update(state, name, "v2 edited", Version="2")
    # A new version is not active until made so: sends without a version keep using version 1.
    assert (await get(state, name))["Version"] == "1"
    assert (await get(state, name, "2"))["Subject"] == "v2 edited"
    async with db.connect() as conn:
        assert (await load_email_template(conn, name, None) or {})["Subject"] == "v1 edited"
        assert (await load_email_template(conn, name, "2") or {})["Subject"] == "v2 edited"
        assert (await load_email_template(conn, name, "latest") or {})["Subject"] == "v2 edited"
        assert await load_email_template(conn, name, "3") is None
        assert await load_email_template(conn, name, "bogus") is None
        assert await load_email_template(conn, "no-such-template", None) is None

    await call(
        state,
        "UpdateTemplateActiveVersion",
        TemplateName=name,
        TemplateType="EMAIL",
        TemplateActiveVersionRequest={"Version": "latest"},
    )
    assert (await get(state, name))["Version"] == "2"


async def test_update_guards(state: AppState) -> None:
    name = unique_name()
    await create(state, name)
    await update(state, name, "v2", CreateNewVersion=True)

    with pytest.raises(BadRequestError, match=r"Version 1 is not the latest version .* pass Version=2"):
        await update(state, name, "stale", Version="1")
    with pytest.raises(BadRequestError, match="either CreateNewVersion=true or Version"):
        await update(state, name, "both", Version="2", CreateNewVersion=True)
    with pytest.raises(BadRequestError, match="Version must be a template version number"):
        await get(state, name, "two")
    with pytest.raises(NotFoundError, match=f"Email template {name} version 7 not found"):
        await get(state, name, "7")
    with pytest.raises(NotFoundError, match="Email template nothing-here not found"):
        await update(state, "nothing-here", "x")
    with pytest.raises(BadRequestError, match="INBOX' is not supported"):
        await call(
            state,
            "UpdateTemplateActiveVersion",
            TemplateName=name,
            TemplateType="INBOX",
            TemplateActiveVersionRequest={"Version": "1"},
        )


async def test_version_numbers_are_never_reused(state: AppState) -> None:
    name = unique_name()
    await create(state, name)
    await update(state, name, "v2", CreateNewVersion=True)
    await call(state, "DeleteEmailTemplate", TemplateName=name, Version="2")

    await update(state, name, "v3", CreateNewVersion=True)

    assert (await get(state, name, "3"))["Subject"] == "v3"
    with pytest.raises(NotFoundError):
        await get(state, name, "2")


async def test_delete_one_version_then_all(state: AppState) -> None:
    name = unique_name()
    await create(state, name)
    await update(state, name, "v2", CreateNewVersion=True)
    await call(
        state,
        "UpdateTemplateActiveVersion",
        TemplateName=name,
        TemplateType="EMAIL",
        TemplateActiveVersionRequest={"Version": "2"},
    )

    await call(state, "DeleteEmailTemplate", TemplateName=name, Version="2")
    assert (await get(state, name))["Version"] == "1"  # the active version went: the newest left takes over

    answer = await call(state, "DeleteEmailTemplate", TemplateName=name)
    assert answer["MessageBody"]["Message"] == "Accepted"
    with pytest.raises(NotFoundError, match=f"Email template {name} not found"):
        await get(state, name)
    with pytest.raises(NotFoundError):
        await call(state, "DeleteEmailTemplate", TemplateName=name)


async def test_deleting_the_last_version_deletes_the_template(state: AppState) -> None:
    name = unique_name()
    await create(state, name)
    await call(state, "DeleteEmailTemplate", TemplateName=name, Version="1")

    with pytest.raises(NotFoundError):
        await get(state, name)
    await create(state, name)  # the name is free again
