"""Tracking prepared once per template gives the same HTML as instrumenting each rendered message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from sojourn.channels.tracking import (
    instrument_html,
    parse_click_token,
    parse_open_token,
    plan_tracking,
    sign_token,
    verify_token,
)
from sojourn.domain.templates import compile_template

SECRET = hashlib.sha256(b"plan secret").digest()
PUBLIC = "https://track.example.com/"

CONTEXTS: list[dict[str, Any]] = [
    {"User": {"UserAttributes": {"FirstName": ["Ann"], "Tier": ["gold"]}}, "Attributes": {"n": ["3"]}},
    {"User": {"UserAttributes": {"FirstName": ["<b>\"Bo\" & ='x'</b>"]}}},
    {"User": {"UserAttributes": {"FirstName": ['Zoë </body> <a href="https://evil.example">']}}},
    {},
]

# Templates whose markup no value can change: the plan must exist and match instrument_html exactly.
STATIC = [
    '<html><body><h1>Hi {{User.UserAttributes.FirstName}}</h1><p><a href="https://example.com/a?x=1&amp;y=2">'
    "Read</a></p></body></html>",
    "<p>{{#if User.UserAttributes.Tier}}<a href='https://example.com/gold'>gold</a>{{else}}"
    '<a href=https://example.com/plain>plain</a>{{/if}}</p><a href="mailto:x@example.com">mail</a>',
    '{{#each Attributes.n}}<a href="https://example.com/n">{{this}}</a>{{/each}}',
    '<a data-sojourn-notrack href="https://example.com/keep">k</a><a href="https://track.example.com/t/c/x">o</a>'
    '<!-- <a href="https://example.com/commented"> --><a href="#top">t</a><a href="https://example.com/é">é</a>',
    "<body>{{User.UserAttributes.FirstName}}</body><p>after</p></BODY >tail",
    'no body at all, {{User.UserAttributes.FirstName}} <a href="https://example.com/x">x</a>',
    "<style>a{color:red}</style><script>var a = \"<a href='https://example.com/s'>\";</script>"
    '<a href="https://example.com/a" href="https://example.com/b">dup</a>',
]

# Templates whose values could change the markup: no plan (each message is instrumented whole).
DYNAMIC = [
    '<a href="https://example.com/{{Id}}">personal link</a>',
    "<p>{{{User.UserAttributes.FirstName}}}</p>",
    "<p>{{& User.UserAttributes.FirstName}}</p>",
    "{{> footer}}",
    "<a {{attrs}} href='https://example.com'>x</a>",
    "<{{tag}} href='https://example.com'>x</a>",
    "<!-- {{User.UserAttributes.FirstName}} -->",
    "<script>{{x}}</script>",
    "<body>x</body>{{User.UserAttributes.FirstName}}",
    "{{#if x}}<p></body>{{/if}}",
    "<p>\x00</p>",
    '<a href="https://example.com/{{!comment}}n">x</a>',
]


@pytest.mark.parametrize("source", STATIC)
@pytest.mark.parametrize("context", CONTEXTS)
def test_the_plan_renders_what_instrumenting_each_message_renders(
    source: str, context: dict[str, Any]
) -> None:
    plan = plan_tracking(source, PUBLIC, SECRET)
    assert plan is not None
    expected = instrument_html(
        compile_template(source).render(context, html=True),
        public_url=PUBLIC,
        message_id="m-42",
        secret=SECRET,
    )
    assert plan.instrument(compile_template(plan.source).render(context, html=True), "m-42") == expected


@pytest.mark.parametrize("source", DYNAMIC)
def test_no_plan_when_values_could_change_the_markup(source: str) -> None:
    assert plan_tracking(source, PUBLIC, SECRET) is None


def test_the_plan_is_made_once_per_template() -> None:
    assert plan_tracking(STATIC[0], PUBLIC, SECRET) is plan_tracking(STATIC[0], PUBLIC, SECRET)


def test_planned_tokens_verify_and_carry_the_message_and_target() -> None:
    plan = plan_tracking(STATIC[0], PUBLIC, SECRET)
    assert plan is not None
    html = plan.instrument(compile_template(plan.source).render({}, html=True), "msg-7")
    click = html.split('href="https://track.example.com/t/c/')[1].split('"')[0]
    opened = html.split('src="https://track.example.com/t/o/')[1].split('.gif"')[0]
    assert parse_click_token(click, SECRET) == ("msg-7", "https://example.com/a?x=1&y=2")
    assert parse_open_token(opened, SECRET) == "msg-7"


@pytest.mark.parametrize(
    "payload", [{"k": "o", "m": "abc"}, {"z": "1", "a": 'q"uo\\te\n', "é": "ünïcode\u2028 </script>"}, {}]
)
def test_sign_token_signs_the_sorted_compact_json_as_before(payload: dict[str, str]) -> None:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    tag = hmac.new(SECRET, body, hashlib.sha256).digest()[:16]
    assert sign_token(payload, SECRET) == f"{b64(body)}.{b64(tag)}"
    assert verify_token(sign_token(payload, SECRET), SECRET) == payload


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
