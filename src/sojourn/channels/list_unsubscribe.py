"""List-Unsubscribe for list mail: the headers (RFC 2369, RFC 8058 one-click) and the unsubscribe URL.

Every sender of mail to a contact list (sesv2 SendEmail with ListManagementOptions, and journeys and
campaigns that name a list) calls :func:`list_unsubscribe` for each recipient and then:

* adds :attr:`ListUnsubscribe.headers` to the message, replacing any List-Unsubscribe headers it has;
* puts :attr:`ListUnsubscribe.preferences_url` where the content says ``{{amazonSESUnsubscribeUrl}}``
  (:func:`replace_unsubscribe_placeholder`, at most twice per part, as SES does).

The one-click URL (``POST /u/{token}``) opts the contact out of the topic, or of the whole list when there is
no topic; the preferences URL (``/preferences/{token}``) opens the page where the contact chooses per topic.
With ``SOJOURN_LIST_UNSUBSCRIBE_MAILTO`` set, the header also offers ``mailto:<address>?subject=unsubscribe
<one-click token>`` (RFC 2369); the SMTP listener reads the token back with :func:`mailto_unsubscribe_token`.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sojourn.channels.page_tokens import page_token_signer

UNSUBSCRIBE_PLACEHOLDER = "{{amazonSESUnsubscribeUrl}}"
MAILTO_SUBJECT_PREFIX = "unsubscribe "
_MAILTO_TOKEN = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)
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


class ListUnsubscribeLinks:
    """The List-Unsubscribe headers and URLs of one send to (list, topic), prepared once for all its recipients.

    The token signers, the URL bases and the header's fixed parts are made here; :meth:`for_address` then
    only signs the recipient's tokens (see :class:`~sojourn.channels.tracking.TokenTemplate`).

    Args:
        public_url: Base URL of sojourn's pages as recipients reach them (``Settings.effective_public_url``).
        secret: The page-token key (``Settings.page_key``).
        list_name: The contact list.
        topic: The topic of the message, or None (then one-click leaves the whole list).
        now: The current time (the links expire ``ttl`` after it).
        ttl: How long the links stay valid (``Settings.page_token_ttl_days``).
        mailto: An address for the header's ``mailto:`` alternative, or None for none.
        with_preferences: Also sign the preferences URL (False when the content has no placeholder for it:
            a blast saves one signature per message); ``preferences_url`` is then "".
    """

    __slots__ = ("_base", "_mailto", "_one_click", "_preferences")

    def __init__(
        self,
        *,
        public_url: str,
        secret: bytes,
        list_name: str,
        topic: str | None,
        now: datetime,
        ttl: timedelta,
        mailto: str | None = None,
        with_preferences: bool = True,
    ) -> None:
        self._base = public_url.rstrip("/")
        self._one_click = page_token_signer(
            purpose="unsubscribe", list_name=list_name, topic=topic, now=now, ttl=ttl, secret=secret
        )
        self._preferences = (
            page_token_signer(
                purpose="preferences", list_name=list_name, topic=None, now=now, ttl=ttl, secret=secret
            )
            if with_preferences
            else None
        )
        # The one-click token in the subject: a mail to the address does what the one-click POST does.
        self._mailto = f"mailto:{mailto}?subject={quote(MAILTO_SUBJECT_PREFIX)}" if mailto else None

    def for_address(self, email_address: str) -> ListUnsubscribe:
        """The URLs and headers for one recipient (its normalized address, ``domain.lists.normalize_email``)."""
        one_click = self._one_click.sign(email_address)
        one_click_url = f"{self._base}/u/{one_click}"
        value = f"<{one_click_url}>"
        if self._mailto:
            # Tokens are URL-safe (A-Z a-z 0-9 - _ .): quote() would leave them as they are.
            value += f", <{self._mailto}{one_click}>"
        preferences = self._preferences.sign(email_address) if self._preferences is not None else ""
        return ListUnsubscribe(
            one_click_url=one_click_url,
            preferences_url=f"{self._base}/preferences/{preferences}" if preferences else "",
            headers={"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        )


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
        with_preferences: Also sign the preferences URL (False when the content has no placeholder for it);
            ``preferences_url`` is then "".

    Returns:
        The URLs and the headers.
    """
    links = ListUnsubscribeLinks(
        public_url=public_url,
        secret=secret,
        list_name=list_name,
        topic=topic,
        now=now,
        ttl=ttl,
        mailto=mailto,
        with_preferences=with_preferences,
    )
    return links.for_address(email_address)


def replace_unsubscribe_placeholder(content: str | None, url: str) -> str | None:
    """``content`` with its first two ``{{amazonSESUnsubscribeUrl}}`` replaced by ``url`` (SES's rule)."""
    if content is None:
        return None
    return content.replace(UNSUBSCRIBE_PLACEHOLDER, url, MAX_PLACEHOLDER_REPLACEMENTS)


def mailto_unsubscribe_token(raw: bytes) -> str | None:
    """The one-click token of a mail sent to the List-Unsubscribe mailto address, or None if it has none.

    The token is in the subject (``unsubscribe <token>``, as the header's mailto URI sets it; replies and
    forwards keep it after a ``Re:``); a client that dropped the subject may have put it in the body.
    """
    message = email.message_from_bytes(raw, policy=email.policy.default)
    match = _MAILTO_TOKEN.search(str(message.get("Subject") or ""))
    if match is None:
        body = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
        try:
            text = body.get_content() if body is not None else ""
        except (KeyError, LookupError, ValueError):
            text = ""
        match = _MAILTO_TOKEN.search(text if isinstance(text, str) else "")
    return match.group(1) if match else None
