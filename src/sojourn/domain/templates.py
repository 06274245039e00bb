"""Pinpoint message templates: a small, fast Handlebars subset with Pinpoint's substitution rules.

Supported: ``{{path}}`` (HTML-escaped when rendering HTML), ``{{{path}}}`` (never escaped), dotted paths with
``.[0]`` indexes, ``this``, ``../``, ``@index``/``@first``/``@last``; blocks ``#if``, ``#unless``, ``#each``
(at most 15 items, as Pinpoint), ``#with`` and ``{{else}}``; comments; ``{{~`` / ``~}}`` whitespace control;
helpers ``eq neq gt gte lt lte and or not`` (inline with ``yes=``/``no=`` or as blocks), ``upper lower
capitalize capitalizeFirst abbreviate replace join substring`` and ``add subtract multiply divide modulo
ceiling floor round``. A missing value renders as empty text; DefaultSubstitutions fill it.
"""

from __future__ import annotations

import html as html_lib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

MAX_EACH = 15
_TAG = re.compile(r"(\\?)\{\{(\{?)(~?)(.*?)(~?)\}?\}\}", re.S)
_ARG = re.compile(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z_]\w*)=("([^"]*)"|\'([^\']*)\'|\S+)|(\S+)')


class TemplateSyntaxError(ValueError):
    """A template that cannot be compiled; the message says where and why."""


@dataclass
class _Text:
    text: str


@dataclass
class _Var:
    expr: list[Any]
    hash: dict[str, Any]
    escape: bool


@dataclass
class _Block:
    name: str
    args: list[Any]
    hash: dict[str, Any]
    body: list[Any] = field(default_factory=list)
    inverse: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class _Path:
    parts: tuple[str, ...]
    up: int = 0


@dataclass(frozen=True)
class _Lit:
    value: Any


def _position(source: str, offset: int) -> str:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _parse_operand(token: str) -> Any:
    if token in ("true", "false"):
        return _Lit(token == "true")
    if token in ("null", "undefined"):
        return _Lit(None)
    try:
        return _Lit(int(token))
    except ValueError:
        pass
    try:
        return _Lit(float(token))
    except ValueError:
        pass
    return _parse_path(token)


def _parse_path(token: str) -> _Path:
    up = 0
    while token.startswith("../"):
        up, token = up + 1, token[3:]
    if token in ("this", "."):
        return _Path((), up)
    token = token.removeprefix("this.")
    parts = tuple(p[1:-1] if p.startswith("[") and p.endswith("]") else p for p in re.split(r"\.(?![^\[]*\])", token) if p)
    return _Path(parts, up)


def _parse_args(text: str) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    hash_args: dict[str, Any] = {}
    for m in _ARG.finditer(text):
        if m.group(1) is not None:
            args.append(_Lit(m.group(1)))
        elif m.group(2) is not None:
            args.append(_Lit(m.group(2)))
        elif m.group(3) is not None:
            raw = m.group(5) if m.group(5) is not None else m.group(6) if m.group(6) is not None else None
            hash_args[m.group(3)] = _Lit(raw) if raw is not None else _parse_operand(m.group(4))
        else:
            args.append(_parse_operand(m.group(7)))
    return args, hash_args


@dataclass
class Template:
    """A compiled template."""

    nodes: list[Any]

    def render(self, context: Mapping[str, Any], *, html: bool) -> str:
        """Render with ``context``; ``html=True`` HTML-escapes ``{{...}}`` output."""
        out: list[str] = []
        _render(self.nodes, [context], {}, out, html)
        return "".join(out)


@lru_cache(maxsize=512)
def compile_template(source: str) -> Template:
    """Compile ``source`` (cached: one template renders for many endpoints).

    Raises:
        TemplateSyntaxError: unbalanced blocks or malformed tags, with the position.
    """
    root: list[Any] = []
    stack: list[tuple[_Block, list[Any], int]] = []
    current = root
    pos = 0
    strip_next = False
    for m in _TAG.finditer(source):
        text = source[pos : m.start()]
        if m.group(1):  # \{{ escapes a literal tag
            current.append(_Text(_lstrip(text, strip_next) + m.group(0)[1:]))
            strip_next = False
            pos = m.end()
            continue
        text = _lstrip(text, strip_next)
        if m.group(3):
            text = text.rstrip()
        if text:
            current.append(_Text(text))
        strip_next = bool(m.group(5))
        pos = m.end()
        raw, body = bool(m.group(2)), m.group(4).strip()
        if body.startswith("!"):
            continue
        if not body:
            raise TemplateSyntaxError(f"empty tag at {_position(source, m.start())}")
        if body[0] == "#":
            name, _, rest = body[1:].partition(" ")
            args, hash_args = _parse_args(rest)
            block = _Block(name.strip(), args, hash_args)
            current.append(block)
            stack.append((block, current, m.start()))
            current = block.body
        elif body[0] == "/":
            name = body[1:].strip()
            if not stack:
                raise TemplateSyntaxError(f"{{{{/{name}}}}} at {_position(source, m.start())} closes no block")
            block, parent, _ = stack.pop()
            if block.name != name:
                raise TemplateSyntaxError(f"{{{{/{name}}}}} at {_position(source, m.start())} closes {{{{#{block.name}}}}}")
            current = parent
        elif body == "else" or body == "^":
            if not stack:
                raise TemplateSyntaxError(f"{{{{else}}}} outside a block at {_position(source, m.start())}")
            current = stack[-1][0].inverse
        else:
            args, hash_args = _parse_args(body)
            if not args:
                raise TemplateSyntaxError(f"malformed tag at {_position(source, m.start())}")
            current.append(_Var(args, hash_args, escape=not raw))
    if stack:
        block, _, start = stack[-1]
        raise TemplateSyntaxError(f"{{{{#{block.name}}}}} at {_position(source, start)} is never closed")
    tail = _lstrip(source[pos:], strip_next)
    if "{{" in tail and re.search(r"(?<!\\)\{\{", tail):
        raise TemplateSyntaxError(f"unclosed '{{{{' at {_position(source, pos + tail.index('{{'))}")
    if tail:
        root.append(_Text(tail)) if current is root else current.append(_Text(tail))
    return Template(root)


