"""rest-json (de)serialisation driven by botocore shapes, with validation that names the offending field.

Requests become plain dicts keyed by the input shape's member names (what a boto3 caller passes as
keyword arguments); handlers return plain dicts keyed by the output shape's member names. Each shape
is compiled once into a decoder or encoder closure (cached per operation), so the per-request work is
a walk over the data with no model lookups. Validation errors build their path only when raised:
the happy path pays nothing for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import format_datetime, parsedate_to_datetime
from enum import Enum
from typing import Any
from uuid import UUID

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from sojourn.api.errors import BadRequestError, PayloadTooLargeError

log = logging.getLogger(__name__)

#: The largest request body accepted (Pinpoint's documented limit is 7 MB).
MAX_BODY_BYTES = 7 * 1024 * 1024

Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]

_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "boolean": "true or false",
    "double": "a number",
    "float": "a number",
    "structure": "an object",
    "map": "an object",
    "list": "a list",
    "timestamp": "a timestamp (epoch seconds or ISO 8601 such as 2026-01-31T09:00:00Z)",
    "blob": "base64 text",
}
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# --- validation errors ------------------------------------------------------------------------------


class _Invalid(Exception):
    """A validation failure travelling up the decoders, collecting its path on the way."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.where: list[str] = []

    def at(self, segment: str) -> _Invalid:
        """Prepend a path segment (``.Name``, ``[3]``) and return self, for ``raise err.at(...)``."""
        self.where.append(segment)
        return self

    def error(self, root: str) -> BadRequestError:
        """The BadRequestError naming the full path from ``root``."""
        path = (root + "".join(reversed(self.where))).lstrip(".")
        return BadRequestError(f"{path or 'Request body'}: {self.problem}")


def _show(value: Any) -> str:
    """A short description of a value the caller sent, for error messages."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return json.dumps(value, default=str)  # true, false, null and numbers as the caller wrote them


def _wrong_type(shape: Shape, value: Any) -> _Invalid:
    return _Invalid(f"expected {_EXPECTED.get(shape.type_name, shape.type_name)}, got {_show(value)}")


def _check_size(shape: Shape, size: int, what: str) -> None:
    """Enforce the model's ``min``/``max`` on a length or a count."""
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        raise _Invalid(f"must have at least {low} {what}, got {size}")
    if high is not None and size > high:
        raise _Invalid(f"must have at most {high} {what}, got {size}")


def _wire_name(member_name: str, member: Shape) -> str:
    return str(member.serialization.get("name", member_name))


# --- timestamps -------------------------------------------------------------------------------------


def parse_timestamp(value: Any) -> datetime:
    """A timezone-aware datetime from epoch seconds, ISO 8601 or RFC 822 text.

    Args:
        value: A number of seconds since the epoch, or text in one of the formats AWS uses.

    Returns:
        The instant, in UTC.

    Raises:
        ValueError: ``value`` is not a timestamp.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{value} is out of range for a timestamp") from None
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    text = value.strip()
    try:
        return parse_timestamp(float(text))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            raise ValueError("not a timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso8601(value: datetime) -> str:
    """``value`` as AWS writes ISO 8601 instants: UTC, milliseconds, ``Z`` (``2026-01-31T09:00:00.000Z``)."""
    value = _utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _epoch(value: datetime) -> int | float:
    seconds = round(_utc(value).timestamp(), 3)
    return int(seconds) if seconds.is_integer() else seconds


def _format_timestamp(value: Any, fmt: str) -> Any:
    """``value`` (a datetime, or anything :func:`parse_timestamp` reads) in the model's ``timestampFormat``."""
    stamp = value if isinstance(value, datetime) else parse_timestamp(value)
    fmt = fmt.lower()
    if fmt == "iso8601":
        return iso8601(stamp)
    if fmt == "rfc822":
        return format_datetime(_utc(stamp), usegmt=True)
    return _epoch(stamp)


# --- decoders: JSON values -> Python values ---------------------------------------------------------


