"""SMS, push, voice and in-app templates (Create/Get/Update/Delete{Sms,Push,Voice,InApp}Template), ListTemplates
and ListTemplateVersions, on the one account-level template store the email templates use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.api.handlers.apps import check_tags
from sojourn.api.handlers.templates import check_name, version_param
from sojourn.api.server import Handler, RequestContext
from sojourn.domain.lists import ListRuleError, decode_page_token, encode_page_token, page_size
from sojourn.domain.message_templates import (
    TemplateRuleError,
    check_in_app_template,
    check_push_template,
    check_sms_template,
    check_voice_template,
)
from sojourn.store import templates_repo
from sojourn.store.endpoint_rows import iso_timestamp

LIST_PAGE_DEFAULT = 20
LIST_PAGE_MAX = 100


class _Kind:
    """How one template type appears on the wire."""

    def __init__(
        self,
        word: str,
        template_type: str,
        request_field: str,
        response_field: str,
        check: Callable[[Mapping[str, Any]], None],
        created_field: str = "CreateTemplateMessageBody",
    ) -> None:
        self.word = word  # as in the operation names: Create{word}Template
        self.template_type = template_type
        self.request_field = request_field
        self.response_field = response_field
        self.check = check
        self.created_field = created_field


SMS = _Kind("Sms", "SMS", "SMSTemplateRequest", "SMSTemplateResponse", check_sms_template)
PUSH = _Kind(
    "Push", "PUSH", "PushNotificationTemplateRequest", "PushNotificationTemplateResponse", check_push_template
)
VOICE = _Kind("Voice", "VOICE", "VoiceTemplateRequest", "VoiceTemplateResponse", check_voice_template)
# CreateInAppTemplate answers TemplateCreateMessageBody where the others answer CreateTemplateMessageBody.
INAPP = _Kind(
    "InApp",
    "INAPP",
    "InAppTemplateRequest",
    "InAppTemplateResponse",
    check_in_app_template,
    "TemplateCreateMessageBody",
)
KINDS = {kind.word: kind for kind in (SMS, PUSH, VOICE, INAPP)}


def _content(kind: _Kind, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    request = params.get(kind.request_field)
    if not isinstance(request, Mapping):
        raise BadRequestError(f"{kind.request_field} is required")
    content = {k: v for k, v in request.items() if k != "tags" and v is not None}
    try:
        kind.check(content)
    except TemplateRuleError as err:
        raise BadRequestError(str(err)) from None
    return content, check_tags(request.get("tags") or {})


def template_response(row: Row[Any], template_type: str, region: str) -> dict[str, Any]:
    """A template version row (``templates_repo.get_version``) as Pinpoint's {SMS,PushNotification,Voice}TemplateResponse."""
    return {
        **dict(row.content),
        "TemplateName": row.name,
        "TemplateType": template_type,
        "Version": str(row.version),
        "Arn": templates_repo.template_arn(region, row.name, template_type),
        "tags": dict(row.tags or {}),
        "CreationDate": iso_timestamp(row.created_at),
        "LastModifiedDate": iso_timestamp(row.updated_at),
    }


def _message(ctx: RequestContext, message: str) -> dict[str, Any]:
    return {"MessageBody": {"Message": message, "RequestID": ctx.request_id}}


