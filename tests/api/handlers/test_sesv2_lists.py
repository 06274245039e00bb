"""sesv2 contact lists, topics and contacts through a real boto3 client over HTTP, against real Postgres."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api_server import boto3_client, serve_api
from tests.support.helpers import unique

# Unsubscribing from all suppresses an address account-wide: each test module uses its own addresses.
ADA = f"ada-{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture(scope="module")
def sesv2(database_url: str) -> Iterator[Any]:
    with serve_api(database_url, smtp_url="null://") as (url, _):
        yield boto3_client("sesv2", url)


def topic(name: str, default: str = "OPT_IN", description: str | None = None) -> dict[str, str]:
    out = {"TopicName": name, "DisplayName": f"{name.title()} news", "DefaultSubscriptionStatus": default}
    if description is not None:
        out["Description"] = description
    return out


def make_list(sesv2: Any, *topics: dict[str, str]) -> str:
    name = unique("list-")
    sesv2.create_contact_list(
        ContactListName=name,
        Topics=list(topics),
        Description="Our letters",
        Tags=[{"Key": "team", "Value": "a"}],
    )
    return name


def test_contact_list_round_trip(sesv2: Any) -> None:
    name = make_list(sesv2, topic("weekly", description="Every Monday"), topic("offers", "OPT_OUT"))
    got = sesv2.get_contact_list(ContactListName=name)
    assert got["ContactListName"] == name and got["Description"] == "Our letters"
    assert [t["TopicName"] for t in got["Topics"]] == ["weekly", "offers"]
    assert got["Topics"][0]["Description"] == "Every Monday"
    assert got["Topics"][1]["DefaultSubscriptionStatus"] == "OPT_OUT"
    assert got["Tags"] == [{"Key": "team", "Value": "a"}]
    created = got["CreatedTimestamp"]

    sesv2.update_contact_list(
        ContactListName=name, Topics=[topic("weekly"), topic("events")], Description="New"
    )
    got = sesv2.get_contact_list(ContactListName=name)
    assert [t["TopicName"] for t in got["Topics"]] == ["weekly", "events"] and got["Description"] == "New"
    assert got["LastUpdatedTimestamp"] >= created
    # What an update leaves out is kept.
    sesv2.update_contact_list(ContactListName=name, Description="Newer")
    got = sesv2.get_contact_list(ContactListName=name)
    assert [t["TopicName"] for t in got["Topics"]] == ["weekly", "events"] and got["Description"] == "Newer"

    with pytest.raises(sesv2.exceptions.AlreadyExistsException, match="already exists"):
        sesv2.create_contact_list(ContactListName=name)
    sesv2.delete_contact_list(ContactListName=name)
    with pytest.raises(sesv2.exceptions.NotFoundException, match="does not exist"):
        sesv2.get_contact_list(ContactListName=name)
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.delete_contact_list(ContactListName=name)
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.update_contact_list(ContactListName=name, Topics=[])


def test_twenty_topics_allowed_twenty_first_refused(sesv2: Any) -> None:
    twenty = [topic(f"t{i:02d}") for i in range(20)]
    name = make_list(sesv2, *twenty)
    with pytest.raises(sesv2.exceptions.LimitExceededException, match="at most 20 topics"):
        sesv2.update_contact_list(ContactListName=name, Topics=[*twenty, topic("t20")])
    with pytest.raises(sesv2.exceptions.LimitExceededException):
        sesv2.create_contact_list(ContactListName=unique("list-"), Topics=[*twenty, topic("t20")])
    assert len(sesv2.get_contact_list(ContactListName=name)["Topics"]) == 20


def test_bad_lists_are_refused(sesv2: Any) -> None:
    with pytest.raises(sesv2.exceptions.BadRequestException, match="ContactListName"):
        sesv2.create_contact_list(ContactListName="no spaces allowed")
    with pytest.raises(sesv2.exceptions.BadRequestException, match="DefaultSubscriptionStatus"):
        sesv2.create_contact_list(
            ContactListName=unique("list-"),
            Topics=[{"TopicName": "a", "DisplayName": "A", "DefaultSubscriptionStatus": "MAYBE"}],
        )
    with pytest.raises(sesv2.exceptions.BadRequestException, match="twice"):
        sesv2.create_contact_list(ContactListName=unique("list-"), Topics=[topic("a"), topic("a")])


def test_list_contact_lists_pages(sesv2: Any) -> None:
    made = {make_list(sesv2) for _ in range(5)}
    seen: list[str] = []
    kwargs: dict[str, Any] = {"PageSize": 2}
    while True:
        page = sesv2.list_contact_lists(**kwargs)
        assert len(page["ContactLists"]) <= 2
        seen += [c["ContactListName"] for c in page["ContactLists"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert made <= set(seen) and seen == sorted(seen) and len(seen) == len(set(seen))
    with pytest.raises(sesv2.exceptions.BadRequestException, match="NextToken"):
        sesv2.list_contact_lists(NextToken="not-a-token!")


def test_contact_round_trip(sesv2: Any) -> None:
    name = make_list(sesv2, topic("weekly"), topic("offers", "OPT_OUT"))
    sesv2.create_contact(
        ContactListName=name,
        EmailAddress=ADA.replace("ada", "Ada").replace("example", "Example"),
        TopicPreferences=[{"TopicName": "weekly", "SubscriptionStatus": "OPT_OUT"}],
        AttributesData='{"plan": "pro"}',
    )
    got = sesv2.get_contact(ContactListName=name, EmailAddress=ADA)
    assert got["EmailAddress"] == ADA and got["UnsubscribeAll"] is False
    assert got["TopicPreferences"] == [{"TopicName": "weekly", "SubscriptionStatus": "OPT_OUT"}]
    assert got["TopicDefaultPreferences"] == [{"TopicName": "offers", "SubscriptionStatus": "OPT_OUT"}]
    assert got["AttributesData"] == '{"plan": "pro"}'

    with pytest.raises(sesv2.exceptions.AlreadyExistsException):
        sesv2.create_contact(ContactListName=name, EmailAddress=ADA)

    # UpdateContact replaces the preferences: weekly is no longer explicit.
    sesv2.update_contact(
        ContactListName=name,
        EmailAddress=ADA,
        TopicPreferences=[{"TopicName": "offers", "SubscriptionStatus": "OPT_IN"}],
        UnsubscribeAll=True,
    )
    got = sesv2.get_contact(ContactListName=name, EmailAddress=ADA)
    assert got["TopicPreferences"] == [{"TopicName": "offers", "SubscriptionStatus": "OPT_IN"}]
    assert got["TopicDefaultPreferences"] == [{"TopicName": "weekly", "SubscriptionStatus": "OPT_IN"}]
    assert got["UnsubscribeAll"] is True and got["AttributesData"] == '{"plan": "pro"}'

    with pytest.raises(sesv2.exceptions.BadRequestException, match="not a topic of the list"):
        sesv2.update_contact(
            ContactListName=name,
            EmailAddress=ADA,
            TopicPreferences=[{"TopicName": "nope", "SubscriptionStatus": "OPT_IN"}],
        )
    with pytest.raises(sesv2.exceptions.BadRequestException, match="not an email address"):
        sesv2.create_contact(ContactListName=name, EmailAddress="not-an-address")
    with pytest.raises(sesv2.exceptions.NotFoundException, match="list"):
        sesv2.create_contact(ContactListName=unique("missing-"), EmailAddress="x@example.com")

    sesv2.delete_contact(ContactListName=name, EmailAddress=ADA)
    with pytest.raises(sesv2.exceptions.NotFoundException, match=f"Contact {re.escape(ADA)}"):
        sesv2.get_contact(ContactListName=name, EmailAddress=ADA)
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.delete_contact(ContactListName=name, EmailAddress=ADA)
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.update_contact(ContactListName=name, EmailAddress=ADA)


def _all_contacts(sesv2: Any, name: str, **kwargs: Any) -> list[str]:
    out: list[str] = []
    while True:
        page = sesv2.list_contacts(ContactListName=name, **kwargs)
        out += [c["EmailAddress"] for c in page["Contacts"]]
        if "NextToken" not in page:
            return out
        kwargs["NextToken"] = page["NextToken"]


def test_list_contacts_filters_and_pages(sesv2: Any) -> None:
    name = make_list(sesv2, topic("weekly"), topic("offers", "OPT_OUT"))
    people = {
        "a@example.com": ([], False),  # defaults: weekly in, offers out
        "b@example.com": ([("weekly", "OPT_OUT"), ("offers", "OPT_IN")], False),
        "c@example.com": ([("weekly", "OPT_IN")], True),  # unsubscribed from all
        "d@example.com": ([("offers", "OPT_IN")], False),
        "e@example.com": ([("weekly", "OPT_IN")], False),
    }
    for email, (prefs, unsub) in people.items():
        sesv2.create_contact(
            ContactListName=name,
            EmailAddress=email,
            UnsubscribeAll=unsub,
            TopicPreferences=[{"TopicName": t, "SubscriptionStatus": s} for t, s in prefs],
        )
    everyone = _all_contacts(sesv2, name, PageSize=2)
    assert everyone == sorted(people)

    def filtered(status: str, topic_name: str | None = None, use_default: bool = False) -> list[str]:
        flt: dict[str, Any] = {"FilteredStatus": status}
        if topic_name:
            flt["TopicFilter"] = {"TopicName": topic_name, "UseDefaultIfPreferenceUnavailable": use_default}
        return _all_contacts(sesv2, name, Filter=flt, PageSize=1)

    assert filtered("OPT_OUT") == ["c@example.com"]
    assert filtered("OPT_IN") == ["a@example.com", "b@example.com", "d@example.com", "e@example.com"]
    assert filtered("OPT_IN", "weekly", use_default=True) == [
        "a@example.com",
        "d@example.com",
        "e@example.com",
    ]
    assert filtered("OPT_IN", "weekly") == ["e@example.com"]
    assert filtered("OPT_OUT", "weekly") == ["b@example.com", "c@example.com"]
    assert filtered("OPT_IN", "offers", use_default=True) == ["b@example.com", "d@example.com"]
    assert filtered("OPT_OUT", "offers", use_default=True) == [
        "a@example.com",
        "c@example.com",
        "e@example.com",
    ]

    page = sesv2.list_contacts(ContactListName=name, PageSize=1)
    assert page["Contacts"][0]["TopicDefaultPreferences"] == [
        {"TopicName": "weekly", "SubscriptionStatus": "OPT_IN"},
        {"TopicName": "offers", "SubscriptionStatus": "OPT_OUT"},
    ]

    with pytest.raises(sesv2.exceptions.BadRequestException, match="not a topic of the list"):
        sesv2.list_contacts(ContactListName=name, Filter={"TopicFilter": {"TopicName": "nope"}})
    with pytest.raises(sesv2.exceptions.BadRequestException, match="FilteredStatus"):
        sesv2.list_contacts(ContactListName=name, Filter={"FilteredStatus": "SOMETIMES"})
    with pytest.raises(sesv2.exceptions.BadRequestException, match="PageSize"):
        sesv2.list_contacts(ContactListName=name, PageSize=0)
    with pytest.raises(sesv2.exceptions.BadRequestException, match="NextToken"):
        sesv2.list_contacts(ContactListName=name, NextToken="garbage")
    with pytest.raises(sesv2.exceptions.NotFoundException):
        sesv2.list_contacts(ContactListName=unique("missing-"))


def test_deleting_a_list_deletes_its_contacts(sesv2: Any) -> None:
    name = make_list(sesv2, topic("weekly"))
    sesv2.create_contact(ContactListName=name, EmailAddress="gone@example.com")
    sesv2.delete_contact_list(ContactListName=name)
    sesv2.create_contact_list(ContactListName=name, Topics=[topic("weekly")])
    assert sesv2.list_contacts(ContactListName=name)["Contacts"] == []
