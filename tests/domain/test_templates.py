"""Pinpoint (Handlebars) message templates: syntax, escaping, helpers, substitution rules and errors."""

from __future__ import annotations

import copy
import pickle
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from sojourn.domain.templates import (
    MAX_EACH,
    RenderedEmail,
    TemplateSyntaxError,
    build_context,
    compile_template,
    format_date,
    parse_default_substitutions,
    render_email,
    root_names,
    to_text,
    validate_template_source,
)

ENDPOINT: dict[str, Any] = {
    "Address": "ann@example.com",
    "ChannelType": "EMAIL",
    "Id": "ep-1",
    "EndpointStatus": "ACTIVE",
    "OptOut": "NONE",
    "EffectiveDate": "2020-09-19T11:45:25.220Z",
    "CreationDate": "2019-06-30T11:45:25.220Z",
    "Attributes": {"plan": ["pro"], "Interests": ["golf", "chess", "jazz"], "Age": ["25"]},
    "Metrics": {"score": 3.0, "ratio": 2.5},
    "Demographic": {"Timezone": "America/Los_Angeles", "Locale": "en_US"},
    "Location": {"City": "Los Angeles", "Country": "US"},
    "User": {"UserId": "u-1", "UserAttributes": {"FirstName": ["Ann"], "Last Name": ["Lee"]}},
}


def render(source: str, context: dict[str, Any] | None = None, *, html: bool = False) -> str:
    return compile_template(source).render(ENDPOINT if context is None else context, html=html)


def syntax_error(source: str) -> TemplateSyntaxError:
    with pytest.raises(TemplateSyntaxError) as caught:
        compile_template(source)
    return caught.value


