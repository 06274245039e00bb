"""Message templates (EMAIL, SMS, PUSH, VOICE; account-level, versioned) and the email channel of an app: what a send needs.

Versions follow Pinpoint: version 1 at create; an update overwrites the latest version or, with
CreateNewVersion, adds latest+1. ``templates.latest_version`` is the highest number ever given out, so numbers
are never reused even after versions are deleted; the version an overwrite targets is the highest one that
still exists. The active version (what a send without a version uses) changes only when set explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.store.endpoint_rows import iso_timestamp

EMAIL = "EMAIL"
#: The template types sojourn stores (INAPP templates are not supported).
TEMPLATE_TYPES = ("EMAIL", "SMS", "PUSH", "VOICE", "INAPP")
_TYPE_WORDS = {"EMAIL": "Email", "SMS": "SMS", "PUSH": "Push", "VOICE": "Voice", "INAPP": "In-app"}
MAX_VERSIONS = 5000
# Reported in EmailChannelResponse for compatibility; sojourn sends as fast as the SMTP relay accepts.
EMAIL_MESSAGES_PER_SECOND = 1000

_VERSION_ROW = """
    SELECT t.name, t.template_type, t.latest_version, t.active_version, t.tags, t.created_at,
           v.version, v.content, v.updated_at
    FROM templates t JOIN template_versions v ON v.name = t.name AND v.template_type = t.template_type
    WHERE t.name = :n AND t.template_type = :t AND v.version = {version}