class _DecoderCompiler:
    """Compiles shapes of one service model into decoders, sharing them between operations."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, ...], Decoder] = {}

    def decoder(self, shape: Shape) -> Decoder:
        """The decoder of JSON values of ``shape`` (validating and converting timestamps and blobs)."""
        key = _shape_key(shape)
        found = self._memo.get(key)
        if found is not None:
            return found
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape, key)
        if kind == "list":
            made = self._list(shape)
        elif kind == "map":
            made = self._map(shape)
        else:
            made = _scalar_decoder(shape)
        self._memo[key] = made
        return made

    def _structure(self, shape: StructureShape, key: tuple[Any, ...]) -> Decoder:
        if shape.is_document_type:
            return lambda value: value
        # wire name -> (member name, decoder); filled after registering, so recursive shapes work.
        fields: dict[str, tuple[str, Decoder]] = {}
        required: list[str] = []
        union = bool(shape.is_tagged_union)
        shape_name = shape.name

        def decode(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _wrong_type(shape, value)
            out: dict[str, Any] = {}
            for wire, item in value.items():
                found = fields.get(wire)
                if found is None:
                    raise _Invalid(
                        f"unknown field; {shape_name} has {', '.join(sorted(fields)) or 'no fields'}"
                    ).at(f".{wire}")
                if item is None:
                    continue
                name, member_decoder = found
                try:
                    out[name] = member_decoder(item)
                except _Invalid as err:
                    raise err.at(f".{name}") from None
            for name in required:
                if name not in out:
                    raise _Invalid("missing required field").at(f".{name}")
            if union and len(out) != 1:
                raise _Invalid(f"set exactly one of {', '.join(sorted(fields))}, got {len(out)}")
            return out

        self._memo[key] = decode
        for name, member in shape.members.items():
            if "location" in member.serialization:
                continue  # uri/query/header members are read by the operation's plan, not from the body
            fields[_wire_name(name, member)] = (name, self.decoder(member))
            if name in shape.required_members:
                required.append(name)
        return decode

    def _list(self, shape: ListShape) -> Decoder:
        item_decoder = self.decoder(shape.member)
        sized = "min" in shape.metadata or "max" in shape.metadata

        def decode(value: Any) -> list[Any]:
            if type(value) is not list:
                raise _wrong_type(shape, value)
            if sized:
                _check_size(shape, len(value), "items")
            out = []
            for i, item in enumerate(value):
                try:
                    out.append(item_decoder(item))
                except _Invalid as err:
                    raise err.at(f"[{i}]") from None
            return out

        return decode

    def _map(self, shape: MapShape) -> Decoder:
        value_decoder = self.decoder(shape.value)
        key_shape = shape.key
        checks_keys = bool(
            key_shape.metadata.get("enum") or "min" in key_shape.metadata or "max" in key_shape.metadata
        )
        key_decoder = _scalar_decoder(key_shape)
        sized = "min" in shape.metadata or "max" in shape.metadata

        def decode(value: Any) -> dict[str, Any]:
            if type(value) is not dict:
                raise _wrong_type(shape, value)
            if sized:
                _check_size(shape, len(value), "entries")
            out = {}
            for key, item in value.items():
                try:
                    if checks_keys:
                        key_decoder(key)
                    out[key] = value_decoder(item)
                except _Invalid as err:
                    raise err.at(f".{key}") from None
            return out

        return decode


def _shape_key(shape: Shape) -> tuple[Any, ...]:
    """What makes two shape objects decode (or encode) alike: the name plus member-level traits."""
    traits = tuple(
        sorted((k, str(v)) for k, v in shape.serialization.items() if k not in ("name", "location"))
    )
    return (shape.name, traits)


def _scalar_decoder(shape: Shape) -> Decoder:
    kind = shape.type_name
    if kind == "string":
        return _string_decoder(shape)
    if kind in ("integer", "long"):
        return _integer_decoder(shape)
    if kind in ("double", "float"):
        return _float_decoder(shape)
    if kind == "boolean":

        def decode_boolean(value: Any) -> bool:
            if type(value) is not bool:
                raise _wrong_type(shape, value)
            return value

        return decode_boolean
    if kind == "timestamp":

        def decode_timestamp(value: Any) -> datetime:
            if isinstance(value, bool):
                raise _wrong_type(shape, value)
            try:
                return parse_timestamp(value)
            except ValueError:
                raise _wrong_type(shape, value) from None

        return decode_timestamp
    if kind == "blob":

        def decode_blob(value: Any) -> bytes:
            if type(value) is not str:
                raise _wrong_type(shape, value)
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _wrong_type(shape, value) from None

        return decode_blob
    return lambda value: value  # a type this protocol layer does not know: pass through


def _string_decoder(shape: Shape) -> Decoder:
    enum = frozenset(shape.metadata.get("enum") or ())
    sized = "min" in shape.metadata or "max" in shape.metadata
    if not enum and not sized:

        def decode_plain(value: Any) -> str:
            if type(value) is not str:
                raise _wrong_type(shape, value)
            return value

        return decode_plain
    choices = ", ".join(shape.metadata.get("enum") or ())

    def decode(value: Any) -> str:
        if type(value) is not str:
            raise _wrong_type(shape, value)
        if enum and value not in enum:
            raise _Invalid(f"{_show(value)} is not a valid value; use one of: {choices}")
        if sized:
            _check_size(shape, len(value), "characters")
        return value

    return decode


def _integer_decoder(shape: Shape) -> Decoder:
    low, high = _INT_RANGES[shape.type_name]
    low = max(low, shape.metadata.get("min", low))
    high = min(high, shape.metadata.get("max", high))

    def decode(value: Any) -> int:
        if type(value) is not int:
            # JSON has one number type: 3.0 is the integer 3, 3.5 is not an integer.
            if type(value) is float and value.is_integer():
                value = int(value)
            else:
                raise _wrong_type(shape, value)
        if not low <= value <= high:
            raise _Invalid(f"{value} is out of range; use {low} to {high}")
        return value

    return decode


def _float_decoder(shape: Shape) -> Decoder:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")

    def decode(value: Any) -> float:
        if type(value) is float or type(value) is int:
            number = float(value)
        elif type(value) is str and value in _SPECIAL_FLOATS:
            number = _SPECIAL_FLOATS[value]  # botocore sends non-finite numbers as these strings
        else:
            raise _wrong_type(shape, value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise _Invalid(f"{value} is out of range; use {low} to {high}")
        return number

    return decode


def _text_decoder(shape: Shape, value_decoder: Decoder) -> Decoder:
    """A decoder for a URI label, query parameter or header, which arrive as text."""
    kind = shape.type_name
    if kind in ("integer", "long"):

        def decode_int(text: str) -> int:
            try:
                number = int(text.strip())
            except ValueError:
                raise _wrong_type(shape, text) from None
            return int(value_decoder(number))

        return decode_int
    if kind in ("double", "float"):

        def decode_float(text: str) -> float:
            try:
                return float(value_decoder(float(text)))
            except ValueError:
                raise _wrong_type(shape, text) from None

        return decode_float
    if kind == "boolean":

        def decode_bool(text: str) -> bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise _wrong_type(shape, text)
            return lowered == "true"

        return decode_bool
    if kind == "string" and shape.serialization.get("jsonvalue"):

        def decode_json(text: str) -> Any:
            try:
                return json.loads(base64.b64decode(text))
            except (binascii.Error, ValueError):
                raise _Invalid(f"expected base64-encoded JSON, got {_show(text)}") from None

        return decode_json
    return value_decoder  # strings, timestamps (text is accepted) and blobs


# --- the request plan -------------------------------------------------------------------------------


@dataclass
class _InputPlan:
    """Where each input member comes from, and its compiled decoder."""

    uri: list[tuple[str, str, Decoder]] = field(default_factory=list)
    query: list[tuple[str, str, Decoder, bool]] = field(default_factory=list)
    query_map: tuple[str, bool] | None = None
    headers: list[tuple[str, str, Decoder]] = field(default_factory=list)
    header_maps: list[tuple[str, str]] = field(default_factory=list)
    payload: str | None = None
    payload_kind: str | None = None
    payload_decoder: Decoder | None = None
    body: Decoder | None = None
    required: list[str] = field(default_factory=list)


_COMPILERS: weakref.WeakKeyDictionary[Any, _DecoderCompiler] = weakref.WeakKeyDictionary()
_INPUT_PLANS: weakref.WeakKeyDictionary[OperationModel, _InputPlan] = weakref.WeakKeyDictionary()


def _input_plan(op: OperationModel) -> _InputPlan:
    plan = _INPUT_PLANS.get(op)
    if plan is None:
        compiler = _COMPILERS.get(op.service_model)
        if compiler is None:
            compiler = _COMPILERS[op.service_model] = _DecoderCompiler()
        plan = _INPUT_PLANS[op] = _compile_input(op, compiler)
    return plan


def _compile_input(op: OperationModel, compiler: _DecoderCompiler) -> _InputPlan:
    plan = _InputPlan()
    shape = op.input_shape
    if shape is None:
        return plan
    has_body_members = False
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = _wire_name(name, member)
        if location == "uri":
            plan.uri.append((name, wire, _text_decoder(member, compiler.decoder(member))))
        elif location == "querystring":
            if member.type_name == "map":
                plan.query_map = (name, member.value.type_name == "list")
            elif member.type_name == "list":
                item = member.member
                plan.query.append((name, wire, _text_decoder(item, compiler.decoder(item)), True))
            else:
                plan.query.append((name, wire, _text_decoder(member, compiler.decoder(member)), False))
        elif location == "header":
            if member.type_name == "list":
                item = member.member
                plan.headers.append(
                    (name, wire.lower(), _header_list_decoder(_text_decoder(item, compiler.decoder(item))))
                )
            else:
                plan.headers.append((name, wire.lower(), _text_decoder(member, compiler.decoder(member))))
        elif location == "headers":
            plan.header_maps.append((name, wire.lower()))
        elif location is None:
            has_body_members = True
    payload = shape.serialization.get("payload")
    if payload is not None:
        member = shape.members[payload]
        plan.payload, plan.payload_kind = payload, member.type_name
        if member.type_name not in ("blob", "string"):
            plan.payload_decoder = compiler.decoder(member)
    elif has_body_members:
        plan.body = compiler.decoder(shape)
    # Required body members are checked by the body decoder; the rest here.
    plan.required = [
        n for n in shape.required_members if "location" in shape.members[n].serialization or n == payload
    ]
    return plan


def _header_list_decoder(item_decoder: Decoder) -> Decoder:
    def decode(text: str) -> list[Any]:
        out = []
        for i, part in enumerate(_split_header_list(text)):
            try:
                out.append(item_decoder(part))
            except _Invalid as err:
                raise err.at(f"[{i}]") from None
        return out

    return decode


def _split_header_list(text: str) -> list[str]:
    """Split a comma-separated header list, honouring the double quotes botocore adds around commas."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_request(
    op: OperationModel,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Read and validate an operation's input from the HTTP request.

    Args:
        op: The operation (from the Router).
        path_params: Decoded URI labels, keyed by label (``{"application-id": "..."}``).
        query: Decoded query parameters, in order, repeated names repeated.
        headers: Request headers (any capitalisation).
        body: The raw request body.

    Returns:
        The input keyed by the input shape's member names, e.g. for UpdateEndpoint
        ``{"ApplicationId": ..., "EndpointId": ..., "EndpointRequest": {...}}``; timestamps as aware
        datetimes, blobs as bytes, absent members left out.

    Raises:
        BadRequestError: malformed JSON, a wrong type, an unknown or missing field, a value outside the
            model's enum or bounds; the message names the field's full path.
        PayloadTooLargeError: a body over :data:`MAX_BODY_BYTES`.
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"The request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes. Send fewer items per request."
        )
    plan = _input_plan(op)
    out: dict[str, Any] = {}
    for member, label, decode in plan.uri:
        if label in path_params:
            out[member] = _decode_text(decode, path_params[label], member)
    if plan.query or plan.query_map:
        _read_query(plan, query, out)
    if plan.headers or plan.header_maps:
        _read_headers(plan, headers, out)
    if plan.payload is not None:
        try:
            _read_payload(plan, plan.payload, body, out)
        except _Invalid as err:
            raise err.error(plan.payload) from None
    elif plan.body is not None:
        try:
            out.update(plan.body(_load_json(body)))
        except _Invalid as err:
            raise err.error("") from None
    for name in plan.required:
        if name not in out:
            where = "the JSON request body" if name == plan.payload else "the request"
            raise BadRequestError(f"{name}: missing required field; send it in {where}")
    return out


