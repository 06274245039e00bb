"""SES list management rules: topics, the effective subscription status, ListContacts filters and page tokens.

Everything here is pure (no I/O), so the rules are unit-tested on their own; ``store/lists_repo.py`` runs
their SQL forms.

The effective status of a contact for a topic (SES's rule, written out in the spec §7.2):

1. ``UnsubscribeAll`` → ``OPT_OUT`` for every topic;
2. otherwise the contact's explicit TopicPreference for the topic;
3. otherwise the topic's ``DefaultSubscriptionStatus``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

OPT_IN: Final = "OPT_IN"
OPT_OUT: Final = "OPT_OUT"
STATUSES: Final = (OPT_IN, OPT_OUT)
MAX_TOPICS: Final = 20
MAX_PAGE_SIZE: Final = 1000
LIST_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOPIC_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Deliberately loose: one "@" with something on both sides and no spaces or angle brackets.
EMAIL: Final = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


class ListRuleError(ValueError):
    """Input that breaks a list-management rule; the message says what to fix (the API answers 400)."""


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic of a contact list, as SESv2's ``Topic`` shape."""

    name: str
    display_name: str
    description: str | None
    default_status: str

    def to_api(self) -> dict[str, Any]:
        """The SESv2 ``Topic`` dict."""
        out: dict[str, Any] = {
            "TopicName": self.name,
            "DisplayName": self.display_name,
            "DefaultSubscriptionStatus": self.default_status,
        }
        if self.description is not None:
            out["Description"] = self.description
        return out


def check_list_name(name: str) -> str:
    """A contact list name: 1-64 letters, digits, ``_`` and ``-``.

    Raises:
        ListRuleError: the name breaks the rule.
    """
    if not LIST_NAME.fullmatch(name or ""):
        raise ListRuleError(
            f"ContactListName {name!r} is invalid: use 1-64 letters, digits, underscores (_) and hyphens (-)"
        )
    return name


def normalize_email(address: str) -> str:
    """The key under which a contact's address is stored and looked up: trimmed and lower-cased.

    Lower-casing keeps an unsubscribe of ``Ada@Example.com`` effective for a send to ``ada@example.com``.

    Raises:
        ListRuleError: not an email address.
    """
    cleaned = (address or "").strip()
    if not EMAIL.fullmatch(cleaned) or len(cleaned) > 320:
        raise ListRuleError(f"EmailAddress {address!r} is not an email address such as ada@example.com")
    return cleaned.lower()


def check_status(value: Any, where: str) -> str:
    """``OPT_IN`` or ``OPT_OUT``.

    Raises:
        ListRuleError: anything else.
    """
    if value not in STATUSES:
        raise ListRuleError(f"{where} must be OPT_IN or OPT_OUT, not {value!r}")
    return str(value)


def parse_topics(raw: Sequence[Mapping[str, Any]] | None) -> list[Topic]:
    """The Topics of a CreateContactList/UpdateContactList request, checked.

    Raises:
        ListRuleError: a topic lacks a required field, has a bad name or status, or a name repeats.
        TooManyTopicsError: more than 20 topics.
    """
    topics: list[Topic] = []
    seen: set[str] = set()
    for index, item in enumerate(raw or ()):
        name = str(item.get("TopicName") or "")
        if not TOPIC_NAME.fullmatch(name):
            raise ListRuleError(
                f"Topics[{index}].TopicName {name!r} is invalid: use 1-64 letters, digits, _ and -"
            )
        if name in seen:
            raise ListRuleError(f"Topics[{index}].TopicName {name!r} appears twice; topic names are unique")
        seen.add(name)
        display = str(item.get("DisplayName") or "").strip()
        if not display:
            raise ListRuleError(
                f"Topics[{index}].DisplayName is required: the name contacts see for {name!r}"
            )
        status = check_status(
            item.get("DefaultSubscriptionStatus"), f"Topics[{index}].DefaultSubscriptionStatus"
        )
        description = item.get("Description")
        topics.append(Topic(name, display, None if description is None else str(description), status))
    if len(topics) > MAX_TOPICS:
        raise TooManyTopicsError(
            f"A contact list has at most {MAX_TOPICS} topics; this request has {len(topics)}"
        )
    return topics


class TooManyTopicsError(ListRuleError):
    """More than :data:`MAX_TOPICS` topics on a list (SES answers LimitExceededException)."""


def topics_from_json(stored: Iterable[Mapping[str, Any]]) -> list[Topic]:
    """Topics as stored in ``contact_lists.topics`` (already checked when they were written)."""
    return [
        Topic(
            str(t["TopicName"]),
            str(t["DisplayName"]),
            t.get("Description"),
            str(t["DefaultSubscriptionStatus"]),
        )
        for t in stored
    ]