# ---- variables and paths ----


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{User.UserAttributes.FirstName}}!", "Hi Ann!"),
        ("{{Attributes.plan}}", "pro"),
        (
            "{{Address}} {{Id}} {{ChannelType}} {{EndpointStatus}} {{OptOut}}",
            "ann@example.com ep-1 EMAIL ACTIVE NONE",
        ),
        ("{{EffectiveDate}}", "2020-09-19T11:45:25.220Z"),
        ("{{Demographic.Timezone}} {{Location.City}}", "America/Los_Angeles Los Angeles"),
        ("{{Metrics.score}} {{Metrics.ratio}}", "3 2.5"),
        ("{{Attributes.Interests}}", "golf,chess,jazz"),
        ("{{Attributes.Interests.[0]}} {{Attributes.Interests.[2]}}", "golf jazz"),
        ("{{Attributes.Interests.0}}", "golf"),
        ("[{{Attributes.Interests.[9]}}]", "[]"),
        ("{{Attributes.Interests.length}}", "3"),
        ("{{User.UserAttributes.[Last Name]}} {{User.UserAttributes.[Last Name].[0]}}", "Lee Lee"),
        ("{{User/UserAttributes/FirstName}}", "Ann"),
        ("[{{Nope}}][{{User.Nope.Deeper}}][{{Address.Nope}}]", "[][][]"),
        ("{{this.Address}} {{./Id}}", "ann@example.com ep-1"),
        ("{{@root.Id}}", "ep-1"),
    ],
)
def test_variables(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("text", "text"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (3.0, "3"),
        (-3.0, "-3"),
        (2.5, "2.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1e+21"),
        (1.5e22, "1.5e+22"),
        (123456789012345680000.0, "123456789012345680000"),
        (0.00001, "0.00001"),
        (-0.000001, "-0.000001"),
        (1.5e-7, "1.5e-7"),
        (-1e-7, "-1e-7"),
        (123.456, "123.456"),
        (2**53 + 2.0, "9007199254740994"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (["Ann"], "Ann"),
        (["a", "b"], "a,b"),
        ([], ""),
        ([1.0, None, ["x", 2.5]], "1,,x,2.5"),
        ({"a": 1}, "[object Object]"),
    ],
)
def test_values_print_like_javascript(value: Any, expected: str) -> None:
    assert to_text(value) == expected
    assert render("{{v}}", {"v": value}) == expected


def test_this_and_parent_access_inside_blocks() -> None:
    source = "{{#with Location}}{{City}}/{{../Address}}/{{this.Country}}{{/with}}"
    assert render(source) == "Los Angeles/ann@example.com/US"


def test_lookups_do_not_fall_back_to_outer_scopes() -> None:
    # As Handlebars: inside each, a bare name is looked up on the item; ../ or @root reach the endpoint.
    source = "{{#each Attributes.plan}}[{{Address}}][{{../Address}}][{{@root.Address}}]{{/each}}"
    assert render(source) == "[][ann@example.com][ann@example.com]"


# ---- escaping ----


def test_html_escapes_double_stash_like_handlebars() -> None:
    context = {"v": "&<>\"'`="}
    assert render("{{v}}", context, html=True) == "&amp;&lt;&gt;&quot;&#x27;&#x60;&#x3D;"


def test_triple_stash_and_ampersand_never_escape() -> None:
    context = {"v": "<b>&</b>"}
    assert render("{{{v}}}|{{&v}}", context, html=True) == "<b>&</b>|<b>&</b>"


def test_text_mode_escapes_nothing() -> None:
    assert render("{{v}} {{{v}}}", {"v": "Tom & <Jerry>"}, html=False) == "Tom & <Jerry> Tom & <Jerry>"


def test_template_markup_itself_is_not_escaped() -> None:
    assert (
        render('<a href="x?a=1&b=2">{{v}}</a>', {"v": "A&B"}, html=True) == '<a href="x?a=1&b=2">A&amp;B</a>'
    )


def test_helper_output_is_escaped_in_html() -> None:
    assert render("{{upper v}}|{{{upper v}}}", {"v": "<i>"}, html=True) == "&lt;I&gt;|<I>"
    assert render("{{eq 1 1 yes='<y>'}}", {}, html=True) == "&lt;y&gt;"


def test_literal_head_names_a_variable_or_helper_as_handlebars() -> None:
    assert render("[{{'Address'}}][{{\"a b\"}}][{{'upper' 'x'}}]", {"Address": "A"}) == "[A][][X]"


def test_escaped_mustache_is_literal() -> None:
    assert render("a \\{{User.UserId}} b {{User.UserId}}") == "a {{User.UserId}} b u-1"
    assert render("\\\\{{User.UserId}}") == "\\u-1"


# ---- blocks ----


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x", "yes"),
        ("", "no"),
        (None, "no"),
        (0, "no"),
        (0.0, "no"),
        (1, "yes"),
        (False, "no"),
        (True, "yes"),
        ([], "no"),
        ([""], "yes"),
        ({}, "yes"),
    ],
)
def test_if_truthiness(value: Any, expected: str) -> None:
    assert render("{{#if v}}yes{{else}}no{{/if}}", {"v": value}) == expected
    assert render("{{#unless v}}no{{else}}yes{{/unless}}", {"v": value}) == expected


def test_if_include_zero() -> None:
    assert render("{{#if v includeZero=true}}yes{{else}}no{{/if}}", {"v": 0}) == "yes"
    assert render("{{#if v includeZero=true}}yes{{else}}no{{/if}}", {"v": False}) == "no"


def test_if_missing_variable_and_no_else() -> None:
    assert render("a{{#if User.UserAttributes.Nope}}X{{/if}}b") == "ab"


def test_else_if_chain() -> None:
    source = "{{#if a}}A{{else if b}}B{{else unless c}}notC{{else}}C{{/if}}"
    assert render(source, {"a": 1}) == "A"
    assert render(source, {"b": 1}) == "B"
    assert render(source, {}) == "notC"
    assert render(source, {"c": 1}) == "C"


def test_else_chain_with_a_conditional_helper() -> None:
    source = '{{#eq Location.City "Paris"}}FR{{else eq Location.City "Los Angeles"}}LA{{else}}?{{/eq}}'
    assert render(source) == "LA"


def test_each_over_list_with_index_first_last() -> None:
    source = "{{#each Attributes.Interests}}{{@index}}={{this}}{{#if @first}}^{{/if}}{{#if @last}}${{/if}};{{/each}}"
    assert render(source) == "0=golf^;1=chess;2=jazz$;"


def test_each_else_for_empty_missing_and_non_list() -> None:
    source = "{{#each v}}{{this}}{{else}}none{{/each}}"
    assert render(source, {"v": []}) == "none"
    assert render(source, {}) == "none"
    assert render(source, {"v": "text"}) == "none"