def _create(kind: _Kind) -> Handler:
    async def create(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = check_name(params["TemplateName"])
        content, tags = _content(kind, params)
        async with ctx.state.db.begin() as conn:
            await templates_repo.create_email_template(
                conn, name, content, tags, template_type=kind.template_type
            )
        arn = templates_repo.template_arn(ctx.state.settings.region, name, kind.template_type)
        return {kind.created_field: {"Arn": arn, "Message": "Created", "RequestID": ctx.request_id}}

    create.__doc__ = f"Create{kind.word}Template: version 1, also the active version."
    return create


def _get(kind: _Kind) -> Handler:
    async def get(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TemplateName"]
        version = version_param(params.get("Version"))
        async with ctx.state.db.connect() as conn:
            row = await templates_repo.get_version(conn, name, version, template_type=kind.template_type)
        if row is None:
            suffix = f" version {version}" if version is not None else ""
            word = templates_repo.type_word(kind.template_type)
            raise NotFoundError(f"{word} template {name}{suffix} not found")
        return {kind.response_field: template_response(row, kind.template_type, ctx.state.settings.region)}

    get.__doc__ = f"Get{kind.word}Template: the given version, or the active one."
    return get


def _update(kind: _Kind) -> Handler:
    async def update(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TemplateName"]
        version = version_param(params.get("Version"))
        create_new = bool(params.get("CreateNewVersion"))
        if create_new and version is not None:
            raise BadRequestError(
                "Give either CreateNewVersion=true or Version, not both: a new version gets the next number"
            )
        content, _tags = _content(kind, params)
        async with ctx.state.db.begin() as conn:
            await templates_repo.update_email_template(
                conn,
                name,
                content,
                create_new_version=create_new,
                version=version,
                template_type=kind.template_type,
            )
        return _message(ctx, "Accepted")

    update.__doc__ = f"Update{kind.word}Template: overwrite the latest version or add one."
    return update


def _delete(kind: _Kind) -> Handler:
    async def delete(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        version = version_param(params.get("Version"))
        async with ctx.state.db.begin() as conn:
            await templates_repo.delete_email_template(
                conn, params["TemplateName"], version, template_type=kind.template_type
            )
        return _message(ctx, "Accepted")

    delete.__doc__ = f"Delete{kind.word}Template: every version, or just Version."
    return delete


def check_template_type(raw: Any) -> str:
    """A TemplateType parameter (any case) as EMAIL, SMS, PUSH, VOICE or INAPP.

    Raises:
        BadRequestError: another value.
    """
    template_type = str(raw or "").upper()
    if template_type not in templates_repo.TEMPLATE_TYPES:
        raise BadRequestError(
            f"TemplateType {raw!r} is not supported: use one of {', '.join(templates_repo.TEMPLATE_TYPES)}"
        )
    return template_type


def _page(params: Mapping[str, Any]) -> tuple[int, str | None]:
    try:
        size = page_size(params.get("PageSize"), default=LIST_PAGE_DEFAULT, maximum=LIST_PAGE_MAX)
        after = decode_page_token(params["NextToken"]) if params.get("NextToken") else None
    except ListRuleError as err:
        raise BadRequestError(str(err)) from None
    return size, after


def _summary(content: Mapping[str, Any] | None) -> dict[str, Any]:
    content = content or {}
    return {k: content[k] for k in ("DefaultSubstitutions", "TemplateDescription") if content.get(k)}


async def list_templates(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """ListTemplates: every template (or those of TemplateType, or whose name starts with Prefix), by name."""
    template_type = check_template_type(params["TemplateType"]) if params.get("TemplateType") else None
    size, after = _page(params)
    async with ctx.state.db.connect() as conn:
        rows = await templates_repo.list_templates(
            conn, template_type=template_type, prefix=params.get("Prefix"), after=after, limit=size + 1
        )
    region = ctx.state.settings.region
    items = [
        {
            **_summary(r.content),
            "TemplateName": r.name,
            "TemplateType": r.template_type,
            "Version": str(r.active_version),
            "Arn": templates_repo.template_arn(region, r.name, r.template_type),
            "tags": dict(r.tags or {}),
            "CreationDate": iso_timestamp(r.created_at),
            "LastModifiedDate": iso_timestamp(r.updated_at),
        }
        for r in rows[:size]
    ]
    out: dict[str, Any] = {"Item": items}
    if len(rows) > size:
        last = rows[size - 1]
        out["NextToken"] = encode_page_token(f"{last.name}/{last.template_type}")
    return {"TemplatesResponse": out}


async def list_template_versions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """ListTemplateVersions: the versions of one template, oldest first."""
    template_type = check_template_type(params["TemplateType"])
    name = params["TemplateName"]
    size, after = _page(params)
    if after is not None and not after.isdigit():
        raise BadRequestError("NextToken is not a token this operation returned; start without it")
    async with ctx.state.db.connect() as conn:
        rows = await templates_repo.list_template_versions(
            conn, name, template_type, after=int(after or 0), limit=size + 1
        )
    items = [
        {
            **_summary(r.content),
            "TemplateName": name,
            "TemplateType": template_type,
            "Version": str(r.version),
            "CreationDate": iso_timestamp(r.created_at),
            "LastModifiedDate": iso_timestamp(r.updated_at),
        }
        for r in rows[:size]
    ]
    out: dict[str, Any] = {"Item": items, "RequestID": ctx.request_id}
    if len(rows) > size:
        out["NextToken"] = encode_page_token(str(rows[size - 1].version))
    return {"TemplateVersionsResponse": out}


HANDLERS: dict[str, Handler] = {
    **{f"Create{w}Template": _create(k) for w, k in KINDS.items()},
    **{f"Get{w}Template": _get(k) for w, k in KINDS.items()},
    **{f"Update{w}Template": _update(k) for w, k in KINDS.items()},
    **{f"Delete{w}Template": _delete(k) for w, k in KINDS.items()},
    "ListTemplates": list_templates,
    "ListTemplateVersions": list_template_versions,
}
