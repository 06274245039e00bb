"""The pure rules of SMS, push and voice templates and how they render for one endpoint."""

from __future__ import annotations

import pytest

from sojourn.domain.message_templates import (
    TemplateRuleError,
    check_push_template,
    check_sms_template,
    check_voice_template,
    render_push,
    render_sms,
    render_template_fields,
)
from sojourn.domain.templates import build_context


def test_sms_and_voice_bodies_are_checked() -> None:
    check_sms_template({"Body": "Hi {{Attributes.Name}}"})
    check_voice_template({"Body": "x" * 10_000})
    with pytest.raises(TemplateRuleError, match="at most 10000"):
        check_voice_template({"Body": "x" * 10_001})
    with pytest.raises(TemplateRuleError, match=r"SMSTemplateRequest\.Body is not a valid template"):
        check_sms_template({"Body": "{{#each}}"})


def test_push_rules() -> None:
    check_push_template({"APNS": {"Title": "t"}})
    with pytest.raises(TemplateRuleError, match="Action 'JUMP'"):
        check_push_template({"Default": {"Body": "b", "Action": "JUMP"}})
    with pytest.raises(TemplateRuleError, match="ADM has 6001 characters"):
        check_push_template({"ADM": {"Body": "x" * 6001}})
    check_push_template({"ADM": {"Body": "x" * 6000}})


def test_render_picks_the_service_block_over_default() -> None:
    context = build_context({"Attributes": {"Name": ["Ada"]}}, default_substitutions=None)
    template = {
        "Default": {"Title": "Hello", "Body": "Hi {{Attributes.Name}}"},
        "APNS": {"Body": "Apple {{Attributes.Name}}"},
    }
    assert render_push(template, "APNS_SANDBOX", context) == {"Title": "Hello", "Body": "Apple Ada"}
    assert render_push(template, "GCM", context) == {"Title": "Hello", "Body": "Hi Ada"}
    with pytest.raises(ValueError, match="no Body"):
        render_push({"APNS": {"Body": "b"}}, "GCM", context)
    assert render_sms({"Body": "Hi {{Attributes.Name}}"}, context) == {"Body": "Hi Ada"}


def test_every_message_field_of_any_template_renders() -> None:
    context = build_context({"Attributes": {"name": ["<Ann>"]}}, default_substitutions=None)
    email = {
        "Subject": "Hi {{Attributes.name}}",
        "HtmlPart": "<p>{{Attributes.name}}</p>",
        "TextPart": "{{Attributes.name}}",
        "TemplateDescription": "not a message field",
        "DefaultSubstitutions": '{"x": "y"}',
    }
    assert render_template_fields(email, context) == {
        "Subject": "Hi <Ann>",
        "HtmlPart": "<p>&lt;Ann&gt;</p>",
        "TextPart": "<Ann>",
    }
    push = {"Default": {"Body": "{{Attributes.name}}", "Action": "OPEN_APP"}, "GCM": {"Title": "t"}}
    assert render_template_fields(push, context) == {
        "Default": {"Body": "<Ann>", "Action": "OPEN_APP"},
        "GCM": {"Title": "t"},
    }
