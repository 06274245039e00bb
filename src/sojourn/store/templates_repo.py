"""Email templates (account-level, versioned) and the email channel of an app: what a send needs.

Versions follow Pinpoint: version 1 at create; an update overwrites the latest version or, with
CreateNewVersion, adds latest+1. ``templates.latest_version`` is the highest number ever given out, so numbers
are never reused even after versions are deleted; the version an overwrite targets is the highest one that
still exists. The active version (what a send without a version uses) changes only when set explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.api.errors import BadRequestError, NotFoundError
from sojourn.store.endpoint_rows import iso_timestamp

EMAIL = "EMAIL"
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


def _not_found(name: str, version: int | None = None) -> NotFoundError:
    suffix = f" has no version {version}" if version is not None else " not found"
    return NotFoundError(f"Email template {name}{suffix}")


async def get_version(conn: AsyncConnection, name: str, version: int | None) -> Row[Any] | None:
    """One version of an email template joined with the template's row, or None.

    Args:
        conn: Any connection.
        name: Template name.
        version: The version number, or None for the active version.

    Returns:
        A row with the template's ``name, template_type, latest_version, active_version, tags, created_at`` and
        the version's ``version, content, updated_at``.
    """
    target = ":v" if version is not None else "t.active_version"
    result = await conn.execute(
        text(_VERSION_ROW.format(version=target)), {"n": name, "t": EMAIL, "v": version}
    )
    return result.first()


async def create_email_template(
    conn: AsyncConnection, name: str, content: Mapping[str, Any], tags: Mapping[str, str]
) -> None:
    """Store version 1 (active) of a new email template.

    Raises:
        BadRequestError: a template of that name exists (Pinpoint answers this with a BadRequestException).
    """
    created = await conn.scalar(
        text(
            "INSERT INTO templates (name, template_type, latest_version, active_version, description, tags) "
            "VALUES (:n, :t, 1, 1, :d, CAST(:tags AS jsonb)) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {"n": name, "t": EMAIL, "d": content.get("TemplateDescription"), "tags": json.dumps(dict(tags))},
    )
    if created is None:
        raise BadRequestError(
            f"Template already exists: email template {name} exists; change it with UpdateEmailTemplate"
        )
    await conn.execute(
        text(
            "INSERT INTO template_versions (name, template_type, version, content) VALUES (:n, :t, 1, CAST(:c AS jsonb))"
        ),
        {"n": name, "t": EMAIL, "c": json.dumps(dict(content))},
    )


async def _lock_head(conn: AsyncConnection, name: str) -> Row[Any]:
    row = (
        await conn.execute(
            text(
                "SELECT t.*, (SELECT max(version) FROM template_versions v WHERE v.name = t.name "
                "AND v.template_type = t.template_type) AS newest FROM templates t "
                "WHERE t.name = :n AND t.template_type = :t FOR UPDATE"
            ),
            {"n": name, "t": EMAIL},
        )
    ).first()
    if row is None:
        raise _not_found(name)
    return row


async def update_email_template(
    conn: AsyncConnection,
    name: str,
    content: Mapping[str, Any],
    *,
    create_new_version: bool,
    version: int | None,
) -> int:
    """Overwrite the latest version of an email template, or add a new one.

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
    head = await _lock_head(conn, name)
    newest = int(head.newest)
    if version is not None and version != newest:
        raise BadRequestError(
            f"Version {version} is not the latest version of email template {name} ({newest}); "
            f"updates go to the latest version, so pass Version={newest} or omit Version"
        )
    params: dict[str, Any] = {"n": name, "t": EMAIL, "c": json.dumps(dict(content))}
    if create_new_version:
        target = int(head.latest_version) + 1
        if target > MAX_VERSIONS:
            raise BadRequestError(
                f"Email template {name} has reached {MAX_VERSIONS} versions; delete old ones"
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


async def set_active_version(conn: AsyncConnection, name: str, version: int | None) -> int:
    """Make ``version`` (None: the latest) the version that sends without a version use.

    Returns:
        The active version.

    Raises:
        NotFoundError: no such template or version.
    """
    head = await _lock_head(conn, name)
    target = int(head.newest) if version is None else version
    if version is not None and await get_version(conn, name, version) is None:
        raise _not_found(name, version)
    await conn.execute(
        text(
            "UPDATE templates SET active_version = :v, updated_at = now() WHERE name = :n AND template_type = :t"
        ),
        {"n": name, "t": EMAIL, "v": target},
    )
    return target


async def delete_email_template(conn: AsyncConnection, name: str, version: int | None) -> None:
    """Delete an email template with all its versions, or one version.

    Deleting the last version deletes the template; deleting the active version makes the newest remaining
    version active.

    Raises:
        NotFoundError: no such template or version.
    """
    await _lock_head(conn, name)
    params: dict[str, Any] = {"n": name, "t": EMAIL, "v": version}
    if version is not None:
        deleted = await conn.scalar(
            text(
                "DELETE FROM template_versions WHERE name = :n AND template_type = :t AND version = :v RETURNING 1"
            ),
            params,
        )
        if deleted is None:
            raise _not_found(name, version)
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


async def load_email_template(conn: AsyncConnection, name: str, version: str | None) -> dict[str, Any] | None:
    """The stored content of an email template version, as the engine renders it at send time.

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
            {"n": name, "t": EMAIL},
        )
        if number is None:
            return None
    elif version is not None:
        if not version.isdigit():
            return None
        number = int(version)
    row = await get_version(conn, name, number)
    return dict(row.content) if row is not None else None


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