def test_each_stops_after_fifteen_items_as_pinpoint() -> None:
    items = list(range(20))
    assert render("{{#each v}}{{this}},{{/each}}", {"v": items}) == "".join(f"{i}," for i in range(MAX_EACH))


def test_each_over_mapping_with_key() -> None:
    assert render("{{#each v}}{{@key}}={{this}};{{/each}}", {"v": {"a": 1, "b": [2, 3]}}) == "a=1;b=2,3;"


def test_each_over_objects_and_parent_access() -> None:
    context = {"Owner": "Ann", "Orders": [{"Sku": "A1", "Qty": 2.0}, {"Sku": "B2", "Qty": 1.0}]}
    source = "{{#each Orders}}{{@index}}:{{Sku}}x{{Qty}} for {{../Owner}}\n{{/each}}"
    assert render(source, context) == "0:A1x2 for Ann\n1:B2x1 for Ann\n"


def test_nested_each_reaches_outer_item_with_dot_dot() -> None:
    context = {"rows": [{"name": "r1", "cells": ["a", "b"]}]}
    source = "{{#each rows}}{{#each cells}}{{../name}}.{{this}}@{{@index}} {{/each}}{{/each}}"
    assert render(source, context) == "r1.a@0 r1.b@1 "


def test_if_inside_each_does_not_change_dot_dot() -> None:
    context = {"Owner": "Ann", "items": ["x"]}
    assert render("{{#each items}}{{#if this}}{{../Owner}}{{/if}}{{/each}}", context) == "Ann"


def test_with_block_and_else() -> None:
    assert render("{{#with Location}}{{City}}, {{Country}}{{/with}}") == "Los Angeles, US"
    assert render("{{#with Nope}}x{{else}}none{{/with}}") == "none"


def test_sections_and_inverted_sections() -> None:
    assert render("{{#User.UserAttributes}}{{FirstName}}{{/User.UserAttributes}}") == "Ann"
    assert render("{{#Attributes.Interests}}<{{this}}>{{/Attributes.Interests}}") == "<golf><chess><jazz>"
    assert (
        render("{{^Nope}}missing{{/Nope}}{{^Address}}x{{else}}has address{{/Address}}")
        == "missinghas address"
    )


def test_comments_render_nothing() -> None:
    assert render("a{{! a comment }}b{{!-- has }} inside --}}c") == "abc"


def test_whitespace_control() -> None:
    assert render("a   {{~v~}}   b", {"v": "X"}) == "aXb"
    assert render("<ul>\n  {{~#each v~}}\n  <li>{{this}}</li>\n  {{~/each~}}\n</ul>", {"v": [1, 2]}) == (
        "<ul><li>1</li><li>2</li></ul>"
    )
    assert render("a {{~! gone ~}} b") == "ab"
    assert render("a {{~!-- gone --~}} b") == "ab"


def test_standalone_block_lines_leave_no_blank_lines() -> None:
    source = "Hi {{User.UserAttributes.FirstName}},\n  {{#if Attributes.plan}}\n  You are on {{Attributes.plan}}.\n  {{/if}}\n  {{! note }}\nBye\n"
    assert render(source) == "Hi Ann,\n  You are on pro.\nBye\n"


def test_inline_tags_are_not_standalone() -> None:
    assert render("a {{#if x}}y{{/if}} b\n", {"x": 1}) == "a y b\n"


def test_standalone_each_in_text_part() -> None:
    source = "Interests:\n{{#each Attributes.Interests}}\n- {{this}}\n{{/each}}\nThanks"
    assert render(source) == "Interests:\n- golf\n- chess\n- jazz\nThanks"


def test_inline_partials() -> None:
    source = (
        '{{#*inline "fullName"}}{{User.UserAttributes.FirstName.[0]}}'
        "{{#if User.UserAttributes.[Last Name].[0]}} {{User.UserAttributes.[Last Name].[0]}}{{/if}}{{/inline}}"
        "Hello {{> fullName}}!"
    )
    assert render(source) == "Hello Ann Lee!"


def test_partial_with_context_argument() -> None:
    source = '{{#*inline "place"}}{{City}} ({{Country}}){{/inline}}{{> place Location}}'
    assert render(source) == "Los Angeles (US)"


