"""Pinpoint message templates: a small, fast, dependency-free subset of Handlebars.

Pinpoint renders its message templates with Handlebars and a set of documented helpers. This module compiles
a template once (``compile_template`` caches by source) into a tree of closures, so rendering it for millions
of endpoints only walks the variables.

Supported syntax:

* ``{{path}}`` (HTML-escaped when rendering HTML), ``{{{path}}}`` and ``{{&path}}`` (never escaped).
* Paths: ``User.UserAttributes.FirstName``, ``Attributes.Interests.[0]``, ``User.UserAttributes.[Last Name]``,
  ``this``, ``./x``, ``../x``, ``@index``/``@first``/``@last``/``@key`` inside ``each``, ``@root.x`` and
  ``list.length``. Lookups never fall back to an outer scope (as Handlebars): inside ``each`` use ``../`` or
  ``@root`` to reach the endpoint.
* Blocks: ``#if`` (``includeZero=true``), ``#unless``, ``#each`` (over at most 15 items, as Pinpoint),
  ``#with``, ``{{else}}``/``{{^}}``, chained ``{{else if x}}``, sections ``{{#path}}`` and inverted sections
  ``{{^path}}``, and the conditional helpers as blocks: ``{{#eq a "b"}}…{{else}}…{{/eq}}``.
* Sub-expressions ``{{#and (eq Location.City "Paris") (gt Metrics.visits 3)}}``, literal arguments
  (``"text"``, ``'text'``, numbers, ``true``/``false``/``null``) and ``key=value`` hash arguments.
* Comments ``{{! … }}`` and ``{{!-- … --}}``, whitespace control ``{{~ … ~}}``, standalone block tags on their
  own line leave no blank line (as Handlebars), ``\\{{`` writes a literal ``{{``.
* Inline partials: ``{{#*inline "name"}}…{{/inline}}`` and ``{{> name}}`` (optionally ``{{> name context}}``).

Values render as JavaScript prints them: a list joins its items with ``,`` (so a single-valued attribute
``["Ann"]`` renders ``Ann``), ``3.0`` renders ``3``, ``2.5`` renders ``2.5``, booleans ``true``/``false`` and a
missing value nothing.

Helpers (Pinpoint's documented set):

* Conditional: ``eq neq gt gte lt lte and or not``. Inline they print ``true``/``false``, or the ``yes=``/``no=``
  hash values (an absent one prints nothing); as blocks they choose the body or ``{{else}}``. ``eq`` compares
  two strings as strings, and numbers (or a number and a numeric string) as numbers; a missing value equals
  ``""``. The ordering helpers compare numerically when both sides are numbers or numeric strings (so
  ``{{gt User.UserAttributes.Age.[0] "17"}}`` works), otherwise as strings, and are false for a missing side.
* String: ``upper lower capitalize(fully=) capitalizeFirst abbreviate(value, n) center(size=, pad=) cut
  inflect(count, singular, plural, includeCount=) join(list, sep, prefix=, suffix=) ljust rjust ordinalize
  replace(value, old, new) slugify stripTags substring(value, start[, end]) yesno(yes=, no=, maybe=)
  lookup(object, key)``.
* Dates, kept simple: ``{{dateFormat value ["format"] [inputFormat="…"] [outputFormat="…"] [tz=Zone/Id]}}`` and
  ``{{now ["format"] [tz=Zone/Id]}}``. ``value`` is ISO-8601 text (endpoints' ``EffectiveDate``), epoch
  milliseconds, or text in ``inputFormat``. Formats are ``full`` (Tuesday, September 19, 2020), ``long``
  (September 19, 2020), ``medium`` (Sep 19, 2020, the default), ``short`` (9/19/20) or a Java
  ``SimpleDateFormat`` pattern (``yyyy-MM-dd HH:mm``, English names). A time without an offset is read in
  ``tz`` (default UTC); an unknown zone means UTC; an unreadable date prints unchanged.
* Math, in decimal arithmetic (``{{multiply 5 2.3}}`` is ``11.5``): ``add subtract multiply divide modulo
  ceiling floor round`` (half away from zero). A non-numeric operand or a division by zero prints nothing.
* Encoding: ``encode64 decode64 md5 sha256 sha512 uuid``.

As in Pinpoint's documentation, the time zone of ``dateFormat``/``now`` and the words of ``inflect`` may be
written bare (``tz=America/Los_Angeles``, ``{{inflect n apple apples}}``): a bare word that names no value
stands for itself there.

Substitution (``build_context``): message ``Substitutions`` override endpoint values; a template's
``DefaultSubstitutions`` fill variables that are missing or empty.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_EACH: Final = 15
"""Pinpoint iterates at most this many items of a list."""


class TemplateSyntaxError(ValueError):
    """A template that cannot be compiled.

    Attributes:
        reason: What is wrong, e.g. ``{{#if}} is never closed``.
        line: 1-based line of the offending tag.
        column: 1-based column of the offending tag.
    """

    def __init__(self, reason: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {reason}")
        self.reason = reason
        self.line = line
        self.column = column

    def __reduce__(self) -> tuple[type[TemplateSyntaxError], tuple[str, int, int]]:
        return (type(self), (self.reason, self.line, self.column))


def _position(source: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of an offset."""
    return source.count("\n", 0, offset) + 1, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _syntax_error(source: str, offset: int, reason: str) -> TemplateSyntaxError:
    return TemplateSyntaxError(reason, *_position(source, offset))


# ---------------------------------------------------------------------------------------------------------
# Values as JavaScript sees them
# ---------------------------------------------------------------------------------------------------------

_HTML_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "`": "&#x60;", "=": "&#x3D;"}
)
_NUMERIC_TEXT: Final = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*\Z")


def escape_html(text: str) -> str:
    """Escape ``text`` as Handlebars does: ``& < > " ' ` =``."""
    return text.translate(_HTML_ESCAPES)