def parse_preferences(raw: Sequence[Mapping[str, Any]] | None, topics: Sequence[Topic]) -> dict[str, str]:
    """A request's TopicPreferences as ``{TopicName: status}``, each naming a topic of the list.

    Raises:
        ListRuleError: an unknown topic, a bad status, or a topic given twice.
    """
    known = {t.name for t in topics}
    prefs: dict[str, str] = {}
    for index, item in enumerate(raw or ()):
        name = str(item.get("TopicName") or "")
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ListRuleError(
                f"TopicPreferences[{index}].TopicName {name!r} is not a topic of the list (its topics: {listed})"
            )
        if name in prefs:
            raise ListRuleError(f"TopicPreferences[{index}]: topic {name!r} is given twice")
        prefs[name] = check_status(
            item.get("SubscriptionStatus"), f"TopicPreferences[{index}].SubscriptionStatus"
        )
    return prefs


def effective_status(topic: Topic, *, unsubscribe_all: bool, preferences: Mapping[str, str]) -> str:
    """A contact's subscription status for ``topic``: unsubscribed-from-all, else explicit, else the default.

    Args:
        topic: The topic.
        unsubscribe_all: The contact's UnsubscribeAll.
        preferences: The contact's explicit preferences, ``{TopicName: status}``.

    Returns:
        ``OPT_IN`` or ``OPT_OUT``.
    """
    if unsubscribe_all:
        return OPT_OUT
    return preferences.get(topic.name, topic.default_status)


def may_send(
    topics: Sequence[Topic],
    topic_name: str | None,
    *,
    unsubscribe_all: bool,
    preferences: Mapping[str, str],
) -> bool:
    """Whether a send with ListManagementOptions{list, topic_name} may go to this contact.

    A recipient who is not a contact of the list is passed here with no preferences: the topic default
    decides. Without a topic only UnsubscribeAll stops the send.

    Args:
        topics: The list's topics.
        topic_name: ListManagementOptions.TopicName, or None.
        unsubscribe_all: The contact's UnsubscribeAll (False for a non-contact).
        preferences: The contact's explicit preferences.

    Returns:
        True when the contact is subscribed.

    Raises:
        ListRuleError: ``topic_name`` is not a topic of the list.
    """
    if topic_name is None:
        return not unsubscribe_all
    topic = next((t for t in topics if t.name == topic_name), None)
    if topic is None:
        raise ListRuleError(f"TopicName {topic_name!r} is not a topic of the contact list")
    return effective_status(topic, unsubscribe_all=unsubscribe_all, preferences=preferences) == OPT_IN


def default_preferences(topics: Sequence[Topic], preferences: Mapping[str, str]) -> list[dict[str, str]]:
    """GetContact's TopicDefaultPreferences: the default of every topic the contact has no explicit preference for."""
    return [
        {"TopicName": t.name, "SubscriptionStatus": t.default_status}
        for t in topics
        if t.name not in preferences
    ]


def preferences_to_api(preferences: Mapping[str, str]) -> list[dict[str, str]]:
    """Stored preferences as SESv2 TopicPreference dicts, sorted by topic name."""
    return [{"TopicName": name, "SubscriptionStatus": preferences[name]} for name in sorted(preferences)]


LIST_MANAGEMENT_HEADER: Final = "X-SES-LIST-MANAGEMENT-OPTIONS"


def parse_list_management_header(value: str) -> dict[str, str]:
    """SES's ``X-SES-LIST-MANAGEMENT-OPTIONS: contactListName=L; topicName=T`` as ListManagementOptions.

    Args:
        value: The header's value.

    Returns:
        ``{"ContactListName": L}`` plus ``"TopicName": T`` when the header names a topic.

    Raises:
        ListRuleError: no contactListName, or a part that is not ``name=value``.
    """
    options: dict[str, str] = {}
    keys = {"contactlistname": "ContactListName", "topicname": "TopicName"}
    for part in filter(None, (p.strip() for p in value.split(";"))):
        key, sep, item = part.partition("=")
        if not sep or key.strip().lower() not in keys or not item.strip():
            raise ListRuleError(
                f"{LIST_MANAGEMENT_HEADER} must look like 'contactListName=NAME; topicName=TOPIC', not {value!r}"
            )
        options[keys[key.strip().lower()]] = item.strip()
    if "ContactListName" not in options:
        raise ListRuleError(f"{LIST_MANAGEMENT_HEADER} needs contactListName=NAME")
    return options