# ---- conditional helpers ----


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{eq Attributes.plan "pro"}}', "true"),
        ('{{eq Attributes.plan "free"}}', "false"),
        ("{{eq Attributes.plan \"pro\" yes='Y' no='N'}}", "Y"),
        ("{{eq Attributes.plan \"free\" yes='Y' no='N'}}", "N"),
        ("[{{eq Attributes.plan \"free\" yes='Y'}}]", "[]"),
        ("{{neq Location.Country 'FR' yes='abroad' no='home'}}", "abroad"),
        ("{{eq Metrics.score 3}}", "true"),
        ("{{eq Metrics.score '3'}}", "true"),
        ("{{eq '01' '1'}}", "false"),
        ("{{eq Nope ''}}", "true"),
        ("{{gt Attributes.Age '17'}}", "true"),
        ("{{gt Attributes.Age.[0] 100}}", "false"),
        ("{{gte Metrics.score 3}} {{lte Metrics.score 3}} {{lt Metrics.score 3}}", "true true false"),
        ("{{gt '100' '17'}}", "true"),
        ("{{lt 'apple' 'banana'}}", "true"),
        ("{{gt Nope 1}} {{lt Nope 1}}", "false false"),
        ("{{gt 'abc' 1}}", "false"),
        ("{{and Address Attributes.plan}} {{and Address Nope}}", "true false"),
        ("{{or Nope Address}} {{or Nope ''}}", "true false"),
        ("{{not Nope}} {{not Address}}", "true false"),
        ("{{not (eq Location.City 'Paris') yes='elsewhere'}}", "elsewhere"),
        ("{{and Address Attributes.plan yes='both' no='not both'}}", "both"),
    ],
)
def test_conditional_helpers_inline(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{#eq Attributes.plan "pro"}}P{{else}}other{{/eq}}', "P"),
        ('{{#neq Attributes.plan "pro"}}P{{else}}other{{/neq}}', "other"),
        ('{{#gt Attributes.Age.[0] "17"}}adult{{else}}minor{{/gt}}', "adult"),
        ('{{#gte Attributes.Age.[0] "25"}}25+{{/gte}}', "25+"),
        ('{{#lt Attributes.Age.[0] "18"}}minor{{else}}adult{{/lt}}', "adult"),
        ('{{#lte Attributes.Age.[0] "17"}}minor{{else}}adult{{/lte}}', "adult"),
        ('{{#and (eq Location.City "Los Angeles") (eq Location.Country "US")}}LA{{else}}no{{/and}}', "LA"),
        (
            '{{#or (eq Location.City "Seattle") (eq Location.City "Los Angeles")}}west{{else}}east{{/or}}',
            "west",
        ),
        ('{{#not (eq Location.City "Paris")}}not Paris{{else}}Paris{{/not}}', "not Paris"),
        ("{{#if (gt Metrics.score 2)}}high{{/if}}", "high"),
    ],
)
def test_conditional_helpers_as_blocks(source: str, expected: str) -> None:
    assert render(source) == expected