def _js_number(value: float) -> str:
    """``String(value)`` in JavaScript (ECMAScript Number::toString) from Python's shortest digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = whole + fraction
    significant = raw.lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(raw) - len(significant))  # value = 0.digits × 10^point
    digits = significant.rstrip("0")
    if len(digits) <= point <= 21:
        return sign + digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    tail = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{tail}e{'+' if point > 0 else '-'}{abs(point - 1)}"


def to_text(value: Any) -> str:
    """How Handlebars prints a value: lists joined with ``,``, ``3.0`` as ``3``, ``None`` as empty text.

    Args:
        value: Any context value or helper result.

    Returns:
        The text JavaScript's ``String(value)`` would give (``[object Object]`` for a mapping).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _js_number(value)
    if isinstance(value, list | tuple):
        return ",".join([to_text(item) for item in value])
    if isinstance(value, Mapping):
        return "[object Object]"
    if isinstance(value, Decimal):
        return _js_number(float(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _truthy(value: Any) -> bool:
    """Handlebars' ``{{#if}}``: false for missing, false, 0, NaN, empty text and empty lists."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | tuple):
        return len(value) > 0
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN is the only value unequal to itself
    return True


def _primitive(value: Any) -> Any:
    """A list compares as its text (JavaScript's ``["25"] == "25"``)."""
    return to_text(value) if isinstance(value, list | tuple) else value


def _to_number(value: Any) -> float | None:
    """A number, a numeric text or a boolean as a float; anything else is not a number."""
    value = _primitive(value)
    if isinstance(value, bool | int | float):
        return None if value != value else float(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and _NUMERIC_TEXT.match(value):
        return float(value)
    return None


def _to_decimal(value: Any) -> Decimal | None:
    """A number as an exact decimal (a float through its shortest text, so 2.3 stays 2.3)."""
    value = _primitive(value)
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and _NUMERIC_TEXT.match(value):
        return Decimal(value.strip())
    return None


def _from_decimal(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _loose_equal(left: Any, right: Any) -> bool:
    left, right = _primitive(left), _primitive(right)
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    x, y = _to_number(left), _to_number(right)
    if x is not None and y is not None:
        return x == y
    return to_text(left) == to_text(right)


def _order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1; None when the two values do not compare (a missing side, a number against a word)."""
    left, right = _primitive(left), _primitive(right)
    if left is None or right is None:
        return None
    x, y = _to_number(left), _to_number(right)
    if x is not None and y is not None:
        return (x > y) - (x < y)
    if isinstance(left, str) and isinstance(right, str):
        return (left > right) - (left < right)
    return None


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------

Helper = Callable[[Sequence[Any], Mapping[str, Any]], Any]
Condition = Callable[[Sequence[Any]], bool]


def _arg(args: Sequence[Any], index: int, default: Any = None) -> Any:
    return args[index] if len(args) > index else default


def _text(args: Sequence[Any], index: int, default: str = "") -> str:
    return to_text(args[index]) if len(args) > index else default


def _int(value: Any, default: int = 0) -> int:
    number = _to_number(value)
    return int(number) if number is not None and math.isfinite(number) else default


def _compare(test: Callable[[int], bool]) -> Condition:
    def condition(args: Sequence[Any]) -> bool:
        order = _order(_arg(args, 0), _arg(args, 1))
        return order is not None and test(order)

    return condition


_CONDITIONS: Final[dict[str, Condition]] = {
    "eq": lambda args: _loose_equal(_arg(args, 0), _arg(args, 1)),
    "neq": lambda args: not _loose_equal(_arg(args, 0), _arg(args, 1)),
    "gt": _compare(lambda order: order > 0),
    "gte": _compare(lambda order: order >= 0),
    "lt": _compare(lambda order: order < 0),
    "lte": _compare(lambda order: order <= 0),
    "and": lambda args: all(_truthy(value) for value in args),
    "or": lambda args: any(_truthy(value) for value in args),
    "not": lambda args: not _truthy(_arg(args, 0)),
}


def _inline_condition(condition: Condition) -> Helper:
    """A conditional helper used inline: ``true``/``false``, or its ``yes=``/``no=`` text when given."""

    def helper(args: Sequence[Any], hash_args: Mapping[str, Any]) -> Any:
        result = condition(args)
        if "yes" in hash_args or "no" in hash_args:
            return hash_args.get("yes" if result else "no")
        return result

    return helper


def _capitalize(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    fully = _truthy(hash_args.get("fully"))

    def word(match: re.Match[str]) -> str:
        rest = match.group()[1:]
        return match.group()[0].upper() + (rest.lower() if fully else rest)

    return re.sub(r"\S+", word, _text(args, 0))


def _capitalize_first(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    text = _text(args, 0)
    return text[:1].upper() + text[1:]


def _abbreviate(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    text, width = _text(args, 0), max(0, _int(_arg(args, 1)))
    if len(text) <= width:
        return text
    return text[: width - 3] + "..." if width > 3 else text[:width]


def _pad_char(hash_args: Mapping[str, Any]) -> str:
    return to_text(hash_args.get("pad", " "))[:1] or " "


def _center(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    text = _text(args, 0)
    missing = _int(hash_args.get("size", _arg(args, 1))) - len(text)
    if missing <= 0:
        return text
    pad = _pad_char(hash_args)
    return pad * (missing // 2) + text + pad * (missing - missing // 2)


def _ljust(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    return _text(args, 0).ljust(_int(hash_args.get("size", _arg(args, 1))), _pad_char(hash_args))


def _rjust(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    return _text(args, 0).rjust(_int(hash_args.get("size", _arg(args, 1))), _pad_char(hash_args))


def _cut(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    return _text(args, 0).replace(_text(args, 1, " "), "")


def _replace(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    text, old = _text(args, 0), _text(args, 1)
    return text.replace(old, _text(args, 2)) if old else text


def _substring(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    start = max(0, _int(_arg(args, 1)))
    end = max(0, _int(args[2])) if len(args) > 2 else None
    return _text(args, 0)[start:end]


def _join(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    # {{join list ", "}} or, as Pinpoint's Java helper also allows, {{join "a" "b" "c" ", "}}.
    if not args:
        return ""
    if len(args) == 1:
        items, separator = args[0], ","
    elif len(args) == 2 and isinstance(args[0], list | tuple):
        items, separator = args[0], args[1]
    else:
        items, separator = args[:-1], args[-1]
    if not isinstance(items, list | tuple):
        items = [] if items is None else [items]
    joined = to_text(separator).join([to_text(item) for item in items])
    return to_text(hash_args.get("prefix")) + joined + to_text(hash_args.get("suffix"))


def _inflect(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    count = _arg(args, 0)
    word = _text(args, 1) if _to_number(count) == 1 else _text(args, 2)
    return f"{to_text(count)} {word}" if _truthy(hash_args.get("includeCount")) else word


def _ordinalize(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    number = _to_number(_arg(args, 0))
    if number is None or not number.is_integer():
        return _text(args, 0)
    value = int(number)
    last_two = abs(value) % 100
    suffix = "th" if 11 <= last_two <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(last_two % 10, "th")
    return f"{value}{suffix}"


def _slugify(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    text = re.sub(r"[^\w\s-]", "", _text(args, 0).lower()).strip()
    return re.sub(r"[-\s]+", "-", text)


def _strip_tags(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    return re.sub(r"<[^>]*>", "", _text(args, 0))


def _yesno(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    value = _primitive(_arg(args, 0))
    if isinstance(value, str):
        value = {"": None, "true": True, "false": False}.get(value.strip().lower(), value)
    if value is None:
        return to_text(hash_args.get("maybe", "maybe"))
    return to_text(hash_args.get("yes", "yes")) if _truthy(value) else to_text(hash_args.get("no", "no"))


def _lookup(args: Sequence[Any], _hash: Mapping[str, Any]) -> Any:
    return _step(_arg(args, 0), _text(args, 1))


# ---- dates ----

_MONTHS: Final = (
    "January February March April May June July August September October November December".split()
)
_WEEKDAYS: Final = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_DATE_STYLES: Final = {
    "full": "EEEE, MMMM d, yyyy",
    "long": "MMMM d, yyyy",
    "medium": "MMM d, yyyy",
    "short": "M/d/yy",
}
# A Java SimpleDateFormat pattern: '' is a quote, '…' literal text, runs of one letter are fields.
_DATE_PATTERN: Final = re.compile(r"''|'(?:[^']|'')*'?|([A-Za-z])\1*|[^A-Za-z']+")


def _utc_offset(moment: datetime, colon: bool) -> str:
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    return f"{sign}{minutes // 60:02d}{':' if colon else ''}{minutes % 60:02d}"


def _iso_offset(moment: datetime, count: int) -> str:
    if not moment.utcoffset():
        return "Z"
    text = _utc_offset(moment, colon=count >= 3)
    return text[:3] if count == 1 else text


def _year_field(moment: datetime, count: int) -> str:
    return f"{moment.year % 100:02d}" if count == 2 else str(moment.year).zfill(count)


def _month_field(moment: datetime, count: int) -> str:
    name = _MONTHS[moment.month - 1]
    return name if count >= 4 else name[:3] if count == 3 else str(moment.month).zfill(count)


_DATE_FIELDS: Final[dict[str, Callable[[datetime, int], str]]] = {
    "G": lambda m, n: "AD",
    "y": _year_field,
    "Y": _year_field,
    "M": _month_field,
    "L": _month_field,
    "d": lambda m, n: str(m.day).zfill(n),
    "D": lambda m, n: str(m.timetuple().tm_yday).zfill(n),
    "E": lambda m, n: _WEEKDAYS[m.weekday()] if n >= 4 else _WEEKDAYS[m.weekday()][:3],
    "u": lambda m, n: str(m.isoweekday()).zfill(n),
    "a": lambda m, n: "AM" if m.hour < 12 else "PM",
    "H": lambda m, n: str(m.hour).zfill(n),
    "k": lambda m, n: str(m.hour or 24).zfill(n),
    "K": lambda m, n: str(m.hour % 12).zfill(n),
    "h": lambda m, n: str(m.hour % 12 or 12).zfill(n),
    "m": lambda m, n: str(m.minute).zfill(n),
    "s": lambda m, n: str(m.second).zfill(n),
    "S": lambda m, n: str(m.microsecond // 1000).zfill(n),
    "z": lambda m, n: m.tzname() or "UTC",
    "Z": lambda m, n: _utc_offset(m, colon=False),
    "X": _iso_offset,
}

_STRPTIME_FIELDS: Final = {
    "y": "%Y",
    "Y": "%Y",
    "M": "%m",
    "L": "%m",
    "d": "%d",
    "D": "%j",
    "H": "%H",
    "k": "%H",
    "h": "%I",
    "K": "%I",
    "m": "%M",
    "s": "%S",
    "S": "%f",
    "a": "%p",
    "E": "%a",
    "Z": "%z",
    "X": "%z",
    "z": "%Z",
}


def _quoted(token: str) -> str:
    inner = token[1:-1] if len(token) > 1 and token.endswith("'") else token[1:]
    return inner.replace("''", "'")


def format_date(moment: datetime, pattern: str) -> str:
    """Format ``moment`` with a Pinpoint date style or a Java ``SimpleDateFormat`` pattern.

    Args:
        moment: The date and time, already in the wanted zone.
        pattern: ``full``, ``long``, ``medium``, ``short`` or a pattern such as ``yyyy-MM-dd HH:mm``.

    Returns:
        The formatted date, with English month and day names; unknown pattern letters print as they are.
    """
    out: list[str] = []
    for match in _DATE_PATTERN.finditer(_DATE_STYLES.get(pattern, pattern)):
        token = match.group()
        if token == "''":
            out.append("'")
        elif token[0] == "'":
            out.append(_quoted(token))
        elif match.group(1) and token[0] in _DATE_FIELDS:
            out.append(_DATE_FIELDS[token[0]](moment, len(token)))
        else:
            out.append(token)
    return "".join(out)


@lru_cache(maxsize=64)
def _strptime_pattern(pattern: str) -> str:
    """A Java input pattern as a ``strptime`` format; ValueError for letters it cannot read."""
    out: list[str] = []
    for match in _DATE_PATTERN.finditer(pattern):
        token = match.group()
        if token == "''" or token[0] == "'":
            out.append(("'" if token == "''" else _quoted(token)).replace("%", "%%"))
        elif match.group(1):
            letter, count = token[0], len(token)
            if letter not in _STRPTIME_FIELDS:
                raise ValueError(f"cannot read {token!r} in a date")
            if letter in "yY" and count == 2:
                out.append("%y")
            elif letter in "ML" and count >= 3:
                out.append("%B" if count >= 4 else "%b")
            elif letter == "E" and count >= 4:
                out.append("%A")
            else:
                out.append(_STRPTIME_FIELDS[letter])
        else:
            out.append(token.replace("%", "%%"))
    return "".join(out)


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    if not name or name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC  # a bad zone on one endpoint must not fail its message


def _parse_moment(value: Any, input_format: str, zone: tzinfo) -> datetime | None:
    """A date value as an aware datetime in ``zone``; None when it cannot be read."""
    value = _primitive(value)
    moment: datetime | None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value / 1000, UTC)  # epoch milliseconds, as Java and JavaScript
    else:
        moment = _parse_date_text(to_text(value).strip(), input_format)
    if moment is None:
        return None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


def _parse_date_text(text: str, input_format: str) -> datetime | None:
    if not text:
        return None
    try:
        if input_format:
            return datetime.strptime(text, _strptime_pattern(input_format))
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _date_format(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    zone = _zone(to_text(hash_args.get("tz")))
    moment = _parse_moment(_arg(args, 0), to_text(hash_args.get("inputFormat")), zone)
    if moment is None:
        return _text(args, 0)
    style = hash_args.get("outputFormat") or hash_args.get("format") or _arg(args, 1) or "medium"
    return format_date(moment, to_text(style))


def _now(args: Sequence[Any], hash_args: Mapping[str, Any]) -> str:
    style = _arg(args, 0) or hash_args.get("format") or "medium"
    return format_date(datetime.now(_zone(to_text(hash_args.get("tz")))), to_text(style))


# ---- math and encoding ----


def _binary_math(operation: Callable[[Decimal, Decimal], Decimal]) -> Helper:
    def helper(args: Sequence[Any], _hash: Mapping[str, Any]) -> int | float | None:
        left, right = _to_decimal(_arg(args, 0)), _to_decimal(_arg(args, 1))
        if left is None or right is None:
            return None
        try:
            return _from_decimal(operation(left, right))
        except (ArithmeticError, InvalidOperation):  # division by zero
            return None

    return helper


def _rounding(mode: str) -> Helper:
    def helper(args: Sequence[Any], _hash: Mapping[str, Any]) -> int | None:
        value = _to_decimal(_arg(args, 0))
        return None if value is None else int(value.to_integral_value(rounding=mode))

    return helper


def _digest(algorithm: str) -> Helper:
    def helper(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
        return hashlib.new(algorithm, _text(args, 0).encode()).hexdigest()

    return helper


def _decode64(args: Sequence[Any], _hash: Mapping[str, Any]) -> str:
    try:
        return base64.b64decode(_text(args, 0), validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


_HELPERS: Final[dict[str, Helper]] = {
    **{name: _inline_condition(condition) for name, condition in _CONDITIONS.items()},
    "upper": lambda args, h: _text(args, 0).upper(),
    "lower": lambda args, h: _text(args, 0).lower(),
    "capitalize": _capitalize,
    "capitalizeFirst": _capitalize_first,
    "abbreviate": _abbreviate,
    "center": _center,
    "cut": _cut,
    "dateFormat": _date_format,
    "inflect": _inflect,
    "join": _join,
    "ljust": _ljust,
    "rjust": _rjust,
    "now": _now,
    "ordinalize": _ordinalize,
    "replace": _replace,
    "slugify": _slugify,
    "stripTags": _strip_tags,
    "substring": _substring,
    "yesno": _yesno,
    "lookup": _lookup,
    "add": _binary_math(lambda a, b: a + b),
    "subtract": _binary_math(lambda a, b: a - b),
    "multiply": _binary_math(lambda a, b: a * b),
    "divide": _binary_math(lambda a, b: a / b),
    "modulo": _binary_math(lambda a, b: a % b),
    "ceiling": _rounding(ROUND_CEILING),
    "floor": _rounding(ROUND_FLOOR),
    "round": _rounding(ROUND_HALF_UP),
    "encode64": lambda args, h: base64.b64encode(_text(args, 0).encode()).decode(),
    "decode64": _decode64,
    "md5": _digest("md5"),
    "sha256": _digest("sha256"),
    "sha512": _digest("sha512"),
    "uuid": lambda args, h: str(uuid.uuid4()),
}
HELPER_NAMES: Final = frozenset(_HELPERS)
"""Every helper a template may call (besides the built-in blocks ``if unless each with``)."""

# Arguments that may be bare words (Pinpoint documents ``tz=America/Los_Angeles``): position or hash key.
_BAREWORD_ARGS: Final[dict[str, frozenset[int | str]]] = {
    "dateFormat": frozenset({"tz"}),
    "now": frozenset({"tz"}),
    "inflect": frozenset({1, 2}),
}
_BUILTIN_BLOCKS: Final = frozenset({"if", "unless", "each", "with"})


# ---------------------------------------------------------------------------------------------------------
# Lexing: the source as text pieces and tags
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Path:
    parts: tuple[str, ...]
    depth: int = 0  # number of ../
    data: bool = False  # @index, @root.x
    scoped: bool = False  # this / ./ / ../: never a helper name
    source: str = ""

    @property
    def simple_name(self) -> str | None:
        """The identifier when the path is a bare name (a helper or a top-level variable)."""
        if len(self.parts) == 1 and not (self.depth or self.data or self.scoped):
            return self.parts[0]
        return None


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "value" (literal), "path", "key" (name=), "(" or ")"
    value: Any
    offset: int


@dataclass(slots=True)
class _TextPiece:
    value: str
    original: str


@dataclass(slots=True)
class _Tag:
    kind: str  # "output", "raw", "open", "inverse", "close", "else", "comment", "partial", "inline"
    offset: int
    tokens: list[_Token]
    strip_before: bool = False
    strip_after: bool = False


_ID: Final = re.compile(r"""[^\s!"#%-,./;->@\[-^`{-~]+""")
_NUMBER: Final = re.compile(r"-?\d+(?:\.\d+)?(?=[~}\s)]|\Z)")
_KEYWORDS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None, "undefined": None}
_LONG_COMMENT_END: Final = re.compile(r"--(~?)\}\}")
_STANDALONE_KINDS: Final = frozenset({"open", "inverse", "close", "else", "comment", "partial", "inline"})
_BLOCK_SIGILS: Final = {"#": "open", "^": "inverse", "/": "close", ">": "partial"}


class _Lexer:
    """Splits a template into text pieces and tags, and each tag into tokens."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, offset: int, reason: str) -> TemplateSyntaxError:
        return _syntax_error(self.source, offset, reason)

    def pieces(self) -> list[_TextPiece | _Tag]:
        source, pos = self.source, 0
        items: list[_TextPiece | _Tag] = []
        text: list[str] = []
        while (start := source.find("{{", pos)) >= 0:
            backslashes = 0
            while start - backslashes > pos and source[start - backslashes - 1] == "\\":
                backslashes += 1
            if backslashes % 2 == 1:  # \{{ is a literal {{; what follows is plain text
                text.append(source[pos : start - 1] + "{{")
                pos = start + 2
                continue
            text.append(source[pos : start - backslashes // 2])  # \\{{ writes one backslash, then a tag
            tag, pos = self.tag(start)
            self._flush(items, text)
            items.append(tag)
        text.append(source[pos:])
        self._flush(items, text)
        return items

    @staticmethod
    def _flush(items: list[_TextPiece | _Tag], text: list[str]) -> None:
        joined = "".join(text)
        text.clear()
        if joined:
            items.append(_TextPiece(joined, joined))

    def tag(self, start: int) -> tuple[_Tag, int]:
        source, pos = self.source, start + 2
        strip_before = source.startswith("~", pos)
        pos += strip_before
        if source.startswith("!", pos):
            return self.comment(start, pos, strip_before)
        if source.startswith("{{", pos):
            raise self.error(start, "raw blocks ({{{{raw}}}}) are not supported")
        sigil = source[pos : pos + 1]
        kind = "output"
        if sigil in ("{", "&"):  # {{{x}}} and {{&x}} are never escaped
            kind, pos = "raw", pos + 1
        elif sigil in _BLOCK_SIGILS:
            kind, pos = _BLOCK_SIGILS[sigil], pos + 1
            if kind == "open" and source.startswith("*", pos):
                kind, pos = "inline", pos + 1
            elif kind == "open" and source.startswith(">", pos):
                raise self.error(start, "partial blocks ({{#> name}}) are not supported")
        tokens, pos, strip_after = self.tokens(start, pos, closer="}}}" if sigil == "{" else "}}")
        if kind == "inverse" and not tokens:
            kind = "else"  # {{^}} is {{else}}
        elif kind == "output" and tokens and tokens[0].kind == "path" and tokens[0].value.source == "else":
            kind, tokens = "else", tokens[1:]
        elif kind != "else" and not tokens:
            raise self.error(start, "empty tag: write a variable or helper between the braces")
        return _Tag(kind, start, tokens, strip_before, strip_after), pos

    def comment(self, start: int, pos: int, strip_before: bool) -> tuple[_Tag, int]:
        source = self.source
        if source.startswith("!--", pos):
            closing = _LONG_COMMENT_END.search(source, pos + 3)
            if closing is None:
                raise self.error(start, "comment {{!-- is never closed with --}}")
            return _Tag("comment", start, [], strip_before, bool(closing.group(1))), closing.end()
        end = source.find("}}", pos)
        if end < 0:
            raise self.error(start, "comment {{! is never closed with }}")
        return _Tag("comment", start, [], strip_before, source[end - 1] == "~"), end + 2

    def tokens(self, start: int, pos: int, closer: str) -> tuple[list[_Token], int, bool]:
        """The tokens of one tag up to its closing braces."""
        source = self.source
        tokens: list[_Token] = []
        while True:
            while pos < len(source) and source[pos].isspace():
                pos += 1
            if pos >= len(source):
                raise self.error(start, f"tag is never closed with '{closer}'")
            char = source[pos]
            if char in "~}":
                return tokens, *self.closing(start, pos, closer)
            if char in "\"'":
                token, pos = self.string(pos)
            elif char in "()":
                token, pos = _Token(char, None, pos), pos + 1
            elif char == "|":
                raise self.error(pos, "block parameters (as |name|) are not supported")
            elif number := _NUMBER.match(source, pos):
                text = number.group()
                token, pos = _Token("value", float(text) if "." in text else int(text), pos), number.end()
            else:
                token, pos = self.path_or_key(pos)
            tokens.append(token)

    def closing(self, start: int, pos: int, closer: str) -> tuple[int, bool]:
        source = self.source
        if closer == "}}}" and source.startswith("}~}}", pos):  # {{~{x}~}}
            return pos + 4, True
        strip_after = source.startswith("~", pos)
        end = pos + strip_after
        if closer == "}}" and source.startswith("}}}", end):
            raise self.error(start, "'{{' is closed by '}}}': write {{{…}}} for unescaped output")
        if not source.startswith(closer, end):
            raise self.error(start, f"tag is never closed with '{closer}'")
        return end + len(closer), strip_after

    def string(self, pos: int) -> tuple[_Token, int]:
        quote, source, out, i = self.source[pos], self.source, [], pos + 1
        while i < len(source) and source[i] != quote:
            if source[i] == "\\" and source.startswith(quote, i + 1):
                i += 1  # \" inside "…"
            out.append(source[i])
            i += 1
        if i >= len(source):
            raise self.error(pos, f"string {quote}… is never closed")
        return _Token("value", "".join(out), pos), i + 1

    def path_or_key(self, pos: int) -> tuple[_Token, int]:
        path, end = self.path(pos)
        if self.source.startswith("=", end):
            if path.simple_name is None:
                raise self.error(pos, f"{path.source!r} cannot be a hash argument name")
            return _Token("key", path.simple_name, pos), end + 1
        if path.simple_name in _KEYWORDS and not self.source.startswith("[", pos):
            return _Token("value", _KEYWORDS[path.source], pos), end
        return _Token("path", path, pos), end

    def path(self, pos: int) -> tuple[_Path, int]:
        """A path such as ``../User.UserAttributes.[Last Name].[0]``, ``this``, ``./x`` or ``@index``."""
        source, start = self.source, pos
        data = source.startswith("@", pos)
        pos += data
        depth, scoped, expect_segment = 0, False, True
        while source.startswith("..", pos):  # ../../x
            depth, pos, scoped = depth + 1, pos + 2, True
            expect_segment = self.separator_before_segment(pos)
            pos += expect_segment
            if not expect_segment:
                break
        if not depth and source.startswith(".", pos):  # ./x or a lone .
            scoped, pos = True, pos + 1
            expect_segment = self.separator_before_segment(pos)
            pos += expect_segment
        parts: list[str] = []
        while expect_segment:
            segment, bracketed, pos = self.segment(pos)
            if segment == "this" and not bracketed and not parts and not depth:
                scoped = True
            else:
                parts.append(segment)
            expect_segment = self.separator_before_segment(pos)
            pos += expect_segment
        if data and (depth or not parts):
            raise self.error(start, f"invalid data variable {source[start:pos]!r}")
        return _Path(tuple(parts), depth, data, scoped, source[start:pos]), pos

    def separator_before_segment(self, pos: int) -> bool:
        source = self.source
        if source[pos : pos + 1] not in ("/", "."):
            return False
        following = source[pos + 1 : pos + 2]
        return following == "[" or bool(_ID.match(source, pos + 1)) or source.startswith("..", pos + 1)

    def segment(self, pos: int) -> tuple[str, bool, int]:
        source = self.source
        if source.startswith("[", pos):
            end = source.find("]", pos)
            if end < 0:
                raise self.error(pos, "'[' is never closed with ']'")
            return source[pos + 1 : end], True, end + 1
        match = _ID.match(source, pos)
        if not match:
            raise self.error(pos, f"unexpected {source[pos]!r} in a tag")
        return match.group(), False, match.end()


def _strip_whitespace(items: list[_TextPiece | _Tag]) -> None:
    """Apply ``~`` whitespace control and drop the lines of standalone block tags, as Handlebars does."""
    last = len(items) - 1
    for index, item in enumerate(items):
        if not isinstance(item, _Tag):
            continue
        before = items[index - 1] if index > 0 else None
        after = items[index + 1] if index < last else None
        if item.strip_before and isinstance(before, _TextPiece):
            before.value = before.value.rstrip()
        if item.strip_after and isinstance(after, _TextPiece):
            after.value = after.value.lstrip()
        if item.kind in _STANDALONE_KINDS and _standalone(before, after, index == 1, index == last - 1):
            if isinstance(before, _TextPiece):
                before.value = re.sub(r"[ \t]+\Z", "", before.value)
            if isinstance(after, _TextPiece):
                after.value = re.sub(r"\A[ \t]*\r?\n?", "", after.value)


def _standalone(before: object, after: object, first: bool, final: bool) -> bool:
    """True when a tag is alone on its line, judged on the original text around it (as Handlebars).

    The text before must end with a line break and blanks (or be all blank at the start of the template),
    the text after must start with blanks and a line break (or be all blank at its end).
    """
    if isinstance(before, _TextPiece):
        trailing = before.original[len(before.original.rstrip()) :]
        before_ok = "\n" in trailing or (first and trailing == before.original)
    else:
        before_ok = before is None
    if isinstance(after, _TextPiece):
        leading = after.original[: len(after.original) - len(after.original.lstrip())]
        after_ok = "\n" in leading or (final and leading == after.original)
    else:
        after_ok = after is None
    return before_ok and after_ok


# ---------------------------------------------------------------------------------------------------------
# Parsing tags into expressions
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    params: tuple[Any, ...]
    hash: tuple[tuple[str, Any], ...]


_Expr = _Literal | _Path | _Call


class _ExpressionParser:
    """Parses the tokens of one tag: ``head param… key=value…`` with ``( … )`` sub-expressions."""

    def __init__(self, lexer: _Lexer, tag: _Tag) -> None:
        self.lexer, self.tag, self.tokens, self.index = lexer, tag, tag.tokens, 0

    def error(self, reason: str, offset: int | None = None) -> TemplateSyntaxError:
        return self.lexer.error(self.tag.offset if offset is None else offset, reason)

    def statement(self) -> tuple[_Expr, list[_Expr], dict[str, _Expr]]:
        """The head, the positional arguments and the hash arguments of the whole tag."""
        items, hash_args = self.sequence(closing=False)
        if not items:
            raise self.error("a tag needs a variable or helper before its key=value arguments")
        return items[0], items[1:], hash_args

    def sequence(self, closing: bool) -> tuple[list[_Expr], dict[str, _Expr]]:
        items: list[_Expr] = []
        hash_args: dict[str, _Expr] = {}
        while self.index < len(self.tokens):
            token = self.tokens[self.index]
            if token.kind == ")":
                if not closing:
                    raise self.error("unexpected ')'", token.offset)
                self.index += 1
                return items, hash_args
            if token.kind == "key":
                self.index += 1
                hash_args[token.value] = self.operand(token)
            elif hash_args:
                raise self.error("positional arguments must come before key=value arguments", token.offset)
            else:
                items.append(self.operand(token))
        if closing:
            raise self.error("'(' is never closed with ')'")
        return items, hash_args

    def operand(self, previous: _Token) -> _Expr:
        if self.index >= len(self.tokens):
            raise self.error(f"{previous.value}= needs a value", previous.offset)
        token = self.tokens[self.index]
        self.index += 1
        if token.kind == "value":
            return _Literal(token.value)
        if token.kind == "path":
            value: _Path = token.value
            return value
        if token.kind == "(":
            items, hash_args = self.sequence(closing=True)
            if not items:
                raise self.error("empty sub-expression '()'", token.offset)
            return self.call(items[0], items[1:], hash_args, token.offset)
        raise self.error(f"unexpected {token.kind!r}", token.offset)

    def call(self, head: _Expr, params: list[_Expr], hash_args: dict[str, _Expr], offset: int) -> _Expr:
        """A helper call, or the plain value when the head is not a helper and has no arguments."""
        if isinstance(head, _Literal):  # as Handlebars, {{"name"}} and {{"helper" x}} name what they call
            head = _Path((to_text(head.value),), source=to_text(head.value))
        name = head.simple_name if isinstance(head, _Path) else None
        if name is not None and name in _HELPERS:
            return _Call(name, tuple(params), tuple(hash_args.items()))
        if params or hash_args:
            if not isinstance(head, _Path):
                raise self.error("only a helper takes arguments; a (…) sub-expression cannot", offset)
            known = ", ".join(sorted(_HELPERS))
            raise self.error(f"unknown helper {head.source!r}; known helpers: {known}", offset)
        return head


# ---------------------------------------------------------------------------------------------------------
# Compiling to closures
# ---------------------------------------------------------------------------------------------------------


class _Frame:
    """Render state: the context stack (``this`` last), the ``@`` data of the innermost ``each``, the mode."""

    __slots__ = ("data", "html", "scopes")

    def __init__(self, scopes: tuple[Any, ...], data: Mapping[str, Any], html: bool) -> None:
        self.scopes = scopes
        self.data = data
        self.html = html

    def push(self, scope: Any, data: Mapping[str, Any] | None = None) -> _Frame:
        return _Frame((*self.scopes, scope), self.data if data is None else data, self.html)


Evaluate = Callable[[_Frame], Any]
Renderer = Callable[[_Frame], str]
Program = tuple[str | Renderer, ...]
_NO_HASH: Final[Mapping[str, Any]] = {}


def _run(program: Program, frame: _Frame) -> str:
    if len(program) == 1:
        part = program[0]
        return part if isinstance(part, str) else part(frame)
    return "".join([part if isinstance(part, str) else part(frame) for part in program])


def _step(value: Any, key: str) -> Any:
    """One path segment: a mapping key, a list/text index, or ``length``."""
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list | tuple | str):
        if key.isdigit():
            index = int(key)
            return value[index] if index < len(value) else None
        return len(value) if key == "length" else None
    return None


def _walk(value: Any, parts: tuple[str, ...]) -> Any:
    for key in parts:
        value = value.get(key) if type(value) is dict else _step(value, key)
        if value is None:
            return None
    return value


def _compile_path(path: _Path) -> Evaluate:
    parts, depth = path.parts, path.depth
    if path.data:
        head, rest = parts[0], parts[1:]
        if head == "root":
            return lambda frame: _walk(frame.scopes[0], rest)
        return lambda frame: _walk(frame.data.get(head), rest)
    if depth:
        return lambda frame: _walk(frame.scopes[-1 - depth], parts) if depth < len(frame.scopes) else None
    if len(parts) == 1:
        key = parts[0]
        return lambda frame: _step(frame.scopes[-1], key)
    return lambda frame: _walk(frame.scopes[-1], parts)


def _compile_bareword(path: _Path) -> Evaluate:
    lookup, word = _compile_path(path), path.source

    def evaluate(frame: _Frame) -> Any:
        value = lookup(frame)
        return word if value is None else value

    return evaluate


def _compile_argument(helper: str, slot: int | str, node: _Expr) -> Evaluate:
    if isinstance(node, _Path) and slot in _BAREWORD_ARGS.get(helper, ()):
        if not (node.data or node.depth or node.scoped):
            return _compile_bareword(node)
    return _compile_expr(node)


def _compile_expr(node: _Expr) -> Evaluate:
    if isinstance(node, _Literal):
        value = node.value
        return lambda frame: value
    if isinstance(node, _Path):
        return _compile_path(node)
    helper = _HELPERS[node.name]
    params = [_compile_argument(node.name, i, param) for i, param in enumerate(node.params)]
    if not node.hash:
        return lambda frame: helper([param(frame) for param in params], _NO_HASH)
    hash_args = [(key, _compile_argument(node.name, key, value)) for key, value in node.hash]
    return lambda frame: helper(
        [param(frame) for param in params], {key: value(frame) for key, value in hash_args}
    )


def _compile_output(evaluate: Evaluate, escape: bool) -> Renderer:
    def output(frame: _Frame) -> str:
        value = evaluate(frame)
        text = value if type(value) is str else to_text(value)
        return text.translate(_HTML_ESCAPES) if escape and frame.html else text

    return output


def _each_items(value: Any) -> list[tuple[Any, Any]]:
    """(key, item) pairs of a list or mapping, at most MAX_EACH of them; nothing for anything else."""
    if isinstance(value, list | tuple):
        return list(enumerate(value[:MAX_EACH]))
    if isinstance(value, Mapping):
        return list(value.items())[:MAX_EACH]
    return []


def _render_each(pairs: list[tuple[Any, Any]], body: Program, frame: _Frame) -> str:
    last = len(pairs) - 1
    return "".join(
        [
            _run(body, frame.push(item, {"index": i, "key": key, "first": i == 0, "last": i == last}))
            for i, (key, item) in enumerate(pairs)
        ]
    )


BlockFactory = Callable[[Program, Program], Renderer]


def _if_block(condition: Evaluate, include_zero: Evaluate | None, negate: bool) -> BlockFactory:
    def factory(body: Program, inverse: Program) -> Renderer:
        def render(frame: _Frame) -> str:
            value = condition(frame)
            zero = type(value) in (int, float) and value == 0
            yes = _truthy(value) or (zero and include_zero is not None and _truthy(include_zero(frame)))
            return _run(body if yes != negate else inverse, frame)

        return render

    return factory


def _each_block(items: Evaluate) -> BlockFactory:
    def factory(body: Program, inverse: Program) -> Renderer:
        def render(frame: _Frame) -> str:
            pairs = _each_items(items(frame))
            return _render_each(pairs, body, frame) if pairs else _run(inverse, frame)

        return render

    return factory


def _with_block(target: Evaluate) -> BlockFactory:
    def factory(body: Program, inverse: Program) -> Renderer:
        def render(frame: _Frame) -> str:
            value = target(frame)
            if _truthy(value) or (type(value) in (int, float) and value == 0):
                return _run(body, frame.push(value))
            return _run(inverse, frame)

        return render

    return factory


def _condition_block(condition: Condition, params: list[Evaluate]) -> BlockFactory:
    def factory(body: Program, inverse: Program) -> Renderer:
        def render(frame: _Frame) -> str:
            return _run(body if condition([param(frame) for param in params]) else inverse, frame)

        return render

    return factory


def _section_block(target: Evaluate) -> BlockFactory:
    """``{{#path}}``: each item of a list, the value as context when it is truthy, else the inverse."""

    def factory(body: Program, inverse: Program) -> Renderer:
        def render(frame: _Frame) -> str:
            value = target(frame)
            if isinstance(value, list | tuple):
                pairs = _each_items(value)
                return _render_each(pairs, body, frame) if pairs else _run(inverse, frame)
            if not _truthy(value):
                return _run(inverse, frame)
            return _run(body, frame if value is True else frame.push(value))

        return render

    return factory


def _partial_call(partials: Mapping[str, Program], name: str, target: Evaluate | None) -> Renderer:
    def render(frame: _Frame) -> str:
        return _run(partials[name], frame if target is None else frame.push(target(frame)))

    return render


def _finish(parts: list[str | Renderer]) -> Program:
    """Merge neighbouring text so rendering appends as few pieces as possible."""
    out: list[str | Renderer] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += part
                continue
        out.append(part)
    return tuple(out) or ("",)


@dataclass(slots=True)
class _OpenBlock:
    name: str  # what {{/name}} must say
    offset: int
    factory: BlockFactory | None  # None for {{#*inline}}
    inverted: bool = False  # {{^path}}
    chained: bool = False  # opened by {{else if …}}: closes with its parent
    inline_name: str = ""
    body: list[str | Renderer] = field(default_factory=list)
    inverse: list[str | Renderer] = field(default_factory=list)
    in_inverse: bool = False

    def target(self) -> list[str | Renderer]:
        return self.inverse if self.in_inverse else self.body


class _Compiler:
    """Builds the program of a template from its pieces, compiling each block when it closes."""

    def __init__(self, source: str) -> None:
        self.lexer = _Lexer(source)
        self.root: list[str | Renderer] = []
        self.stack: list[_OpenBlock] = []
        self.partials: dict[str, Program] = {}
        self.partial_uses: list[tuple[str, int, str]] = []  # (name, offset, enclosing inline partial)

    def error(self, offset: int, reason: str) -> TemplateSyntaxError:
        return self.lexer.error(offset, reason)

    def target(self) -> list[str | Renderer]:
        return self.stack[-1].target() if self.stack else self.root

    def compile(self) -> Program:
        pieces = self.lexer.pieces()
        _strip_whitespace(pieces)
        for piece in pieces:
            if isinstance(piece, _TextPiece):
                self.target().append(piece.value)
            else:
                self.tag(piece)
        if self.stack:
            block = next(b for b in reversed(self.stack) if not b.chained)
            raise self.error(
                block.offset, f"{{{{#{block.name}}}}} is never closed with {{{{/{block.name}}}}}"
            )
        self.check_partials()
        return _finish(self.root)

    def tag(self, tag: _Tag) -> None:
        if tag.kind == "comment":
            return
        if tag.kind == "close":
            self.close(tag)
        elif tag.kind == "else":
            self.else_(tag)
        elif tag.kind == "partial":
            self.partial(tag)
        elif tag.kind == "inline":
            self.inline(tag)
        elif tag.kind in ("open", "inverse"):
            self.open(tag)
        else:
            parser = _ExpressionParser(self.lexer, tag)
            node = parser.call(*parser.statement(), tag.offset)
            self.target().append(_compile_output(_compile_expr(node), escape=tag.kind == "output"))

    def open(self, tag: _Tag, chained: bool = False) -> None:
        head, params, hash_args = _ExpressionParser(self.lexer, tag).statement()
        if not isinstance(head, _Path):
            raise self.error(tag.offset, "a block starts with a helper name or a path, such as {{#if x}}")
        name = head.source if not chained else self.stack[-1].name
        factory = self.block_factory(tag, head, params, hash_args)
        self.stack.append(
            _OpenBlock(name, tag.offset, factory, inverted=tag.kind == "inverse", chained=chained)
        )

    def block_factory(
        self, tag: _Tag, head: _Path, params: list[_Expr], hash_args: dict[str, _Expr]
    ) -> BlockFactory:
        name = head.simple_name or ""
        args = [_compile_expr(param) for param in params]
        if name in _BUILTIN_BLOCKS:
            if len(args) != 1:
                raise self.error(
                    tag.offset, f"{{{{#{name}}}}} needs exactly one value, e.g. {{{{#{name} x}}}}"
                )
            if name == "each":
                return _each_block(args[0])
            if name == "with":
                return _with_block(args[0])
            include_zero = _compile_expr(hash_args["includeZero"]) if "includeZero" in hash_args else None
            return _if_block(args[0], include_zero, negate=name == "unless")
        if name in _CONDITIONS:
            return _condition_block(_CONDITIONS[name], args)
        if name in _HELPERS:
            raise self.error(tag.offset, f"{name} is not a block helper; write {{{{{name} …}}}} without '#'")
        if params or hash_args:
            raise self.error(tag.offset, f"unknown block helper {head.source!r}")
        return _section_block(_compile_path(head))

    def else_(self, tag: _Tag) -> None:
        if not self.stack or self.stack[-1].factory is None:
            raise self.error(tag.offset, "{{else}} outside an {{#if}}, {{#each}} or other block")
        block = self.stack[-1]
        if block.in_inverse:
            raise self.error(tag.offset, f"a second {{{{else}}}} in {{{{#{block.name}}}}}")
        block.in_inverse = True
        if tag.tokens:  # {{else if x}}: a nested block in the inverse that closes with its parent
            self.open(_Tag("open", tag.offset, tag.tokens), chained=True)

    def close(self, tag: _Tag) -> None:
        if len(tag.tokens) != 1 or tag.tokens[0].kind != "path":
            raise self.error(tag.offset, "a closing tag names its block, such as {{/if}}")
        name = tag.tokens[0].value.source
        if not self.stack:
            raise self.error(tag.offset, f"{{{{/{name}}}}} closes no open block")
        while self.stack[-1].chained:
            self.finish_block(self.stack.pop())
        block = self.stack[-1]
        if block.name != name:
            line, column = _position(self.lexer.source, block.offset)
            raise self.error(
                tag.offset,
                f"{{{{/{name}}}}} does not match {{{{#{block.name}}}}} opened at line {line}, column {column}",
            )
        self.finish_block(self.stack.pop())

    def finish_block(self, block: _OpenBlock) -> None:
        body, inverse = _finish(block.body), _finish(block.inverse)
        if block.factory is None:
            self.partials[block.inline_name] = body
            return
        if block.inverted:
            body, inverse = inverse, body
        self.target().append(block.factory(body, inverse))

    def inline(self, tag: _Tag) -> None:
        tokens = tag.tokens
        valid = len(tokens) == 2 and tokens[0].kind == "path" and tokens[0].value.source == "inline"
        if not valid or tokens[1].kind != "value" or not isinstance(tokens[1].value, str):
            raise self.error(tag.offset, 'an inline partial is written {{#*inline "name"}}…{{/inline}}')
        name = tokens[1].value
        if name in self.partials or any(b.inline_name == name for b in self.stack):
            raise self.error(tag.offset, f"inline partial {name!r} is defined twice")
        self.stack.append(_OpenBlock("inline", tag.offset, None, inline_name=name))

    def partial(self, tag: _Tag) -> None:
        parser = _ExpressionParser(self.lexer, tag)
        head, params, hash_args = parser.statement()
        if isinstance(head, _Literal) and isinstance(head.value, str):
            name = head.value
        elif isinstance(head, _Path) and not (head.data or head.depth or head.scoped):
            name = head.source
        else:
            raise self.error(tag.offset, "a partial is called by name, such as {{> fullName}}")
        if len(params) > 1 or hash_args:
            raise self.error(tag.offset, "a partial takes at most one context argument: {{> name context}}")
        target = _compile_expr(params[0]) if params else None
        enclosing = next((b.inline_name for b in reversed(self.stack) if b.factory is None), "")
        self.partial_uses.append((name, tag.offset, enclosing))
        self.target().append(_partial_call(self.partials, name, target))

    def check_partials(self) -> None:
        """Every partial must be defined, and none may call itself (rendering would never end)."""
        calls: dict[str, set[str]] = {}
        for name, offset, enclosing in self.partial_uses:
            if name not in self.partials:
                raise self.error(offset, f"partial {name!r} is not defined; define it with {{{{#*inline}}}}")
            calls.setdefault(enclosing, set()).add(name)
        for name, offset, enclosing in self.partial_uses:
            if enclosing and enclosing in _reachable(name, calls):
                raise self.error(offset, f"partial {name!r} calls itself through {enclosing!r}")


def _reachable(start: str, calls: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(calls.get(current, ()))
    return seen


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """A compiled template; render it with :meth:`render`."""

    source: str
    program: Program

    def render(self, context: Mapping[str, Any], *, html: bool) -> str:
        """Render the template for one context.

        Args:
            context: The variables, usually from :func:`build_context`.
            html: True for an HTML part: ``{{…}}`` output is HTML-escaped. False for subjects and text parts.

        Returns:
            The rendered text.
        """
        return _run(self.program, _Frame((context,), _NO_HASH, html))


@lru_cache(maxsize=256)
def compile_template(source: str) -> Template:
    """Compile a template; compiled templates are cached by source.

    Args:
        source: The Handlebars source (a subject, an HTML part or a text part).

    Returns:
        The compiled template.

    Raises:
        TemplateSyntaxError: The template is malformed; the message gives the line, column and the problem.
    """
    return Template(source, _Compiler(source).compile())


@lru_cache(maxsize=256)
def root_names(source: str) -> frozenset[str] | None:
    """The top-level context names a template can read, or None when it can read any of them.

    A superset: the first segment of every path in the template (``User`` for ``{{User.UserAttributes.X}}``,
    ``X`` for ``{{@root.X}}``, helper and block names too). A template that can reach the whole context (a
    lone ``this``, ``.``, ``../`` or ``@root``, as in ``{{#each this}}`` or ``{{lookup . key}}``) gives None.
    A sender builds only these names of each endpoint's context (dates are costly to format).

    Args:
        source: The Handlebars source (it compiles: see :func:`validate_template_source`).

    Returns:
        The names, or None.
    """
    names: set[str] = set()
    for piece in _Lexer(source).pieces():
        if isinstance(piece, _TextPiece):
            continue
        for token in piece.tokens:
            if token.kind != "path":
                continue
            path: _Path = token.value
            parts = path.parts[1:] if path.data and path.parts[0] == "root" else path.parts
            if path.data and path.parts[0] != "root":
                continue  # @index, @key, @first...: the each block's data, not the context
            if not parts:
                return None
            names.add(parts[0])
    return frozenset(names)


def validate_template_source(source: str) -> None:
    """Check that a template compiles (CreateEmailTemplate rejects a broken template with a 400).

    Args:
        source: The Handlebars source.

    Raises:
        TemplateSyntaxError: The template is malformed.
    """
    compile_template(source)


# ---------------------------------------------------------------------------------------------------------
# Pinpoint's substitution rules
# ---------------------------------------------------------------------------------------------------------

_DEFAULTS_EXAMPLE: Final = '{"User.UserAttributes.FirstName": "there"}'
_NAME_SEGMENT: Final = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")


def _variable_segments(name: str) -> tuple[str, ...]:
    """``User.UserAttributes.[Last Name].[0]`` as its segments; ValueError when it is not a variable name."""
    segments: list[str] = []
    pos = 0
    while pos < len(name):
        match = _NAME_SEGMENT.match(name, pos)
        if not match:
            raise ValueError(f"{name!r} is not a variable name such as User.UserAttributes.FirstName")
        segments.append(match.group(1) if match.group(1) is not None else match.group(2).strip())
        pos = match.end()
        if pos < len(name):
            if name[pos] != "." or pos + 1 == len(name):
                raise ValueError(f"{name!r} is not a variable name such as User.UserAttributes.FirstName")
            pos += 1
    if not segments or not all(segments):
        raise ValueError(f"{name!r} is not a variable name such as User.UserAttributes.FirstName")
    if segments[0] == "this":
        segments.pop(0)
    return tuple(segments)


def _load_defaults(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"DefaultSubstitutions is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            f"it must be a JSON object of variable names to default text, such as {_DEFAULTS_EXAMPLE}"
        ) from None


def _default_pairs(parsed: Any) -> tuple[tuple[tuple[str, ...], str], ...]:
    if not isinstance(parsed, Mapping):
        raise ValueError(
            "DefaultSubstitutions must be a JSON object of variable names to default text, such as "
            f"{_DEFAULTS_EXAMPLE}, not {json.dumps(parsed)[:40]}"
        )
    pairs: list[tuple[tuple[str, ...], str]] = []
    for name, value in parsed.items():
        if not isinstance(value, str | int | float | bool):
            raise ValueError(f"DefaultSubstitutions[{name!r}] must be text, not {json.dumps(value)[:40]}")
        pairs.append((_variable_segments(str(name)), to_text(value)))
    return tuple(pairs)


@lru_cache(maxsize=256)
def _parse_defaults(raw: str) -> tuple[tuple[tuple[str, ...], str], ...]:
    # Cached: the same template's defaults are applied for every endpoint of a send.
    return _default_pairs(_load_defaults(raw))


def _defaults(raw: str | Mapping[str, str] | None) -> tuple[tuple[tuple[str, ...], str], ...]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ()
    return _parse_defaults(raw) if isinstance(raw, str) else _default_pairs(raw)


def parse_default_substitutions(raw: str | Mapping[str, str] | None) -> dict[str, str]:
    """A template's DefaultSubstitutions as a dict (the API stores them as a JSON string).

    Args:
        raw: The JSON text, an already parsed mapping, or None/empty for none.

    Returns:
        Variable name to default text.

    Raises:
        ValueError: Not a JSON object of variable names to text; the message says what is wrong.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    parsed = _load_defaults(raw) if isinstance(raw, str) else raw
    _default_pairs(parsed)
    return {str(name): to_text(value) for name, value in parsed.items()}


def _blank(value: Any) -> bool:
    """Missing or empty: None, "", an empty list/mapping, or a list of only empty items (Pinpoint's [""])."""
    if value is None or value == "":
        return True
    if isinstance(value, list | tuple):
        return all(_blank(item) for item in value)
    return isinstance(value, Mapping) and not value


def _lookup_segments(context: Mapping[str, Any], segments: tuple[str, ...]) -> Any:
    value: Any = context
    for segment in segments:
        value = _step(value, segment)
        if value is None:
            return None
    return value


def _assign(node: Any, segments: tuple[str, ...], value: Any) -> Any:
    """``node`` with ``value`` at ``segments``, copying what it changes (the endpoint is never mutated)."""
    if not segments:
        return value
    head, rest = segments[0], segments[1:]
    if head.isdigit() and (node is None or isinstance(node, list | tuple)):
        index = int(head)
        items = list(node or [])
        items.extend([""] * (index + 1 - len(items)))
        items[index] = _assign(items[index] or None, rest, value)
        return items
    copy = dict(node) if isinstance(node, Mapping) else {}
    copy[head] = _assign(copy.get(head), rest, value)
    return copy


def _list_valued(segments: tuple[str, ...], current: Any) -> bool:
    """Custom attributes are lists in Pinpoint; a default for one stays a list so ``.[0]`` still works."""
    if isinstance(current, list | tuple):
        return True
    return (len(segments) == 2 and segments[0] == "Attributes") or (
        len(segments) == 3 and segments[:2] == ("User", "UserAttributes")
    )


def build_context(
    endpoint: Mapping[str, Any],
    *,
    default_substitutions: str | Mapping[str, str] | None,
    substitutions: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The render context of one endpoint, with Pinpoint's substitution precedence.

    Message-level ``substitutions`` win over the endpoint's own values; then each DefaultSubstitutions entry
    fills its variable when the value is missing or empty. The endpoint mapping is not modified.

    Args:
        endpoint: A Pinpoint EndpointResponse-shaped dict (``Address``, ``Attributes``, ``User`` …).
        default_substitutions: The template's DefaultSubstitutions: a JSON object text such as
            ``{"User.UserAttributes.FirstName": "there"}`` (or a parsed mapping, or None).
        substitutions: The message's Substitutions: variable name, as written in the template, to values.

    Returns:
        The context to pass to :meth:`Template.render` or :func:`render_email`.

    Raises:
        ValueError: DefaultSubstitutions is malformed (the API answers 400 with this message).
    """
    defaults = _defaults(default_substitutions)
    context = dict(endpoint)
    for name, values in (substitutions or {}).items():
        segments = _variable_segments(name)
        items = [values] if isinstance(values, str) else list(values)
        context = _assign(context, segments, items)
    for segments, text in defaults:
        current = _lookup_segments(context, segments)
        if _blank(current):
            context = _assign(context, segments, [text] if _list_valued(segments, current) else text)
    return context


# ---------------------------------------------------------------------------------------------------------
# Email templates
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """An email template rendered for one endpoint.

    Attributes:
        subject: The subject line (plain text, line breaks folded to spaces).
        html: The HTML part, or None when the template has none.
        text: The text part, or None when the template has none.
        headers: The template's Headers as (name, rendered value) pairs, line breaks folded to spaces.
    """

    subject: str
    html: str | None
    text: str | None
    headers: tuple[tuple[str, str], ...] = ()


def _one_line(text: str) -> str:
    # A line break from an attribute value must not inject a header.
    return " ".join(text.splitlines()) if "\n" in text or "\r" in text else text


def email_root_names(template: Mapping[str, Any]) -> frozenset[str] | None:
    """The top-level context names an email template's parts can read (see :func:`root_names`), or None.

    Args:
        template: ``Subject``, ``HtmlPart``, ``TextPart`` and optionally ``Headers`` ([{Name, Value}]).
    """
    sources = [template.get("Subject"), template.get("HtmlPart"), template.get("TextPart")]
    sources += [header.get("Value") for header in template.get("Headers") or ()]
    names: set[str] = set()
    for source in sources:
        found = root_names(str(source or ""))
        if found is None:
            return None
        names |= found
    return frozenset(names)


def render_email(template: Mapping[str, Any], context: Mapping[str, Any]) -> RenderedEmail:
    """Render an email template (Pinpoint EmailTemplateRequest fields) for one context.

    Args:
        template: ``Subject``, ``HtmlPart``, ``TextPart`` and optionally ``Headers`` ([{Name, Value}]).
            DefaultSubstitutions are applied by :func:`build_context`, which made ``context``.
        context: The endpoint's render context.

    Returns:
        The subject and text part rendered without escaping, the HTML part with HTML escaping.

    Raises:
        TemplateSyntaxError: A part does not compile (templates are validated when they are saved).
    """
    html_part, text_part = template.get("HtmlPart"), template.get("TextPart")
    headers = tuple(
        (
            str(header.get("Name") or ""),
            _one_line(compile_template(str(header.get("Value") or "")).render(context, html=False)),
        )
        for header in template.get("Headers") or ()
    )
    return RenderedEmail(
        subject=_one_line(compile_template(str(template.get("Subject") or "")).render(context, html=False)),
        html=compile_template(str(html_part)).render(context, html=True) if html_part else None,
        text=compile_template(str(text_part)).render(context, html=False) if text_part else None,
        headers=headers,
    )