def _lstrip(text: str, strip: bool) -> str:
    return text.lstrip() if strip else text


def validate_template_source(source: str) -> None:
    """Raise TemplateSyntaxError if ``source`` does not compile."""
    compile_template(source)


# ---- evaluation ----


def _lookup(path: _Path, scopes: list[Any], data: Mapping[str, Any]) -> Any:
    if path.parts and path.parts[0].startswith("@"):
        return data.get(path.parts[0])
    scope = scopes[max(0, len(scopes) - 1 - path.up)]
    value: Any = scope
    for part in path.parts:
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def _value(operand: Any, scopes: list[Any], data: Mapping[str, Any]) -> Any:
    return operand.value if isinstance(operand, _Lit) else _lookup(operand, scopes, data)


def to_text(value: Any) -> str:
    """How Handlebars (JavaScript) prints a value: lists joined by commas, 3.0 as 3, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, list | tuple):
        return ",".join(to_text(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _truthy(value: Any) -> bool:
    if isinstance(value, list | tuple | Mapping):
        return len(value) > 0
    return bool(value) and value != ""


def _num(value: Any) -> float:
    if isinstance(value, list | tuple):
        value = value[0] if value else 0
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _scalar(value: Any) -> Any:
    # Pinpoint attributes are lists; comparisons read their first value.
    if isinstance(value, list | tuple):
        return value[0] if len(value) == 1 else to_text(value)
    return value


def _compare(op: str, a: Any, b: Any) -> bool:
    a, b = _scalar(a), _scalar(b)
    if op in ("eq", "neq"):
        same = a == b or (to_text(a) == to_text(b))
        return same if op == "eq" else not same
    x, y = _num(a), _num(b)
    return {"gt": x > y, "gte": x >= y, "lt": x < y, "lte": x <= y}[op]


_CONDITIONS: dict[str, Callable[[list[Any]], bool]] = {
    "eq": lambda v: _compare("eq", *v[:2]),
    "neq": lambda v: _compare("neq", *v[:2]),
    "gt": lambda v: _compare("gt", *v[:2]),
    "gte": lambda v: _compare("gte", *v[:2]),
    "lt": lambda v: _compare("lt", *v[:2]),
    "lte": lambda v: _compare("lte", *v[:2]),
    "and": lambda v: all(_truthy(x) for x in v),
    "or": lambda v: any(_truthy(x) for x in v),
    "not": lambda v: not _truthy(v[0] if v else None),
}


def _capitalize(s: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in s.split(" "))


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "upper": lambda v: to_text(v[0]).upper(),
    "lower": lambda v: to_text(v[0]).lower(),
    "capitalize": lambda v: _capitalize(to_text(v[0])),
    "capitalizeFirst": lambda v: to_text(v[0])[:1].upper() + to_text(v[0])[1:],
    "abbreviate": lambda v: (lambda s, n: s if len(s) <= n else s[: max(0, n - 3)] + "...")(to_text(v[0]), int(_num(v[1]))),
    "replace": lambda v: to_text(v[0]).replace(to_text(v[1]), to_text(v[2])),
    "join": lambda v: to_text(v[1] if len(v) > 1 else ",").join(to_text(x) for x in (v[0] or [])),
    "substring": lambda v: to_text(v[0])[int(_num(v[1])) : int(_num(v[2])) if len(v) > 2 else None],
    "add": lambda v: _num(v[0]) + _num(v[1]),
    "subtract": lambda v: _num(v[0]) - _num(v[1]),
    "multiply": lambda v: _num(v[0]) * _num(v[1]),
    "divide": lambda v: _num(v[0]) / _num(v[1]) if _num(v[1]) else math.nan,
    "modulo": lambda v: _num(v[0]) % _num(v[1]) if _num(v[1]) else math.nan,
    "ceiling": lambda v: math.ceil(_num(v[0])),
    "floor": lambda v: math.floor(_num(v[0])),
    "round": lambda v: round(_num(v[0])),
}


def _render(nodes: list[Any], scopes: list[Any], data: Mapping[str, Any], out: list[str], html: bool) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Var):
            text = to_text(_evaluate(node, scopes, data))
            out.append(html_lib.escape(text).replace("`", "&#x60;").replace("=", "&#x3D;") if html and node.escape else text)
        else:
            _render_block(node, scopes, data, out, html)


def _evaluate(node: _Var, scopes: list[Any], data: Mapping[str, Any]) -> Any:
    head = node.expr[0]
    if isinstance(head, _Path) and len(head.parts) == 1 and not head.up:
        name = head.parts[0]
        args = [_value(a, scopes, data) for a in node.expr[1:]]
        if name in _CONDITIONS and (args or node.hash):
            yes = _CONDITIONS[name](args)
            chosen = node.hash.get("yes") if yes else node.hash.get("no")
            return _value(chosen, scopes, data) if chosen is not None else yes
        if name in _FUNCTIONS and args:
            return _FUNCTIONS[name](args)
    return _value(head, scopes, data)


def _render_block(block: _Block, scopes: list[Any], data: Mapping[str, Any], out: list[str], html: bool) -> None:
    args = [_value(a, scopes, data) for a in block.args]
    name = block.name
    if name == "each":
        items = args[0] if args else None
        seq = list(items.items()) if isinstance(items, Mapping) else list(items or []) if isinstance(items, list | tuple) else []
        seq = seq[:MAX_EACH]
        if not seq:
            _render(block.inverse, scopes, data, out, html)
        for i, item in enumerate(seq):
            key, value = item if isinstance(items, Mapping) else (i, item)
            _render(block.body, [*scopes, value], {**data, "@index": i, "@key": key, "@first": i == 0, "@last": i == len(seq) - 1}, out, html)
        return
    if name == "with":
        value = args[0] if args else None
        _render(block.body if _truthy(value) else block.inverse, [*scopes, value] if _truthy(value) else scopes, data, out, html)
        return
    if name in ("if", "unless"):
        yes = _truthy(args[0] if args else None)
        yes = yes if name == "if" else not yes
    elif name in _CONDITIONS:
        yes = _CONDITIONS[name](args)
    else:
        raise ValueError(f"unknown block helper #{name}")
    _render(block.body if yes else block.inverse, scopes, data, out, html)


# ---- Pinpoint substitution ----


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _get_path(source: Mapping[str, Any], dotted: str) -> Any:
    value: Any = source
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def parse_default_substitutions(raw: str | Mapping[str, str] | None) -> dict[str, str]:
    """DefaultSubstitutions as a dict; the API stores it as a JSON string.

    Raises:
        ValueError: not a JSON object of strings.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"DefaultSubstitutions must be a JSON object such as {{\"User.UserAttributes.FirstName\": \"there\"}}: {err}") from None
    if not isinstance(parsed, dict):
        raise ValueError("DefaultSubstitutions must be a JSON object of variable name to default text")
    return {str(k): to_text(v) for k, v in parsed.items()}