# ---- string, math and encoding helpers ----


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{upper User.UserAttributes.FirstName}}", "ANN"),
        ("{{lower 'SANTOS'}}", "santos"),
        ("{{capitalize 'my first post'}}", "My First Post"),
        ("{{capitalize 'mY fIRST' fully=true}}", "My First"),
        ("{{capitalizeFirst 'my first post'}}", "My first post"),
        ('{{capitalizeFirst (lower "JANE")}}', "Jane"),
        ("{{abbreviate 'Alejandro' 6}}", "Ale..."),
        ("{{abbreviate 'Ann' 6}}", "Ann"),
        ("{{center Location.City size=15 pad='*'}}", "**Los Angeles**"),
        (
            "[{{ljust Location.City 13}}][{{rjust Location.City 13 pad='.'}}]",
            "[Los Angeles  ][..Los Angeles]",
        ),
        ("{{cut Location.City 'e'}} {{cut Location.City}}", "Los Angls LosAngeles"),
        ("{{replace Location.City ' ' '_'}}", "Los_Angeles"),
        ("{{replace Location.City '' '_'}}", "Los Angeles"),
        ("{{join Attributes.Interests ', '}}", "golf, chess, jazz"),
        ("{{join Attributes.Interests}}", "golf,chess,jazz"),
        ("{{join Attributes.Interests ' / ' prefix='[' suffix=']'}}", "[golf / chess / jazz]"),
        ("{{join 'a' 'b' 'c' '-'}}", "a-b-c"),
        ("[{{join Nope ', '}}]", "[]"),
        ("{{substring Location.City 4 9}} {{substring Location.City 4}}", "Angel Angeles"),
        (
            "{{inflect 3 apple apples includeCount=false}} {{inflect 1 apple apples includeCount=true}}",
            "apples 1 apple",
        ),
        ("{{inflect 3 'box' 'boxes' includeCount=true}}", "3 boxes"),
        (
            "{{ordinalize 1}} {{ordinalize 2}} {{ordinalize 3}} {{ordinalize 11}} {{ordinalize 22}} {{ordinalize 113}}",
            "1st 2nd 3rd 11th 22nd 113th",
        ),
        ("{{ordinalize 'x'}}", "x"),
        ("{{slugify ' Los Angeles! '}}", "los-angeles"),
        ("{{stripTags '<h1>Art</h1>'}}", "Art"),
        ("{{yesno true}} {{yesno false}} {{yesno Nope}} {{yesno 'true' yes='Y'}}", "yes no maybe Y"),
        ("{{lookup Attributes 'plan'}} {{lookup Attributes.Interests 1}}", "pro chess"),
        ("{{upper Nope}}|{{abbreviate Nope 3}}", "|"),
    ],
)
def test_string_helpers(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{add 5 2.3}}", "7.3"),
        ("{{subtract 5 2.3}}", "2.7"),
        ("{{multiply 5 2.3}}", "11.5"),
        ("{{divide 10 4}}", "2.5"),
        ("{{divide 5 2.3}}", "2.1739130434782608"),
        ("{{modulo 7 2}}", "1"),
        ("{{ceiling 5.23}} {{floor 5.73}} {{round 19.21}} {{round 2.5}} {{round -2.5}}", "6 5 19 3 -3"),
        ("{{add Metrics.score 1}} {{add Attributes.Age 1}}", "4 26"),
        ("{{add (multiply 2 3) 1}}", "7"),
        ("[{{add Nope 1}}][{{divide 1 0}}][{{modulo 1 0}}][{{add 'x' 1}}]", "[][][][]"),
    ],
)
def test_math_helpers(source: str, expected: str) -> None:
    assert render(source) == expected


def test_encoding_helpers() -> None:
    assert render("{{encode64 'Hello World'}}") == "SGVsbG8gV29ybGQ="
    assert render("{{decode64 'SGVsbG8gV29ybGQ='}}|{{decode64 '%%%'}}") == "Hello World|"
    assert render("{{md5 'Hello World'}}") == "b10a8db164e0754105b7a99be72e3fe5"
    assert (
        render("{{sha256 'Hello World'}}")
        == "a591a6d40bf420404a011733cfb7b190d62c65bf0bcda32b57b277d9ad9f146e"
    )
    assert render("{{sha512 'a'}}").startswith("1f40fc92da241694")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", render("{{uuid}}"))


# ---- dates ----


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{dateFormat EffectiveDate}}", "Sep 19, 2020"),
        ("{{dateFormat EffectiveDate 'full'}}", "Saturday, September 19, 2020"),
        ("{{dateFormat EffectiveDate 'long'}}", "September 19, 2020"),
        ("{{dateFormat EffectiveDate format='short'}}", "9/19/20"),
        ("{{dateFormat EffectiveDate \"yyyy-MM-dd'T'HH:mm:ss.SSSXXX\"}}", "2020-09-19T11:45:25.220Z"),
        (
            "{{dateFormat EffectiveDate 'EEE d MMM yy, h:mm a z' tz=America/Los_Angeles}}",
            "Sat 19 Sep 20, 4:45 AM PDT",
        ),
        ("{{dateFormat EffectiveDate 'HH:mm Z' tz=Demographic.Timezone}}", "04:45 -0700"),
        ("{{dateFormat EffectiveDate 'HH:mm' tz='Nowhere/Unknown'}}", "11:45"),
        (
            "{{dateFormat '09/19/2020' inputFormat='MM/dd/yyyy' outputFormat='full' tz=America/Los_Angeles}}",
            "Saturday, September 19, 2020",
        ),
        ("{{dateFormat '2020-09-19' 'dd.MM.yyyy'}}", "19.09.2020"),
        ("{{dateFormat 1600516800000 'yyyy-MM-dd HH:mm'}}", "2020-09-19 12:00"),
        ("{{dateFormat 'soon' 'yyyy'}}", "soon"),
        ("[{{dateFormat Nope 'yyyy'}}]", "[]"),
        ("{{dateFormat EffectiveDate \"'Q' yyyy 'o''clock'\"}}", "Q 2020 o'clock"),
    ],
)
def test_date_format(source: str, expected: str) -> None:
    assert render(source) == expected