def _decode_text(decode: Decoder, text: str, member: str) -> Any:
    """Decode a URI label, query parameter or header value; errors name the member."""
    try:
        return decode(text)
    except _Invalid as err:
        raise err.error(member) from None


def _read_query(plan: _InputPlan, query: Sequence[tuple[str, str]], out: dict[str, Any]) -> None:
    claimed: set[str] = set()
    for member, key, decode, is_list in plan.query:
        claimed.add(key)
        values = [v for k, v in query if k == key]
        if not values:
            continue
        if is_list:
            out[member] = [_decode_text(decode, v, member) for v in values]
        else:
            out[member] = _decode_text(decode, values[-1], member)
    if plan.query_map is not None:
        member, of_lists = plan.query_map
        collected: dict[str, Any] = {}
        for k, v in query:
            if k not in claimed:
                if of_lists:
                    collected.setdefault(k, []).append(v)
                else:
                    collected[k] = v
        if collected:
            out[member] = collected


def _read_headers(plan: _InputPlan, headers: Mapping[str, str], out: dict[str, Any]) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for member, name, decode in plan.headers:
        if name in lowered:
            out[member] = _decode_text(decode, lowered[name], member)
    for member, prefix in plan.header_maps:
        found = {k[len(prefix) :]: v for k, v in lowered.items() if k.startswith(prefix)}
        if found:
            out[member] = found


