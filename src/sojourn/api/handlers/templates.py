"""Email templates: CreateEmailTemplate, GetEmailTemplate, UpdateEmailTemplate, DeleteEmailTemplate and
UpdateTemplateActiveVersion (for EMAIL templates). Templates are account-level, like Pinpoint's."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Row

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.handlers.apps import check_tags
from sojourn.api.server import Handler, RequestContext
from sojourn.domain.templates import TemplateSyntaxError, build_context, validate_template_source
from sojourn.store import templates_repo
from sojourn.store.endpoint_rows import iso_timestamp

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
MAX_EMAIL_CHARS = 600_000
MAX_HEADERS = 15
MAX_HEADER_NAME = 126
MAX_HEADER_VALUE = 870
_PARTS = ("Subject", "HtmlPart", "TextPart")


def check_name(name: str) -> str:
    """A template name as Pinpoint allows them.

    Raises:
        BadRequestError: the name breaks the rule, which the message spells out.
    """
    if not NAME.fullmatch(name or ""):
        raise BadRequestError(
            f"TemplateName {name!r} is invalid: a template name starts with a letter or digit and has at most 128 "
            "letters, digits, underscores (_) and hyphens (-)"
        )
    return name


def _check_source(where: str, source: str) -> None:
    try:
        validate_template_source(source)
    except TemplateSyntaxError as err:
        raise BadRequestError(f"EmailTemplateRequest.{where} is not a valid template: {err}") from None


def _check_headers(headers: list[dict[str, Any]]) -> None:
    if len(headers) > MAX_HEADERS:
        raise BadRequestError(
            f"EmailTemplateRequest.Headers: {len(headers)} headers; a template has at most {MAX_HEADERS}"
        )
    for index, header in enumerate(headers):
        name, value = str(header.get("Name") or ""), str(header.get("Value") or "")
        if not 1 <= len(name) <= MAX_HEADER_NAME:
            raise BadRequestError(
                f"EmailTemplateRequest.Headers[{index}].Name must be 1-{MAX_HEADER_NAME} characters"
            )
        if len(value) > MAX_HEADER_VALUE:
            raise BadRequestError(
                f"EmailTemplateRequest.Headers[{index}].Value has at most {MAX_HEADER_VALUE} characters"
            )
        _check_source(f"Headers[{index}].Value", value)


def template_content(request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Split an EmailTemplateRequest into the content to store and its tags, checking the content.

    Returns:
        (content without tags, tags).

    Raises:
        BadRequestError: a part does not compile, DefaultSubstitutions is not a JSON object, a limit is exceeded.
    """
    content = {k: v for k, v in request.items() if k != "tags" and v is not None}
    size = sum(len(str(content.get(part) or "")) for part in _PARTS)
    if size > MAX_EMAIL_CHARS:
        raise BadRequestError(
            f"The email template has {size} characters in Subject, HtmlPart and TextPart; at most {MAX_EMAIL_CHARS}"
        )
    for part in _PARTS:
        if content.get(part):
            _check_source(part, str(content[part]))
    _check_headers(list(content.get("Headers") or []))
    if content.get("DefaultSubstitutions"):
        try:
            build_context({}, default_substitutions=str(content["DefaultSubstitutions"]))
        except ValueError as err:
            raise BadRequestError(f"EmailTemplateRequest.DefaultSubstitutions: {err}") from None
    return content, check_tags(request.get("tags") or {})


def version_param(raw: Any) -> int | None:
    """The Version query parameter as a number, or None when absent.

    Raises:
        BadRequestError: not a version number.
    """
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise BadRequestError(f"Version must be a template version number such as 1, not {raw!r}")
    return int(text)


def email_template_response(row: Row[Any], region: str) -> dict[str, Any]:
    """A template version row (see ``templates_repo.get_version``) as Pinpoint's EmailTemplateResponse."""
    return {
        **dict(row.content),
        "TemplateName": row.name,
        "TemplateType": templates_repo.EMAIL,
        "Version": str(row.version),
        "Arn": templates_repo.template_arn(region, row.name),
        "tags": dict(row.tags or {}),
        "CreationDate": iso_timestamp(row.created_at),
        "LastModifiedDate": iso_timestamp(row.updated_at),
    }


def _message(ctx: RequestContext, message: str) -> dict[str, Any]:
    return {"MessageBody": {"Message": message, "RequestID": ctx.request_id}}


async def create_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateEmailTemplate: version 1, which is also the active version."""
    name = check_name(params["TemplateName"])
    content, tags = template_content(params["EmailTemplateRequest"])
    async with ctx.state.db.begin() as conn:
        await templates_repo.create_email_template(conn, name, content, tags)
    arn = templates_repo.template_arn(ctx.state.settings.region, name)
    return {"CreateTemplateMessageBody": {"Arn": arn, "Message": "Created", "RequestID": ctx.request_id}}


async def get_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetEmailTemplate: the given version, or the active one."""
    name = params["TemplateName"]
    version = version_param(params.get("Version"))
    async with ctx.state.db.connect() as conn:
        row = await templates_repo.get_version(conn, name, version)
    if row is None:
        suffix = f" version {version}" if version is not None else ""
        raise NotFoundError(f"Email template {name}{suffix} not found")
    return {"EmailTemplateResponse": email_template_response(row, ctx.state.settings.region)}


async def update_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateEmailTemplate: overwrite the latest version, or add one with CreateNewVersion=true.

    Tags in the request are ignored, as Pinpoint has ignored them on updates since 2023.
    """
    name = params["TemplateName"]
    version = version_param(params.get("Version"))
    create_new = bool(params.get("CreateNewVersion"))
    if create_new and version is not None:
        raise BadRequestError(
            "Give either CreateNewVersion=true or Version, not both: a new version gets the next number"
        )
    content, _tags = template_content(params["EmailTemplateRequest"])
    async with ctx.state.db.begin() as conn:
        await templates_repo.update_email_template(
            conn, name, content, create_new_version=create_new, version=version
        )
    return _message(ctx, "Accepted")


async def delete_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteEmailTemplate: every version, or just Version."""
    version = version_param(params.get("Version"))
    async with ctx.state.db.begin() as conn:
        await templates_repo.delete_email_template(conn, params["TemplateName"], version)
    return _message(ctx, "Accepted")


async def update_template_active_version(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateTemplateActiveVersion (EMAIL, SMS, PUSH, VOICE, INAPP): the version used when none is named."""
    template_type = str(params["TemplateType"]).upper()
    if template_type not in templates_repo.TEMPLATE_TYPES:
        raise BadRequestError(
            f"TemplateType {params['TemplateType']!r} is not supported: use one of "
            f"{', '.join(templates_repo.TEMPLATE_TYPES)}"
        )
    raw = str((params.get("TemplateActiveVersionRequest") or {}).get("Version") or "")
    if not raw:
        raise BadRequestError(
            "TemplateActiveVersionRequest.Version is required: a version number or 'latest'"
        )
    version = None if raw == "latest" else version_param(raw)
    async with ctx.state.db.begin() as conn:
        await templates_repo.set_active_version(
            conn, params["TemplateName"], version, template_type=template_type
        )
    return _message(ctx, "Accepted")


HANDLERS: dict[str, Handler] = {
    "CreateEmailTemplate": create_email_template,
    "GetEmailTemplate": get_email_template,
    "UpdateEmailTemplate": update_email_template,
    "DeleteEmailTemplate": delete_email_template,
    "UpdateTemplateActiveVersion": update_template_active_version,
}