def test_now_formats_the_current_date() -> None:
    year = str(datetime.now(UTC).year)
    assert render("{{now 'yyyy'}}") == year
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", render("{{now}}"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", render("{{now 'yyyy-MM-dd' tz=America/Los_Angeles}}"))


def test_format_date_styles() -> None:
    moment = datetime(2024, 3, 5, 14, 7, 9, tzinfo=UTC)
    assert format_date(moment, "short") == "3/5/24"
    assert format_date(moment, "hh:mm:ss a, EEEE") == "02:07:09 PM, Tuesday"


# ---- syntax errors ----


@pytest.mark.parametrize(
    ("source", "line", "column", "fragment"),
    [
        ("Hi {{#if User.UserId}}there", 1, 4, "{{#if}} is never closed"),
        ("a\nb {{#each Attributes.Interests}}\n{{#if x}}{{/if}}", 2, 3, "{{#each}} is never closed"),
        ("{{#if a}}x{{/each}}", 1, 11, "{{/each}} does not match {{#if}} opened at line 1, column 1"),
        ("x {{/if}}", 1, 3, "closes no open block"),
        ("{{else}}", 1, 1, "{{else}} outside"),
        ("{{#if a}}1{{else}}2{{else}}3{{/if}}", 1, 20, "second {{else}}"),
        ("line one\nHello {{User.UserId", 2, 7, "never closed with '}}'"),
        ("{{{raw}}", 1, 1, "never closed with '}}}'"),
        ("{{x}}}", 1, 1, "closed by '}}}'"),
        ("{{!-- never closed", 1, 1, "never closed with --}}"),
        ("{{! never closed", 1, 1, "never closed with }}"),
        ("{{}}", 1, 1, "empty tag"),
        ("{{  }}", 1, 1, "empty tag"),
        ("{{foo bar}}", 1, 1, "unknown helper 'foo'"),
        ("{{#foo bar}}{{/foo}}", 1, 1, "unknown block helper 'foo'"),
        ("{{#upper x}}{{/upper}}", 1, 1, "upper is not a block helper"),
        ("{{#if}}x{{/if}}", 1, 1, "needs exactly one value"),
        ("{{#each a b}}x{{/each}}", 1, 1, "needs exactly one value"),
        ("{{eq a 'b}}", 1, 8, "string '… is never closed"),
        ("{{#if (eq a 'b'}}x{{/if}}", 1, 1, "'(' is never closed"),
        ("{{eq a b)}}", 1, 9, "unexpected ')'"),
        ("{{eq a yes='y' b}}", 1, 16, "positional arguments must come before"),
        ("{{eq a yes=}}", 1, 8, "yes= needs a value"),
        ("{{#each items as |item|}}{{/each}}", 1, 18, "block parameters"),
        ("{{'a' 'b'}}", 1, 1, "unknown helper 'a'"),
        ("{{(upper a) b}}", 1, 1, "only a helper takes arguments"),
        ("{{{{raw}}}}{{{{/raw}}}}", 1, 1, "raw blocks"),
        ("{{> missing}}", 1, 1, "partial 'missing' is not defined"),
        ('{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}', 1, 17, "partial 'p' calls itself"),
        ("{{#> layout}}x{{/layout}}", 1, 1, "partial blocks"),
        ("{{Attributes.[plan}}", 1, 14, "'[' is never closed"),
        ("{{a <b>}}", 1, 5, "unexpected '<'"),
        ("{{@../index}}", 1, 3, "invalid data variable"),
    ],
)
def test_syntax_errors_say_where_and_what(source: str, line: int, column: int, fragment: str) -> None:
    error = syntax_error(source)
    assert (error.line, error.column) == (line, column), str(error)
    assert fragment in error.reason
    assert str(error).startswith(f"line {line}, column {column}: ")