# ---- ListContacts filters, in SQL -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """ListContacts' Filter, checked.

    Attributes:
        status: FilteredStatus, or None for every contact.
        topic: TopicFilter.TopicName, or None: then ``status`` filters on UnsubscribeAll (OPT_OUT = unsubscribed
            from all, OPT_IN = not).
        topic_default: The topic's default status (when ``topic`` is set).
        use_default: TopicFilter.UseDefaultIfPreferenceUnavailable: contacts with no explicit preference count
            with the topic default; when False they are left out of a topic filter.
    """

    status: str | None = None
    topic: str | None = None
    topic_default: str = OPT_IN
    use_default: bool = False


def parse_filter(raw: Mapping[str, Any] | None, topics: Sequence[Topic]) -> ContactFilter:
    """ListContacts' ``Filter`` against the list's topics.

    Raises:
        ListRuleError: an unknown status or topic, or a TopicFilter without a TopicName.
    """
    if not raw:
        return ContactFilter()
    status = raw.get("FilteredStatus")
    if status is not None:
        check_status(status, "Filter.FilteredStatus")
    topic_filter = raw.get("TopicFilter")
    if topic_filter is None:
        return ContactFilter(status=status)
    name = topic_filter.get("TopicName")
    if not name:
        raise ListRuleError("Filter.TopicFilter.TopicName is required when TopicFilter is given")
    topic = next((t for t in topics if t.name == name), None)
    if topic is None:
        listed = ", ".join(t.name for t in topics) or "none"
        raise ListRuleError(
            f"Filter.TopicFilter.TopicName {name!r} is not a topic of the list (its topics: {listed})"
        )
    return ContactFilter(
        status=status or OPT_IN,
        topic=topic.name,
        topic_default=topic.default_status,
        use_default=bool(topic_filter.get("UseDefaultIfPreferenceUnavailable")),
    )


def matches_filter(
    contact_filter: ContactFilter, *, unsubscribe_all: bool, preferences: Mapping[str, str]
) -> bool:
    """Whether a contact passes a ListContacts filter (the rule that :func:`filter_sql` runs in Postgres).

    Args:
        contact_filter: The filter.
        unsubscribe_all: The contact's UnsubscribeAll.
        preferences: The contact's explicit preferences.

    Returns:
        True when the contact is listed.
    """
    f = contact_filter
    if f.status is None:
        return True
    if f.topic is None:
        return unsubscribe_all == (f.status == OPT_OUT)
    if f.topic not in preferences and not f.use_default:
        return False
    topic = Topic(f.topic, f.topic, None, f.topic_default)
    return effective_status(topic, unsubscribe_all=unsubscribe_all, preferences=preferences) == f.status


def filter_sql(contact_filter: ContactFilter) -> tuple[str, dict[str, Any]]:
    """The SQL condition (on table ``contacts`` as ``c``) and its parameters for a ListContacts filter.

    It is :func:`effective_status` written in SQL, so the filter runs in Postgres, inside the keyset scan.

    Returns:
        (condition, parameters); the condition is ``TRUE`` for no filter.
    """
    f = contact_filter
    if f.status is None:
        return "TRUE", {}
    if f.topic is None:
        return "c.unsubscribe_all = :f_unsub", {"f_unsub": f.status == OPT_OUT}
    explicit = "(c.topic_preferences ->> CAST(:f_topic AS text))"
    if f.use_default:
        effective = f"CASE WHEN c.unsubscribe_all THEN 'OPT_OUT' ELSE COALESCE({explicit}, CAST(:f_default AS text)) END"
    else:
        effective = (
            f"CASE WHEN c.unsubscribe_all AND {explicit} IS NOT NULL THEN 'OPT_OUT' ELSE {explicit} END"
        )
    return f"{effective} = :f_status", {
        "f_topic": f.topic,
        "f_default": f.topic_default,
        "f_status": f.status,
    }


# ---- page tokens -------------------------------------------------------------------------------------------


def encode_page_token(after: str) -> str:
    """An opaque NextToken that resumes after the key ``after``."""
    body = json.dumps({"a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode("ascii")


def decode_page_token(token: str) -> str:
    """The key a NextToken resumes after.

    Raises:
        ListRuleError: not a token this server gave out.
    """
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = payload["a"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ListRuleError(
            "NextToken is not valid: pass the NextToken of the previous page unchanged"
        ) from None
    if not isinstance(after, str):
        raise ListRuleError("NextToken is not valid: pass the NextToken of the previous page unchanged")
    return after


def page_size(raw: Any, *, default: int, maximum: int) -> int:
    """PageSize, checked.

    Raises:
        ListRuleError: not between 1 and ``maximum``.
    """
    if raw is None:
        return default
    size = int(raw)
    if not 1 <= size <= maximum:
        raise ListRuleError(f"PageSize must be between 1 and {maximum}, not {size}")
    return size
