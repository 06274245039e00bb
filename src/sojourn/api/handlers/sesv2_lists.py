"""SESv2 list management: contact lists (with topics) and contacts.

sojourn has one account; unlike SES (one contact list per account) it allows any number of lists, since it is
self-hosted. The 20-topics-per-list limit is SES's and is enforced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sojourn.api.errors import AlreadyExistsError, BadRequestError, LimitExceededError, NotFoundError
from sojourn.api.handlers.events import ring_doorbells
from sojourn.api.server import Handler, RequestContext
from sojourn.domain import lists as rules
from sojourn.domain.lists import ListRuleError, TooManyTopicsError
from sojourn.domain.subscription_events import CREATE_CONTACT, UPDATE_CONTACT
from sojourn.store import lists_repo, subscription_repo, unsubscribes

MAX_TAGS = 50
LIST_PAGE_DEFAULT = 100
CONTACT_PAGE_DEFAULT = 100


def rule_error(err: ListRuleError) -> BadRequestError | LimitExceededError:
    """The API error for a broken list rule (LimitExceededException for too many topics, else BadRequest)."""
    if isinstance(err, TooManyTopicsError):
        return LimitExceededError(str(err))
    return BadRequestError(str(err))


def _tags(raw: Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    tags = [{"Key": str(t.get("Key") or ""), "Value": str(t.get("Value") or "")} for t in raw or ()]
    if len(tags) > MAX_TAGS:
        raise BadRequestError(f"Tags: at most {MAX_TAGS} tags, not {len(tags)}")
    for index, tag in enumerate(tags):
        if not 1 <= len(tag["Key"]) <= 128:
            raise BadRequestError(f"Tags[{index}].Key must be 1-128 characters")
    return tags


def _list_not_found(name: str) -> NotFoundError:
    return NotFoundError(f"Contact list {name!r} does not exist; create it with CreateContactList")


async def load_topics(conn: Any, list_name: str) -> list[rules.Topic]:
    """The topics of a list.

    Raises:
        NotFoundError: no such list.
    """
    row = await lists_repo.get_list(conn, list_name)
    if row is None:
        raise _list_not_found(list_name)
    return rules.topics_from_json(row.topics)


def _email(raw: Any) -> str:
    try:
        return rules.normalize_email(str(raw or ""))
    except ListRuleError as err:
        raise BadRequestError(str(err)) from None


async def create_contact_list(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateContactList."""
    try:
        name = rules.check_list_name(params["ContactListName"])
        topics = rules.parse_topics(params.get("Topics"))
    except ListRuleError as err:
        raise rule_error(err) from None
    tags = _tags(params.get("Tags"))
    async with ctx.state.db.begin() as conn:
        created = await lists_repo.create_list(
            conn, name, description=params.get("Description"), topics=topics, tags=tags
        )
    if not created:
        raise AlreadyExistsError(f"Contact list {name!r} already exists; change it with UpdateContactList")
    return {}