def test_syntax_error_is_a_value_error_and_pickles() -> None:
    error = syntax_error("{{#if x}}")
    assert isinstance(error, ValueError)
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.reason, copied.line, copied.column) == (error.reason, error.line, error.column)


def test_validate_template_source() -> None:
    validate_template_source("Hi {{User.UserAttributes.FirstName}} {{#if x}}!{{/if}}")
    with pytest.raises(TemplateSyntaxError, match=r"line 1, column 1: \{\{#if\}\} is never closed"):
        validate_template_source("{{#if x}}")


def test_compiled_templates_are_cached() -> None:
    source = "cached {{User.UserId}}"
    assert compile_template(source) is compile_template(source)


# ---- substitution rules ----


def test_build_context_exposes_endpoint_fields() -> None:
    context = build_context(ENDPOINT, default_substitutions=None)
    assert render("{{User.UserId}} {{Metrics.score}} {{Location.City}}", context) == "u-1 3 Los Angeles"


def test_default_applies_when_missing_or_empty() -> None:
    defaults = (
        '{"User.UserAttributes.FirstName": "there", "Attributes.plan": "free", "Location.City": "your city"}'
    )
    source = "Hi {{User.UserAttributes.FirstName}} ({{User.UserAttributes.FirstName.[0]}}), {{Attributes.plan}}, {{Location.City}}"
    for empty in (None, [], [""], ""):
        endpoint = {"User": {"UserAttributes": {"FirstName": empty}}, "Attributes": {"plan": empty}}
        context = build_context(endpoint, default_substitutions=defaults)
        assert render(source, context) == "Hi there (there), free, your city"


def test_default_does_not_replace_a_value() -> None:
    context = build_context(ENDPOINT, default_substitutions='{"User.UserAttributes.FirstName": "there"}')
    assert render("Hi {{User.UserAttributes.FirstName}}", context) == "Hi Ann"


def test_without_default_a_missing_variable_renders_nothing() -> None:
    context = build_context({}, default_substitutions=None)
    assert render("Hi {{User.UserAttributes.FirstName}}!", context) == "Hi !"


def test_default_for_an_indexed_variable() -> None:
    defaults = '{"User.UserAttributes.FirstName.[0]": "there", "User.UserAttributes.[Last Name]": "Doe"}'
    context = build_context({"User": {"UserAttributes": {"FirstName": [""]}}}, default_substitutions=defaults)
    assert (
        render("{{User.UserAttributes.FirstName.[0]}} {{User.UserAttributes.[Last Name]}}", context)
        == "there Doe"
    )


def test_substitutions_override_endpoint_values() -> None:
    context = build_context(
        ENDPOINT,
        default_substitutions=None,
        substitutions={"User.UserAttributes.FirstName": ["Bob"], "Coupon": ["SAVE10"]},
    )
    assert (
        render("{{User.UserAttributes.FirstName}} {{Coupon}} {{Address}}", context)
        == "Bob SAVE10 ann@example.com"
    )


def test_defaults_fill_in_after_substitutions() -> None:
    context = build_context(
        ENDPOINT,
        default_substitutions='{"User.UserAttributes.FirstName": "there", "Coupon": "WELCOME"}',
        substitutions={"User.UserAttributes.FirstName": [""]},
    )
    assert render("{{User.UserAttributes.FirstName}} {{Coupon}}", context) == "there WELCOME"


def test_build_context_does_not_modify_the_endpoint() -> None:
    endpoint = copy.deepcopy(ENDPOINT)
    endpoint["User"]["UserAttributes"]["FirstName"] = []
    before = copy.deepcopy(endpoint)
    build_context(
        endpoint,
        default_substitutions='{"User.UserAttributes.FirstName": "there", "Attributes.new": "x"}',
        substitutions={"Location.City": ["Paris"]},
    )
    assert endpoint == before