def _read_payload(plan: _InputPlan, member: str, body: bytes, out: dict[str, Any]) -> None:
    if plan.payload_kind == "blob":
        if body:
            out[member] = body
    elif plan.payload_kind == "string":
        if body:
            try:
                out[member] = body.decode()
            except UnicodeDecodeError:
                raise _Invalid("the request body is not UTF-8 text") from None
    elif body.strip() and plan.payload_decoder is not None:
        # An empty body means the payload was not sent; a required one is reported by the caller.
        out[member] = plan.payload_decoder(_load_json(body))


def _load_json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequestError(f"Request body is not valid JSON: {err}") from None
    except RecursionError:
        raise BadRequestError("Request body is not valid JSON: it is nested too deeply") from None


# --- encoders: handler values -> JSON values --------------------------------------------------------


class _EncoderCompiler:
    """Compiles shapes into encoders; ``None`` means "already JSON-ready" (strings, numbers, booleans)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, ...], Encoder | None] = {}
        self._warned: set[tuple[str, str]] = set()

    def encoder(self, shape: Shape) -> Encoder | None:
        """The encoder of ``shape``'s values, or None if they serialize as they are."""
        key = _shape_key(shape)
        if key in self._memo:
            return self._memo[key]
        kind = shape.type_name
        made: Encoder | None
        if kind == "structure":
            return self._structure(shape, key)
        if kind == "list":
            made = self._list(shape)
        elif kind == "map":
            made = self._map(shape)
        elif kind == "timestamp":
            fmt = str(shape.serialization.get("timestampFormat", "unixTimestamp"))
            made = lambda value: _format_timestamp(value, fmt)  # noqa: E731
        elif kind == "blob":
            made = _encode_blob
        else:
            made = None
        self._memo[key] = made
        return made

    def _structure(self, shape: StructureShape, key: tuple[Any, ...]) -> Encoder:
        if shape.is_document_type:
            return lambda value: value
        fields: dict[str, tuple[str, Encoder | None]] = {}
        # Header and status members, serialized outside the body.
        elsewhere = {n for n, m in shape.members.items() if "location" in m.serialization}
        shape_name = shape.name
        warned = self._warned

        def encode(value: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, item in value.items():
                if item is None:
                    continue
                found = fields.get(name)
                if found is None:
                    if name not in elsewhere and (shape_name, name) not in warned:
                        warned.add((shape_name, name))
                        log.warning(
                            "dropped %s.%s from a response: the model has no such member", shape_name, name
                        )
                    continue
                wire, member_encoder = found
                out[wire] = item if member_encoder is None else member_encoder(item)
            return out

        self._memo[key] = encode
        for name, member in shape.members.items():
            if "location" not in member.serialization:
                fields[name] = (_wire_name(name, member), self.encoder(member))
        return encode

    def _list(self, shape: ListShape) -> Encoder | None:
        item_encoder = self.encoder(shape.member)
        if item_encoder is None:
            return None
        return lambda value: [None if v is None else item_encoder(v) for v in value]

    def _map(self, shape: MapShape) -> Encoder | None:
        value_encoder = self.encoder(shape.value)
        if value_encoder is None:
            return None
        return lambda value: {k: None if v is None else value_encoder(v) for k, v in value.items()}


def _encode_blob(value: Any) -> str:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(raw).decode("ascii")


def _json_default(value: Any) -> Any:
    """JSON for values handlers may return where the model wants a plain string or number."""
    if isinstance(value, datetime):
        return iso8601(value)  # e.g. Pinpoint's CreationDate, a string in the model
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode()


def _header_text(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "timestamp":
        return str(_format_timestamp(value, str(shape.serialization.get("timestampFormat", "rfc822"))))
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "list":
        member = shape.member
        parts = [_header_text(member, v) for v in value if v is not None]
        return ",".join(
            f'"{p}"' if ("," in p or '"' in p) and member.type_name == "string" else p for p in parts
        )
    if kind == "string" and shape.serialization.get("jsonvalue"):
        return base64.b64encode(_dumps(value)).decode("ascii")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


@dataclass
class _OutputPlan:
    """Where each output member goes, and its compiled encoder."""

    status: int = 200
    status_member: str | None = None
    headers: list[tuple[str, str, Shape]] = field(default_factory=list)
    header_maps: list[tuple[str, str]] = field(default_factory=list)
    payload: str | None = None
    payload_kind: str | None = None
    encoder: Encoder | None = None
    has_shape: bool = False


_ENCODER_COMPILERS: weakref.WeakKeyDictionary[Any, _EncoderCompiler] = weakref.WeakKeyDictionary()
_OUTPUT_PLANS: weakref.WeakKeyDictionary[OperationModel, _OutputPlan] = weakref.WeakKeyDictionary()


def _output_plan(op: OperationModel) -> _OutputPlan:
    plan = _OUTPUT_PLANS.get(op)
    if plan is None:
        compiler = _ENCODER_COMPILERS.get(op.service_model)
        if compiler is None:
            compiler = _ENCODER_COMPILERS[op.service_model] = _EncoderCompiler()
        plan = _OUTPUT_PLANS[op] = _compile_output(op, compiler)
    return plan


def _compile_output(op: OperationModel, compiler: _EncoderCompiler) -> _OutputPlan:
    plan = _OutputPlan(status=int(op.http.get("responseCode", 200)))
    shape = op.output_shape
    if shape is None:
        return plan
    plan.has_shape = True
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        if location == "header":
            plan.headers.append((name, _wire_name(name, member), member))
        elif location == "headers":
            plan.header_maps.append((name, str(member.serialization.get("name", ""))))
        elif location == "statusCode":
            plan.status_member = name
    payload = shape.serialization.get("payload")
    if payload is not None:
        member = shape.members[payload]
        plan.payload, plan.payload_kind = payload, member.type_name
        plan.encoder = compiler.encoder(member)
    else:
        plan.encoder = compiler.encoder(shape)
    return plan


def serialize_response(op: OperationModel, output: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """The HTTP response for a handler's output.

    Args:
        op: The operation.
        output: The handler's result, keyed by the output shape's member names; None values are left out.

    Returns:
        The status (the model's ``responseCode``, default 200), the headers and the body: the payload
        member's JSON when the output shape has a payload, otherwise the JSON object of its body
        members. Timestamps follow the member's ``timestampFormat`` (body default: epoch seconds;
        header default: RFC 822), so boto3 parses them back into datetimes.
    """
    plan = _output_plan(op)
    status = plan.status
    headers: dict[str, str] = {}
    if plan.status_member is not None and output.get(plan.status_member) is not None:
        status = int(output[plan.status_member])
    for member, header, shape in plan.headers:
        value = output.get(member)
        if value is not None:
            headers[header] = _header_text(shape, value)
    for member, prefix in plan.header_maps:
        for key, value in (output.get(member) or {}).items():
            headers[prefix + key] = str(value)
    if status == 204 or status == 304:
        return status, headers, b""  # these statuses carry no body
    if plan.payload_kind in ("blob", "string"):
        raw = output.get(plan.payload or "")
        headers["Content-Type"] = (
            "application/octet-stream" if plan.payload_kind == "blob" else "text/plain; charset=utf-8"
        )
        return status, headers, raw.encode() if isinstance(raw, str) else bytes(raw or b"")
    headers["Content-Type"] = "application/json"
    if not plan.has_shape:
        return status, headers, b"{}"
    document = output.get(plan.payload) if plan.payload is not None else output
    if document is None:
        return status, headers, b"{}"
    if plan.encoder is not None:
        document = plan.encoder(document)
    return status, headers, _dumps(document)


__all__ = ["MAX_BODY_BYTES", "iso8601", "parse_request", "parse_timestamp", "serialize_response"]
