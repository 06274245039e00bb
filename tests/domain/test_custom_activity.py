"""Rules of the CUSTOM activity: delivery targets, problems, the payload and the hook's answer."""

from __future__ import annotations

import pytest

from sojourn.domain.custom_activity import (
    custom_payload,
    custom_problems,
    custom_spec,
    delivery_target,
    response_attributes,
)


def test_delivery_targets() -> None:
    assert delivery_target("https://hooks.example.com/x") == ("webhook", "https://hooks.example.com/x")
    assert delivery_target("http://127.0.0.1:8123/hook") == ("webhook", "http://127.0.0.1:8123/hook")
    assert delivery_target("score_endpoints") == ("function", "score_endpoints")
    with pytest.raises(ValueError, match=r"http:// only on 127\.0\.0\.1"):
        delivery_target("http://hooks.example.com/x")
    with pytest.raises(ValueError, match="cannot call AWS Lambda"):
        delivery_target("arn:aws:lambda:us-east-1:1:function:f")
    with pytest.raises(ValueError, match="not an https:// URL nor a custom activity name"):
        delivery_target("two words")


def test_problems_and_defaults() -> None:
    assert custom_problems({}) == [
        "CUSTOM needs a DeliveryUri (an https:// webhook or a custom activity name)"
    ]
    problems = custom_problems(
        {
            "DeliveryUri": "f",
            "EndpointTypes": ["FAX"],
            "MessageConfig": {"Data": "x" * 5001},
            "TemplateVersion": "2",
        }
    )
    assert len(problems) == 3 and "FAX is not an endpoint channel type" in problems[0]
    assert problems[2] == "CUSTOM.TemplateVersion needs a TemplateName"
    assert custom_problems({"DeliveryUri": "f", "TemplateName": "t", "TemplateVersion": "2"}) == []
    spec = custom_spec({"DeliveryUri": "f", "NextActivity": "n"})
    assert (spec.kind, spec.endpoint_types, spec.data, spec.next_activity) == (
        "function",
        ("CUSTOM",),
        "",
        "n",
    )


def test_payload_and_answer() -> None:
    spec = custom_spec({"DeliveryUri": "f", "MessageConfig": {"Data": "hello"}})
    payload = custom_payload(
        spec,
        app_id="app",
        journey_id="j",
        activity_id="hook",
        endpoints={"c1": {"Id": "c1"}},
        message_ids={"c1": "m1"},
    )
    assert payload == {
        "Message": "hello",
        "Data": "hello",
        "ApplicationId": "app",
        "JourneyId": "j",
        "ActivityId": "hook",
        "Endpoints": {"c1": {"Id": "c1"}},
        "MessageIds": {"c1": "m1"},
    }
    answer = {
        "Endpoints": {
            "c1": {"Attributes": {"answer": "yes", "score": 3}},
            "c2": {"Attributes": {"answer": "no"}},  # not in the call
            "c3": "nonsense",
        }
    }
    assert response_attributes(answer, {"c1", "c3"}) == {"c1": {"answer": "yes", "score": "3"}}
    assert response_attributes(["not", "an", "object"], {"c1"}) == {}


def test_payload_with_a_template() -> None:
    spec = custom_spec({"DeliveryUri": "f", "TemplateName": "promo", "TemplateVersion": "3"})
    assert (spec.template_name, spec.template_version) == ("promo", "3")
    payload = custom_payload(
        spec,
        app_id="app",
        journey_id="j",
        activity_id="hook",
        endpoints={"c1": {"Id": "c1"}},
        message_ids={"c1": "m1"},
        template=("PUSH", {"c1": {"Default": {"Body": "Hi Ann"}}}),
    )
    assert payload["Template"] == {"Name": "promo", "Type": "PUSH", "Version": "3"}
    assert payload["Messages"] == {"c1": {"Default": {"Body": "Hi Ann"}}}
    assert payload["Data"] == "" and "Template" not in custom_payload(
        custom_spec({"DeliveryUri": "f"}),
        app_id="app",
        journey_id="j",
        activity_id="hook",
        endpoints={},
        message_ids={},
        template=("PUSH", {}),
    )
