"""SESv2 email templates on sojourn's one template store, so a template is usable from both APIs.

SESv2's ``TemplateContent{Subject, Text, Html}`` is stored as Pinpoint's ``Subject``/``TextPart``/``HtmlPart``.
SESv2 templates have no versions: Get and TestRender use the active version, Update overwrites the latest
version (as Pinpoint's UpdateEmailTemplate without CreateNewVersion does) and keeps the Pinpoint-only fields
(DefaultSubstitutions, Headers, TemplateDescription), Delete removes every version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

from sqlalchemy import text

from sojourn.api.errors import AlreadyExistsError, BadRequestError, NotFoundError
from sojourn.api.handlers.templates import check_name, template_content
from sojourn.api.server import Handler, RequestContext
from sojourn.domain.lists import ListRuleError, decode_page_token, encode_page_token, page_size
from sojourn.domain.templates import RenderedEmail, TemplateSyntaxError, build_context, render_email
from sojourn.store import templates_repo

# SESv2 field -> the field sojourn stores (Pinpoint's name).
SES_TO_STORED = {"Subject": "Subject", "Text": "TextPart", "Html": "HtmlPart"}
TEMPLATE_PAGE_DEFAULT = 10
TEMPLATE_PAGE_MAX = 100


def stored_from_ses(template_content_: Mapping[str, Any]) -> dict[str, Any]:
    """SESv2 TemplateContent as the stored (Pinpoint) template fields."""
    return {SES_TO_STORED[k]: v for k, v in template_content_.items() if k in SES_TO_STORED and v is not None}


def ses_from_stored(content: Mapping[str, Any]) -> dict[str, Any]:
    """Stored template fields as SESv2 TemplateContent."""
    return {k: content[v] for k, v in SES_TO_STORED.items() if content.get(v) is not None}


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(f"Email template {name!r} does not exist")


def _checked(content: dict[str, Any]) -> dict[str, Any]:
    checked, _ = template_content(content)
    return checked


async def create_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """sesv2 CreateEmailTemplate."""
    name = check_name(params["TemplateName"])
    content = _checked(stored_from_ses(params["TemplateContent"]))
    tags = {str(t.get("Key")): str(t.get("Value") or "") for t in params.get("Tags") or ()}
    async with ctx.state.db.begin() as conn:
        if await templates_repo.get_version(conn, name, None) is not None:
            raise AlreadyExistsError(
                f"Email template {name!r} already exists; change it with UpdateEmailTemplate"
            )
        await templates_repo.create_email_template(conn, name, content, tags)
    return {}


async def get_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """sesv2 GetEmailTemplate: the active version."""
    name = params["TemplateName"]
    async with ctx.state.db.connect() as conn:
        row = await templates_repo.get_version(conn, name, None)
    if row is None:
        raise _not_found(name)
    return {
        "TemplateName": row.name,
        "TemplateContent": ses_from_stored(row.content),
        "Tags": [{"Key": k, "Value": v} for k, v in sorted((row.tags or {}).items())],
    }


async def update_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """sesv2 UpdateEmailTemplate: replace Subject/Text/Html of the latest version."""
    name = params["TemplateName"]
    async with ctx.state.db.begin() as conn:
        current = await templates_repo.load_email_template(conn, name, "latest")
        if current is None:
            raise _not_found(name)
        kept = {k: v for k, v in current.items() if k not in SES_TO_STORED.values()}
        content = _checked({**kept, **stored_from_ses(params["TemplateContent"])})
        await templates_repo.update_email_template(
            conn, name, content, create_new_version=False, version=None
        )
    return {}


async def delete_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """sesv2 DeleteEmailTemplate: every version."""
    async with ctx.state.db.begin() as conn:
        await templates_repo.delete_email_template(conn, params["TemplateName"], None)
    return {}


async def list_email_templates(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """sesv2 ListEmailTemplates: by name, with an opaque NextToken."""
    try:
        size = page_size(params.get("PageSize"), default=TEMPLATE_PAGE_DEFAULT, maximum=TEMPLATE_PAGE_MAX)
        after = decode_page_token(params["NextToken"]) if params.get("NextToken") else None
    except ListRuleError as err:
        raise BadRequestError(str(err)) from None
    async with ctx.state.db.connect() as conn:
        rows = list(
            await conn.execute(
                text(
                    "SELECT name, created_at FROM templates WHERE template_type = :t "
                    "AND (CAST(:a AS text) IS NULL OR name > :a) ORDER BY name LIMIT :l"
                ),
                {"t": templates_repo.EMAIL, "a": after, "l": size + 1},
            )
        )
    out: dict[str, Any] = {
        "TemplatesMetadata": [{"TemplateName": r.name, "CreatedTimestamp": r.created_at} for r in rows[:size]]
    }
    if len(rows) > size:
        out["NextToken"] = encode_page_token(rows[size - 1].name)
    return out


def render_with_data(template: Mapping[str, Any], template_data: str | None) -> RenderedEmail:
    """Render a stored template with SES ``TemplateData`` (a JSON object; the template's defaults fill gaps).

    Raises:
        BadRequestError: TemplateData is not a JSON object, or the template does not render.
    """
    try:
        data = json.loads(template_data) if template_data else {}
    except json.JSONDecodeError as err:
        raise BadRequestError(
            f"TemplateData is not valid JSON ({err.msg}); pass a JSON object such as {{}}"
        ) from None
    if not isinstance(data, dict):
        raise BadRequestError('TemplateData must be a JSON object such as {"name": "Ada"}')
    try:
        context = build_context(data, default_substitutions=template.get("DefaultSubstitutions"))
        return render_email(template, context)
    except (TemplateSyntaxError, ValueError) as err:
        raise BadRequestError(f"The template does not render: {err}") from None


def rendered_mime(rendered: RenderedEmail) -> str:
    """A rendered template as the MIME text TestRenderEmailTemplate returns."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["Subject"] = rendered.subject
    for name, value in rendered.headers:
        msg[name] = value
    if rendered.text is not None:
        msg.set_content(rendered.text)
    if rendered.html is not None:
        if rendered.text is not None:
            msg.add_alternative(rendered.html, subtype="html")
        else:
            msg.set_content(rendered.html, subtype="html")
    return msg.as_string()


async def test_render_email_template(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """sesv2 TestRenderEmailTemplate: the active version rendered with TemplateData, as MIME."""
    name = params["TemplateName"]
    async with ctx.state.db.connect() as conn:
        template = await templates_repo.load_email_template(conn, name, None)
    if template is None:
        raise _not_found(name)
    return {"RenderedTemplate": rendered_mime(render_with_data(template, params.get("TemplateData")))}


HANDLERS: dict[str, Handler] = {
    "sesv2:CreateEmailTemplate": create_email_template,
    "sesv2:GetEmailTemplate": get_email_template,
    "sesv2:UpdateEmailTemplate": update_email_template,
    "sesv2:DeleteEmailTemplate": delete_email_template,
    "sesv2:ListEmailTemplates": list_email_templates,
    "sesv2:TestRenderEmailTemplate": test_render_email_template,
}