async def get_contact_list(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetContactList."""
    name = params["ContactListName"]
    async with ctx.state.db.connect() as conn:
        row = await lists_repo.get_list(conn, name)
    if row is None:
        raise _list_not_found(name)
    out: dict[str, Any] = {
        "ContactListName": row.name,
        "Topics": list(row.topics),
        "CreatedTimestamp": row.created_at,
        "LastUpdatedTimestamp": row.updated_at,
        "Tags": list(row.tags),
    }
    if row.description is not None:
        out["Description"] = row.description
    return out


async def update_contact_list(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateContactList: given Topics replace the list's topics, a given Description its description.

    What the request leaves out is kept, so updating the description never drops the topics.
    """
    name = params["ContactListName"]
    try:
        topics = None if params.get("Topics") is None else rules.parse_topics(params["Topics"])
    except ListRuleError as err:
        raise rule_error(err) from None
    async with ctx.state.db.begin() as conn:
        updated = await lists_repo.update_list(
            conn, name, description=params.get("Description"), topics=topics
        )
    if not updated:
        raise _list_not_found(name)
    return {}


async def delete_contact_list(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteContactList: the list and all its contacts."""
    name = params["ContactListName"]
    async with ctx.state.db.begin() as conn:
        deleted = await lists_repo.delete_list(conn, name)
    if not deleted:
        raise _list_not_found(name)
    return {}


async def list_contact_lists(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """ListContactLists, by name, with an opaque NextToken."""
    try:
        size = rules.page_size(params.get("PageSize"), default=LIST_PAGE_DEFAULT, maximum=rules.MAX_PAGE_SIZE)
        after = rules.decode_page_token(params["NextToken"]) if params.get("NextToken") else None
    except ListRuleError as err:
        raise BadRequestError(str(err)) from None
    async with ctx.state.db.connect() as conn:
        rows = await lists_repo.list_lists(conn, after=after, limit=size + 1)
    out: dict[str, Any] = {
        "ContactLists": [
            {"ContactListName": r.name, "LastUpdatedTimestamp": r.updated_at} for r in rows[:size]
        ]
    }
    if len(rows) > size:
        out["NextToken"] = rules.encode_page_token(rows[size - 1].name)
    return out


def _preferences(raw: Any, topics: Sequence[rules.Topic]) -> dict[str, str]:
    try:
        return rules.parse_preferences(raw, topics)
    except ListRuleError as err:
        raise BadRequestError(str(err)) from None


async def create_contact(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateContact."""
    list_name, email = params["ContactListName"], _email(params["EmailAddress"])
    async with ctx.state.db.begin() as conn:
        topics = await load_topics(conn, list_name)
        before = await subscription_repo.current(conn, list_name, email)
        created = await lists_repo.create_contact(
            conn,
            list_name,
            email,
            preferences=_preferences(params.get("TopicPreferences"), topics),
            unsubscribe_all=bool(params.get("UnsubscribeAll")),
            attributes_data=params.get("AttributesData"),
        )
        journeys: dict[str, set[str]] = {}
        if created and params.get("UnsubscribeAll"):
            await unsubscribes.unsubscribed_from_all(conn, list_name, email)
        if created:
            journeys = await subscription_repo.record_change(
                conn, list_name=list_name, email=email, source=CREATE_CONTACT, old=before, topics=topics
            )
    for app_id, journey_ids in journeys.items():
        await ring_doorbells(ctx.state, app_id, journey_ids)
    if not created:
        raise AlreadyExistsError(
            f"Contact {email} already exists in contact list {list_name!r}; change it with UpdateContact"
        )
    return {}


def _contact_not_found(list_name: str, email: str) -> NotFoundError:
    return NotFoundError(f"Contact {email} does not exist in contact list {list_name!r}")


def _known(preferences: Mapping[str, str], topics: Sequence[rules.Topic]) -> dict[str, str]:
    # Preferences for topics that were since removed from the list are kept but not shown.
    names = {t.name for t in topics}
    return {k: v for k, v in preferences.items() if k in names}


async def get_contact(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """GetContact: explicit TopicPreferences and, for the other topics, TopicDefaultPreferences."""
    list_name, email = params["ContactListName"], _email(params["EmailAddress"])
    async with ctx.state.db.connect() as conn:
        topics = await load_topics(conn, list_name)
        row = await lists_repo.get_contact(conn, list_name, email)
    if row is None:
        raise _contact_not_found(list_name, email)
    preferences = _known(row.topic_preferences, topics)
    out: dict[str, Any] = {
        "ContactListName": list_name,
        "EmailAddress": row.email_address,
        "TopicPreferences": rules.preferences_to_api(preferences),
        "TopicDefaultPreferences": rules.default_preferences(topics, preferences),
        "UnsubscribeAll": row.unsubscribe_all,
        "CreatedTimestamp": row.created_at,
        "LastUpdatedTimestamp": row.updated_at,
    }
    if row.attributes_data is not None:
        out["AttributesData"] = row.attributes_data
    return out


async def update_contact(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateContact: TopicPreferences replace the contact's preferences (omitted ones are removed)."""
    list_name, email = params["ContactListName"], _email(params["EmailAddress"])
    async with ctx.state.db.begin() as conn:
        topics = await load_topics(conn, list_name)
        before = await subscription_repo.current(conn, list_name, email)
        updated = await lists_repo.update_contact(
            conn,
            list_name,
            email,
            preferences=_preferences(params.get("TopicPreferences"), topics),
            unsubscribe_all=params.get("UnsubscribeAll"),
            attributes_data=params.get("AttributesData"),
        )
        if updated and params.get("UnsubscribeAll") is True:
            await unsubscribes.unsubscribed_from_all(conn, list_name, email)
        elif updated and params.get("UnsubscribeAll") is False:
            await unsubscribes.subscribed_again(conn, email)
        journeys: dict[str, set[str]] = {}
        if updated:
            journeys = await subscription_repo.record_change(
                conn, list_name=list_name, email=email, source=UPDATE_CONTACT, old=before, topics=topics
            )
    for app_id, journey_ids in journeys.items():
        await ring_doorbells(ctx.state, app_id, journey_ids)
    if not updated:
        raise _contact_not_found(list_name, email)
    return {}


async def delete_contact(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteContact."""
    list_name, email = params["ContactListName"], _email(params["EmailAddress"])
    async with ctx.state.db.begin() as conn:
        await load_topics(conn, list_name)
        deleted = await lists_repo.delete_contact(conn, list_name, email)
    if not deleted:
        raise _contact_not_found(list_name, email)
    return {}


async def list_contacts(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """ListContacts: keyset pages in address order; Filter runs in SQL."""
    list_name = params["ContactListName"]
    async with ctx.state.db.connect() as conn:
        topics = await load_topics(conn, list_name)
        try:
            contact_filter = rules.parse_filter(params.get("Filter"), topics)
            size = rules.page_size(
                params.get("PageSize"), default=CONTACT_PAGE_DEFAULT, maximum=rules.MAX_PAGE_SIZE
            )
            after = rules.decode_page_token(params["NextToken"]) if params.get("NextToken") else None
        except ListRuleError as err:
            raise BadRequestError(str(err)) from None
        rows = await lists_repo.list_contacts(conn, list_name, contact_filter, after=after, limit=size + 1)
    contacts = []
    for row in rows[:size]:
        preferences = _known(row.topic_preferences, topics)
        contacts.append(
            {
                "EmailAddress": row.email_address,
                "TopicPreferences": rules.preferences_to_api(preferences),
                "TopicDefaultPreferences": rules.default_preferences(topics, preferences),
                "UnsubscribeAll": row.unsubscribe_all,
                "LastUpdatedTimestamp": row.updated_at,
            }
        )
    out: dict[str, Any] = {"Contacts": contacts}
    if len(rows) > size:
        out["NextToken"] = rules.encode_page_token(rows[size - 1].email_address)
    return out


HANDLERS: dict[str, Handler] = {
    "sesv2:CreateContactList": create_contact_list,
    "sesv2:GetContactList": get_contact_list,
    "sesv2:UpdateContactList": update_contact_list,
    "sesv2:DeleteContactList": delete_contact_list,
    "sesv2:ListContactLists": list_contact_lists,
    "sesv2:CreateContact": create_contact,
    "sesv2:GetContact": get_contact,
    "sesv2:UpdateContact": update_contact,
    "sesv2:DeleteContact": delete_contact,
    "sesv2:ListContacts": list_contacts,
}