"""


def template_arn(region: str, name: str, template_type: str = EMAIL) -> str:
    """The ARN Pinpoint gives a message template."""
    return f"arn:aws:mobiletargeting:{region}:000000000000:templates/{name}/{template_type}"


def type_word(template_type: str) -> str:
    """How messages name a template type ("Email", "SMS", "Push", "Voice")."""
    return _TYPE_WORDS.get(template_type, template_type)


def _not_found(name: str, version: int | None = None, template_type: str = EMAIL) -> NotFoundError:
    suffix = f" has no version {version}" if version is not None else " not found"
    return NotFoundError(f"{type_word(template_type)} template {name}{suffix}")


async def get_version(
    conn: AsyncConnection, name: str, version: int | None, *, template_type: str = EMAIL
) -> Row[Any] | None:
    """One version of a template joined with the template's row, or None.

    Args:
        conn: Any connection.
        name: Template name.
        version: The version number, or None for the active version.
        template_type: EMAIL, SMS, PUSH or VOICE.

    Returns:
        A row with the template's ``name, template_type, latest_version, active_version, tags, created_at`` and
        the version's ``version, content, updated_at``.
    """
    target = ":v" if version is not None else "t.active_version"
    result = await conn.execute(
        text(_VERSION_ROW.format(version=target)), {"n": name, "t": template_type, "v": version}
    )
    return result.first()


async def create_email_template(
    conn: AsyncConnection,
    name: str,
    content: Mapping[str, Any],
    tags: Mapping[str, str],
    *,
    template_type: str = EMAIL,
) -> None:
    """Store version 1 (active) of a new template (an email template unless ``template_type`` says otherwise).

    Raises:
        BadRequestError: a template of that name exists (Pinpoint answers this with a BadRequestException).
    """
    created = await conn.scalar(
        text(
            "INSERT INTO templates (name, template_type, latest_version, active_version, description, tags) "
            "VALUES (:n, :t, 1, 1, :d, CAST(:tags AS jsonb)) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {
            "n": name,
            "t": template_type,
            "d": content.get("TemplateDescription"),
            "tags": json.dumps(dict(tags)),
        },
    )
    if created is None:
        word = type_word(template_type)
        raise BadRequestError(
            f"Template already exists: {word.lower()} template {name} exists; change it with "
            f"Update{word.capitalize()}Template"
        )
    await conn.execute(
        text(
            "INSERT INTO template_versions (name, template_type, version, content) VALUES (:n, :t, 1, CAST(:c AS jsonb))"
        ),
        {"n": name, "t": template_type, "c": json.dumps(dict(content))},
    )


async def _lock_head(conn: AsyncConnection, name: str, template_type: str = EMAIL) -> Row[Any]:
    row = (
        await conn.execute(
            text(
                "SELECT t.*, (SELECT max(version) FROM template_versions v WHERE v.name = t.name "
                "AND v.template_type = t.template_type) AS newest FROM templates t "
                "WHERE t.name = :n AND t.template_type = :t FOR UPDATE"
            ),
            {"n": name, "t": template_type},
        )
    ).first()
    if row is None:
        raise _not_found(name, template_type=template_type)
    return row


async def update_email_template(
    conn: AsyncConnection,
    name: str,
    content: Mapping[str, Any],
    *,
    create_new_version: bool,
    version: int | None,
    template_type: str = EMAIL,
) -> int:
    """Overwrite the latest version of a template (email unless ``template_type`` says), or add a new one.

    Args:
        conn: A connection inside a transaction.
        name: Template name.
        content: The EmailTemplateRequest to store (without tags).
        create_new_version: Add version latest+1 instead of overwriting.
        version: If given, must be the latest version (Pinpoint's guard against lost updates).

    Returns:
        The version written.

    Raises:
        NotFoundError: no such template.
        BadRequestError: ``version`` is not the latest, or the template has reached 5,000 versions.
    """
    head = await _lock_head(conn, name, template_type)
    newest = int(head.newest)
    word = type_word(template_type)
    if version is not None and version != newest:
        raise BadRequestError(
            f"Version {version} is not the latest version of {word.lower()} template {name} ({newest}); "
            f"updates go to the latest version, so pass Version={newest} or omit Version"
        )
    params: dict[str, Any] = {"n": name, "t": template_type, "c": json.dumps(dict(content))}
    if create_new_version:
        target = int(head.latest_version) + 1
        if target > MAX_VERSIONS:
            raise BadRequestError(
                f"{word} template {name} has reached {MAX_VERSIONS} versions; delete old ones"
            )
        await conn.execute(
            text(
                "INSERT INTO template_versions (name, template_type, version, content) VALUES (:n, :t, :v, CAST(:c AS jsonb))"
            ),
            {**params, "v": target},
        )
    else:
        target = newest
        await conn.execute(
            text(
                "UPDATE template_versions SET content = CAST(:c AS jsonb), updated_at = now() "
                "WHERE name = :n AND template_type = :t AND version = :v"
            ),
            {**params, "v": target},
        )
    await conn.execute(
        text(
            "UPDATE templates SET latest_version = GREATEST(latest_version, :v), description = :d, updated_at = now() "
            "WHERE name = :n AND template_type = :t"
        ),
        {**params, "v": target, "d": content.get("TemplateDescription")},
    )
    return target


async def set_active_version(
    conn: AsyncConnection, name: str, version: int | None, *, template_type: str = EMAIL
) -> int:
    """Make ``version`` (None: the latest) the version that sends without a version use.

    Returns:
        The active version.

    Raises:
        NotFoundError: no such template or version.
    """
    head = await _lock_head(conn, name, template_type)
    target = int(head.newest) if version is None else version
    if version is not None and await get_version(conn, name, version, template_type=template_type) is None:
        raise _not_found(name, version, template_type)
    await conn.execute(
        text(
            "UPDATE templates SET active_version = :v, updated_at = now() WHERE name = :n AND template_type = :t"
        ),
        {"n": name, "t": template_type, "v": target},
    )
    return target


async def delete_email_template(
    conn: AsyncConnection, name: str, version: int | None, *, template_type: str = EMAIL
) -> None:
    """Delete a template (email unless ``template_type`` says) with all its versions, or one version.

    Deleting the last version deletes the template; deleting the active version makes the newest remaining
    version active.

    Raises:
        NotFoundError: no such template or version.
    """
    await _lock_head(conn, name, template_type)
    params: dict[str, Any] = {"n": name, "t": template_type, "v": version}
    if version is not None:
        deleted = await conn.scalar(
            text(
                "DELETE FROM template_versions WHERE name = :n AND template_type = :t AND version = :v RETURNING 1"
            ),
            params,
        )
        if deleted is None:
            raise _not_found(name, version, template_type)
        newest = await conn.scalar(
            text("SELECT max(version) FROM template_versions WHERE name = :n AND template_type = :t"), params
        )
        if newest is not None:
            await conn.execute(
                text(
                    "UPDATE templates SET updated_at = now(), active_version = "
                    "CASE WHEN active_version = :v THEN :newest ELSE active_version END "
                    "WHERE name = :n AND template_type = :t"
                ),
                {**params, "newest": newest},
            )
            return
    await conn.execute(text("DELETE FROM template_versions WHERE name = :n AND template_type = :t"), params)
    await conn.execute(text("DELETE FROM templates WHERE name = :n AND template_type = :t"), params)


async def load_email_template(
    conn: AsyncConnection, name: str, version: str | None, *, template_type: str = EMAIL
) -> dict[str, Any] | None:
    """The stored content of a template version (email unless ``template_type`` says), as sends render it.

    Args:
        conn: Any connection.
        name: Template name.
        version: A version number (as a string, as messages carry it), ``"latest"``, or None for the active
            version.

    Returns:
        The EmailTemplateRequest as stored (Subject, HtmlPart, TextPart, DefaultSubstitutions, ...), or None
        if there is no such template or version.
    """
    number: int | None = None
    if version == "latest":
        number = await conn.scalar(
            text("SELECT max(version) FROM template_versions WHERE name = :n AND template_type = :t"),
            {"n": name, "t": template_type},
        )
        if number is None:
            return None
    elif version is not None:
        if not version.isdigit():
            return None
        number = int(version)
    row = await get_version(conn, name, number, template_type=template_type)
    return dict(row.content) if row is not None else None


async def load_template_of_any_type(
    conn: AsyncConnection, name: str, version: str | None, types: Sequence[str]
) -> tuple[str, dict[str, Any]] | None:
    """The first of ``types`` that has a template ``name`` (at ``version``): (its type, its stored content).

    See :func:`load_email_template` for ``version``. None when no type has it.
    """
    for template_type in types:
        content = await load_email_template(conn, name, version, template_type=template_type)
        if content is not None:
            return template_type, content
    return None


async def list_templates(
    conn: AsyncConnection, *, template_type: str | None, prefix: str | None, after: str | None, limit: int
) -> list[Row[Any]]:
    """Templates in (name, type) order with their active version's content, for ListTemplates.

    Args:
        conn: Any connection.
        template_type: Only this type, or None for every type.
        prefix: Only names starting with it.
        after: The page starts after this ``name/TYPE`` key (the previous page's last item).
        limit: At most this many rows.

    Returns:
        Rows of ``templates`` (name, template_type, active_version, description, tags, created_at,
        updated_at) with ``content`` of the active version.
    """
    after_name, _, after_type = (after or "").partition("/")
    result = await conn.execute(
        text(
            """
            SELECT t.name, t.template_type, t.active_version, t.description, t.tags, t.created_at, t.updated_at,
                   v.content
            FROM templates t
            LEFT JOIN template_versions v
              ON v.name = t.name AND v.template_type = t.template_type AND v.version = t.active_version
            WHERE (CAST(:t AS text) IS NULL OR t.template_type = :t)
              AND (CAST(:p AS text) IS NULL OR starts_with(t.name, :p))
              AND (CAST(:a AS text) IS NULL OR (t.name, t.template_type) > (:a, :at))
            ORDER BY t.name, t.template_type
            LIMIT :l
            """
        ),
        {"t": template_type, "p": prefix or None, "a": after_name or None, "at": after_type, "l": limit},
    )
    return list(result)


async def list_template_versions(
    conn: AsyncConnection, name: str, template_type: str, *, after: int, limit: int
) -> list[Row[Any]]:
    """Versions of one template numbered above ``after``, oldest first, for ListTemplateVersions.

    Raises:
        NotFoundError: no such template.
    """
    exists = await conn.scalar(
        text("SELECT 1 FROM templates WHERE name = :n AND template_type = :t"),
        {"n": name, "t": template_type},
    )
    if exists is None:
        raise _not_found(name, template_type=template_type)
    result = await conn.execute(
        text(
            "SELECT version, content, created_at, updated_at FROM template_versions "
            "WHERE name = :n AND template_type = :t AND version > :a ORDER BY version LIMIT :l"
        ),
        {"n": name, "t": template_type, "a": after, "l": limit},
    )
    return list(result)


# ---- the email channel ----


def email_channel_response(row: Row[Any]) -> dict[str, Any]:
    """A ``channels`` row of type EMAIL as Pinpoint's EmailChannelResponse."""
    settings = dict(row.settings or {})
    return {
        "ApplicationId": row.app_id,
        "Platform": EMAIL,
        "Id": "email",
        "Enabled": bool(row.enabled),
        **{
            k: settings[k]
            for k in ("FromAddress", "Identity", "ConfigurationSet", "RoleArn", "OrchestrationSendingRoleArn")
            if settings.get(k)
        },
        "Version": int(row.version),
        "CreationDate": iso_timestamp(row.created_at),
        "LastModifiedDate": iso_timestamp(row.updated_at),
        "IsArchived": False,
        "HasCredential": True,
        "MessagesPerSecond": EMAIL_MESSAGES_PER_SECOND,
    }


async def email_channel(conn: AsyncConnection, app_id: str) -> dict[str, Any] | None:
    """The app's email channel as an EmailChannelResponse dict (``Enabled``, ``FromAddress``, ...), or None."""
    row = (
        await conn.execute(
            text("SELECT * FROM channels WHERE app_id = :a AND channel_type = 'EMAIL'"), {"a": app_id}
        )
    ).first()
    return email_channel_response(row) if row is not None else None


async def put_email_channel(
    conn: AsyncConnection, app_id: str, settings: Mapping[str, Any], *, enabled: bool | None
) -> dict[str, Any]:
    """Create or replace the app's email channel settings; each update bumps its version.

    Args:
        conn: A connection inside a transaction.
        app_id: The application (must exist).
        settings: FromAddress, Identity and the optional fields of EmailChannelRequest.
        enabled: Enabled as requested; None keeps the current value (true for a new channel).

    Returns:
        The EmailChannelResponse.
    """
    row = (
        await conn.execute(
            text(
                """
                INSERT INTO channels (app_id, channel_type, enabled, settings)
                VALUES (:a, 'EMAIL', COALESCE(:e, true), CAST(:s AS jsonb))
                ON CONFLICT (app_id, channel_type) DO UPDATE
                SET enabled = COALESCE(:e, channels.enabled), settings = excluded.settings,
                    version = channels.version + 1, updated_at = now()
                RETURNING *
                """
            ),
            {"a": app_id, "e": enabled, "s": json.dumps(dict(settings))},
        )
    ).one()
    return email_channel_response(row)


async def delete_email_channel(conn: AsyncConnection, app_id: str) -> dict[str, Any] | None:
    """Remove the app's email channel; returns what it was, or None if it had none."""
    row = (
        await conn.execute(
            text("DELETE FROM channels WHERE app_id = :a AND channel_type = 'EMAIL' RETURNING *"),
            {"a": app_id},
        )
    ).first()
    return email_channel_response(row) if row is not None else None
