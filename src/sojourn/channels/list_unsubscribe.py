"""List-Unsubscribe for list mail: the headers (RFC 2369, RFC 8058 one-click) and the unsubscribe URL.

Every sender of mail to a contact list (sesv2 SendEmail with ListManagementOptions, and journeys and
campaigns that name a list) calls :func:`list_unsubscribe` for each recipient and then:

* adds :attr:`ListUnsubscribe.headers` to the message, replacing any List-Unsubscribe headers it has;
* puts :attr:`ListUnsubscribe.preferences_url` where the content says ``{{amazonSESUnsubscribeUrl}}``
  (:func:`replace_unsubscribe_placeholder`, at most twice per part, as SES does).

The one-click URL (``POST /u/{token}``) opts the contact out of the topic, or of the whole list when there is
no topic; the preferences URL (``/preferences/{token}``) opens the page where the contact chooses per topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sojourn.channels.page_tokens import make_page_token

UNSUBSCRIBE_PLACEHOLDER = "{{amazonSESUnsubscribeUrl}}"
MAX_PLACEHOLDER_REPLACEMENTS = 2


@dataclass(frozen=True, slots=True)
class ListUnsubscribe:
    """The unsubscribe links and headers of one message to one contact.

    Attributes:
        one_click_url: ``{public}/u/{token}``: GET shows a confirmation page, POST unsubscribes.
        preferences_url: ``{public}/preferences/{token}``: the contact's topic preferences page.
        headers: ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` to set on the message.
    """

    one_click_url: str
    preferences_url: str
    headers: dict[str, str]


def list_unsubscribe(
    *,
    public_url: str,
    secret: bytes,
    list_name: str,
    topic: str | None,
    email_address: str,
    now: datetime,
    ttl: timedelta,
    mailto: str | None = None,
    with_preferences: bool = True,
) -> ListUnsubscribe:
    """The List-Unsubscribe headers and URLs for (list, topic, contact).

    Args:
        public_url: Base URL of sojourn's pages as recipients reach them (``Settings.effective_public_url``).
        secret: The page-token key (``Settings.page_key``).
        list_name: The contact list.
        topic: The topic of the message, or None (then one-click leaves the whole list).
        email_address: The recipient's normalized address (``domain.lists.normalize_email``).
        now: The current time.
        ttl: How long the links stay valid (``Settings.page_token_ttl_days``).
        mailto: An address for the header's ``mailto:`` alternative, or None for none.
        with_preferences: Also sign the preferences URL (False when the content has no placeholder for it:
            a blast saves one signature per message); ``preferences_url`` is then "".

    Returns:
        The URLs and the headers.
    """
    base = public_url.rstrip("/")
    one_click = make_page_token(
        purpose="unsubscribe",
        list_name=list_name,
        email_address=email_address,
        topic=topic,
        now=now,
        ttl=ttl,
        secret=secret,
    )
    preferences = (
        make_page_token(
            purpose="preferences",
            list_name=list_name,
            email_address=email_address,
            topic=None,
            now=now,
            ttl=ttl,
            secret=secret,
        )
        if with_preferences
        else ""
    )
    one_click_url = f"{base}/u/{one_click}"
    value = f"<{one_click_url}>"
    if mailto:
        subject = quote(f"unsubscribe {list_name}{'/' + topic if topic else ''}")
        value += f", <mailto:{mailto}?subject={subject}>"
    return ListUnsubscribe(
        one_click_url=one_click_url,
        preferences_url=f"{base}/preferences/{preferences}" if preferences else "",
        headers={"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )


def replace_unsubscribe_placeholder(content: str | None, url: str) -> str | None:
    """``content`` with its first two ``{{amazonSESUnsubscribeUrl}}`` replaced by ``url`` (SES's rule)."""
    if content is None:
        return None
    return content.replace(UNSUBSCRIBE_PLACEHOLDER, url, MAX_PLACEHOLDER_REPLACEMENTS)