def build_context(
    endpoint: Mapping[str, Any],
    *,
    default_substitutions: str | Mapping[str, str] | None,
    substitutions: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The render context of one endpoint: its fields, message substitutions over them, defaults under them.

    Args:
        endpoint: A Pinpoint EndpointResponse-shaped dict.
        default_substitutions: The template's DefaultSubstitutions (JSON string or dict).
        substitutions: Message-level Substitutions (variable name -> values), which win over endpoint values.
    """
    context: dict[str, Any] = json.loads(json.dumps(dict(endpoint), default=str))
    for name, values in (substitutions or {}).items():
        _set_path(context, name, list(values))
    for name, default in parse_default_substitutions(default_substitutions).items():
        if not _truthy(_get_path(context, name)):
            _set_path(context, name, default)
    return context


@dataclass(frozen=True)
class RenderedEmail:
    """An email template rendered for one endpoint."""

    subject: str
    html: str | None
    text: str | None


def render_email(template: Mapping[str, Any], context: Mapping[str, Any]) -> RenderedEmail:
    """Render Subject (plain), HtmlPart (HTML-escaped) and TextPart (plain) of an email template."""
    html_part = template.get("HtmlPart")
    text_part = template.get("TextPart")
    return RenderedEmail(
        subject=compile_template(template.get("Subject") or "").render(context, html=False),
        html=compile_template(html_part).render(context, html=True) if html_part else None,
        text=compile_template(text_part).render(context, html=False) if text_part else None,
    )
