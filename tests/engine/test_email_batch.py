"""A send's prepared email: what every message shares is worked out once, each message gets its own links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sojourn.channels.email import NullTransport
from sojourn.channels.page_tokens import verify_page_token
from sojourn.engine.email_batch import EmailBatchSender
from sojourn.settings import Settings

SETTINGS = Settings(smtp_url="null://", public_url="https://mail.example.com")
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
TEMPLATE = {
    "Subject": "Hi {{User.UserAttributes.FirstName}}",
    "HtmlPart": '<p><a href="https://example.com/x">x</a> <a href="{{amazonSESUnsubscribeUrl}}">leave</a></p>',
    "TextPart": "Manage: {{amazonSESUnsubscribeUrl}}",
    "Headers": [
        {"Name": "X-SES-LIST-MANAGEMENT-OPTIONS", "Value": "contactListName=news; topicName=weekly"},
        {"Name": "X-Tier", "Value": "{{Attributes.tier}}"},
    ],
}
OPTIONS = {"ContactListName": "news", "TopicName": "weekly"}


def row(i: int, address: str) -> dict[str, Any]:
    return {
        "message_id": f"m{i}",
        "app_id": "app",
        "id": f"ep{i}",
        "channel_type": "EMAIL",
        "address": address,
        "attributes": {"tier": [f"t{i}"]},
        "user_attributes": {"FirstName": [f"Ada{i}"]},
        "cohort_id": 1,
        "endpoint_status": "ACTIVE",
        "opt_out": "NONE",
        "creation_date": NOW,
        "effective_date": NOW,
    }


def test_each_list_message_gets_its_own_links_for_its_normalized_address() -> None:
    sender = EmailBatchSender(None, SETTINGS, NullTransport())  # type: ignore[arg-type]
    prepared = sender.prepare(TEMPLATE, "news@example.com", OPTIONS, NOW)
    first, second = prepared.render(row(1, " Ada@Example.com ")), prepared.render(row(2, "bob@example.com"))
    assert (first.subject, second.subject) == ("Hi Ada1", "Hi Ada2")
    # Template headers are rendered per endpoint; the list-management header is never sent.
    assert first.headers["X-Tier"] == "t1" and second.headers["X-Tier"] == "t2"
    assert not any(name.lower() == "x-ses-list-management-options" for name in first.headers)
    assert first.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = first.headers["List-Unsubscribe"].removeprefix("<https://mail.example.com/u/").rstrip(">")
    claim = verify_page_token(one_click, purpose="unsubscribe", now=NOW, secret=SETTINGS.page_key)
    assert (claim.list_name, claim.topic, claim.email_address) == ("news", "weekly", "ada@example.com")
    assert second.headers["List-Unsubscribe"] != first.headers["List-Unsubscribe"]
    # {{amazonSESUnsubscribeUrl}} becomes the recipient's preferences page, in both parts.
    assert first.text is not None and first.html is not None
    preferences = first.text.removeprefix("Manage: https://mail.example.com/preferences/")
    page = verify_page_token(preferences, purpose="preferences", now=NOW, secret=SETTINGS.page_key)
    assert page.email_address == "ada@example.com" and page.topic is None
    assert f'href="https://mail.example.com/preferences/{preferences}"' in first.html
    # The other link is click-tracked, the unsubscribe link is not.
    assert first.html.count("https://mail.example.com/t/c/") == 1


def test_plain_mail_has_no_list_headers_and_renders_as_render_does() -> None:
    sender = EmailBatchSender(None, SETTINGS, NullTransport())  # type: ignore[arg-type]
    plain = {k: v for k, v in TEMPLATE.items() if k != "Headers"}
    prepared = sender.prepare(plain, "news@example.com")
    email = prepared.render(row(1, "ada@example.com"))
    assert "List-Unsubscribe" not in email.headers
    assert email == sender.render(row(1, "ada@example.com"), plain, "news@example.com")


@pytest.mark.parametrize(
    "template",
    [
        {"Subject": "{{Id}} {{CreationDate}}", "TextPart": "{{EffectiveDate}} {{CohortId}} {{OptOut}}"},
        {"Subject": "{{@root.User.UserId}}", "HtmlPart": "<p>{{Attributes.tier}} {{Address}}</p>"},
        {"Subject": "x", "TextPart": "{{#each this}}{{@key}}={{this}};{{/each}}"},
        {"Subject": "x", "TextPart": "{{#with User}}{{UserAttributes.FirstName}}{{/with}} {{ChannelType}}"},
        {
            "Subject": "x",
            "TextPart": '{{lookup . "EndpointStatus"}}',
            "DefaultSubstitutions": '{"Location.City": "?"}',
        },
        {"Subject": "x", "TextPart": "{{#each Attributes}}{{../ApplicationId}}{{/each}}"},
    ],
)
def test_a_message_renders_the_same_from_only_the_fields_its_template_reads(template: dict[str, Any]) -> None:
    sender = EmailBatchSender(None, SETTINGS, NullTransport())  # type: ignore[arg-type]
    prepared = sender.prepare(template, "news@example.com", None, NOW)
    endpoint = {**row(1, "ada@example.com"), "user_id": "u1", "request_id": "r1", "creation_date": NOW}
    fast = prepared.render(endpoint)
    prepared.names = None  # every field of the endpoint, as the API returns it
    assert fast == prepared.render(endpoint)
    assert fast.subject != "x" or fast.text