def test_default_substitutions_as_mapping() -> None:
    context = build_context({}, default_substitutions={"User.UserAttributes.FirstName": "there"})
    assert render("Hi {{User.UserAttributes.FirstName}}", context) == "Hi there"


@pytest.mark.parametrize("raw", [None, "", "  ", "{}"])
def test_no_default_substitutions(raw: str | None) -> None:
    assert build_context({"Id": "x"}, default_substitutions=raw) == {"Id": "x"}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"User.UserAttributes.FirstName": "there"', "DefaultSubstitutions is not valid JSON"),
        ("not json", "not valid JSON"),
        ('["there"]', "must be a JSON object"),
        ('{"User.UserAttributes.FirstName": {"x": 1}}', "must be text"),
        ('{"User..FirstName": "x"}', "is not a variable name"),
        ('{"": "x"}', "is not a variable name"),
    ],
)
def test_malformed_default_substitutions(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        build_context({}, default_substitutions=raw)


def test_parse_default_substitutions() -> None:
    assert parse_default_substitutions('{"a.b": "x", "n": 3}') == {"a.b": "x", "n": "3"}
    assert parse_default_substitutions(None) == {}
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_default_substitutions("{")


# ---- email rendering ----


def test_render_email_escapes_only_the_html_part() -> None:
    endpoint = {"User": {"UserAttributes": {"FirstName": ["Tom & <Jerry>"]}}}
    template = {
        "Subject": "Hi {{User.UserAttributes.FirstName}}",
        "HtmlPart": "<p>Hi {{User.UserAttributes.FirstName}}</p>",
        "TextPart": "Hi {{User.UserAttributes.FirstName}}",
        "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "there"}',
    }
    context = build_context(endpoint, default_substitutions=template["DefaultSubstitutions"])
    assert render_email(template, context) == RenderedEmail(
        subject="Hi Tom & <Jerry>", html="<p>Hi Tom &amp; &lt;Jerry&gt;</p>", text="Hi Tom & <Jerry>"
    )


def test_render_email_applies_defaults_from_build_context() -> None:
    template = {
        "Subject": "Hi {{User.UserAttributes.FirstName}}",
        "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "there"}',
    }
    context = build_context({}, default_substitutions=template["DefaultSubstitutions"])
    assert render_email(template, context) == RenderedEmail(subject="Hi there", html=None, text=None)


def test_render_email_keeps_the_subject_on_one_line() -> None:
    context = build_context({"Attributes": {"x": ["a\r\nBcc: evil@example.com"]}}, default_substitutions=None)
    assert render_email({"Subject": "{{Attributes.x}}"}, context).subject == "a Bcc: evil@example.com"


def test_render_email_renders_headers() -> None:
    template = {"Subject": "s", "Headers": [{"Name": "X-Plan", "Value": "{{Attributes.plan}}"}]}
    assert render_email(template, ENDPOINT).headers == (("X-Plan", "pro"),)


def test_render_email_rejects_a_broken_part() -> None:
    with pytest.raises(TemplateSyntaxError):
        render_email({"Subject": "ok", "HtmlPart": "{{#if x}}"}, {})


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("Hi {{User.UserAttributes.FirstName}}", {"User"}),
        ("plain text", set()),
        ("{{@root.CreationDate}} {{./Id}}", {"CreationDate", "Id"}),
        ('{{dateFormat EffectiveDate format="YYYY"}}', {"dateFormat", "EffectiveDate"}),
        ("{{#with User}}{{UserAttributes.A}}{{/with}}", {"with", "User", "UserAttributes"}),
        ("{{#each Attributes.x}}{{../Address}}{{@index}}{{/each}}", {"each", "Attributes", "Address"}),
        ('{{> p}}{{#*inline "p"}}{{Address}}{{/inline}}', {"p", "inline", "Address"}),
        ("{{#each this}}{{@key}}{{/each}}", None),
        ('{{lookup . "Address"}}', None),
        ("{{@root}}", None),
        ("{{#each Attributes}}{{lookup .. @key}}{{/each}}", None),
    ],
)
def test_root_names_are_every_name_a_template_can_read_or_none(source: str, names: set[str] | None) -> None:
    assert root_names(source) == (None if names is None else frozenset(names))
