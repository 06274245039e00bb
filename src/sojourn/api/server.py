"""The ASGI app: every AWS operation routed from the botocore models, SigV4-checked, parsed, handled, serialized.

Handlers are plain async functions ``(RequestContext, input dict) -> output dict``, keyed by operation
name; this module owns everything between them and the wire. A request goes:

1. ``extra_routes`` (unauthenticated Starlette routes such as tracking pixels), then ``GET /healthz``;
2. otherwise the model-derived :class:`~sojourn.api.service_model.Router` finds the operation;
3. the body is read (bounded), the SigV4 signature verified;
4. the input is parsed and validated against the operation's shapes, the handler called, and its
   output serialized as the operation's response.

Any :class:`~sojourn.api.errors.ApiError` becomes its rest-json error response; any other exception
is logged with its traceback and answered with a 500 that only carries the request id. Every
response carries ``x-amzn-RequestId``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from botocore.model import OperationModel, ServiceModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sojourn.api.errors import ApiError, InternalServerError, MethodNotAllowedError, PayloadTooLargeError
from sojourn.api.service_model import Router, load_service
from sojourn.api.sigv4 import verify_sigv4
from sojourn.api.wire import MAX_BODY_BYTES, parse_request, serialize_response

log = logging.getLogger(__name__)

#: Where the request id lives in the ASGI scope (set by the request-id middleware).
REQUEST_ID_SCOPE_KEY = "sojourn.request_id"
_REQUEST_ID_HEADER = b"x-amzn-requestid"
# The catch-all route takes every method: the Router answers 405 with the allowed ones.
_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass
class RequestContext:
    """What a handler knows about the request besides its input.

    Attributes:
        request_id: The request's id (also in the ``x-amzn-RequestId`` response header).
        operation: The operation name, e.g. ``"CreateApp"``.
        service: The botocore service name, e.g. ``"pinpoint"``.
        state: The application object given to :func:`build_app` (database, settings, ...).
    """

    request_id: str
    operation: str
    service: str
    state: Any


Handler = Callable[[RequestContext, dict[str, Any]], Awaitable[dict[str, Any]]]
Hook = Callable[[], Awaitable[None]]


def error_response(err: ApiError, request_id: str) -> Response:
    """The rest-json error response for ``err`` (boto3 raises the modeled exception from it).

    Args:
        err: The error.
        request_id: The request's id.

    Returns:
        A response with the error's status, ``x-amzn-ErrorType`` and JSON message body.
    """
    return Response(err.body(request_id), status_code=err.status, headers=err.headers(request_id))


class _RequestIdMiddleware:
    """Gives every request an id (``scope["sojourn.request_id"]``) and every response the header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        header = (_REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == _REQUEST_ID_HEADER for name, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _handler_table(
    router: Router, models: Sequence[ServiceModel], handlers: Mapping[str, Handler]
) -> dict[OperationModel, Handler]:
    """Each routed operation's handler.

    An operation is found under ``"<service>:<Operation>"`` or, when no earlier service in the list
    has an operation of that name, under its plain name.

    Raises:
        ValueError: a handler key names no operation of the services (a typo would otherwise leave
            the operation answering "not implemented").
    """
    first_owner: dict[str, str] = {}
    for model in models:
        for name in model.operation_names:
            first_owner.setdefault(name, model.service_name)
    table: dict[OperationModel, Handler] = {}
    used: set[str] = set()
    for route in router.routes:
        name = route.operation.name
        keys = [f"{route.service}:{name}"]
        if first_owner.get(name) == route.service:
            keys.append(name)
        for key in keys:
            if key in handlers:
                table.setdefault(route.operation, handlers[key])
                used.add(key)
    unknown = sorted(set(handlers) - used)
    if unknown:
        services = ", ".join(m.service_name for m in models)
        raise ValueError(f"handlers for operations that {services} do not have: {', '.join(unknown)}")
    return table


def _internal_error_codes(models: Sequence[ServiceModel]) -> dict[str, str]:
    """Per service, the name its model gives the 500 error (SESv2 says InternalServiceErrorException)."""
    codes: dict[str, str] = {}
    for model in models:
        for shape in model.error_shapes:
            if shape.metadata.get("error", {}).get("httpStatusCode") == 500 and shape.name.startswith(
                "Internal"
            ):
                codes[model.service_name] = shape.name
    return codes


async def _read_body(request: Request) -> bytes:
    """The request body, refusing more than MAX_BODY_BYTES without reading it all into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"The request body is {declared} bytes; the limit is {MAX_BODY_BYTES} bytes. Send fewer items per request."
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLargeError(
                f"The request body is over the limit of {MAX_BODY_BYTES} bytes. Send fewer items per request."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    *,
    services: Sequence[str],
    handlers: Mapping[str, Handler],
    state: Any,
    access_key_id: str,
    secret_access_key: str,
    extra_routes: Sequence[BaseRoute] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> Starlette:
    """The API app for ``services``.

    Args:
        services: botocore service names whose operations are served, e.g. ``["pinpoint", "sesv2"]``.
        handlers: Implementation per operation, keyed by operation name (``"CreateApp"``). An operation
            whose name an earlier service in ``services`` already has is keyed ``"<service>:<Operation>"``
            (e.g. ``"sesv2:CreateEmailTemplate"``, since Pinpoint has CreateEmailTemplate too); the
            qualified form is accepted for every operation. Operations without a handler answer
            405 MethodNotAllowedException "sojourn does not implement <Op> yet".
        state: Passed to every handler as ``RequestContext.state``.
        access_key_id: The access key id callers sign with (SigV4).
        secret_access_key: Its secret.
        extra_routes: Unauthenticated Starlette routes tried first (tracking pixels, pages).
        on_startup: Coroutines awaited, in order, when the server starts.
        on_shutdown: Coroutines awaited, in order, when it stops.

    Returns:
        The Starlette application.

    Raises:
        ValueError: a handler key names no operation of ``services``.
    """
    models = [load_service(s) for s in services]
    router = Router(models)
    table = _handler_table(router, models, handlers)
    signing_names = frozenset(m.signing_name for m in models)
    internal_codes = _internal_error_codes(models)

    def fail(err: ApiError, request_id: str, service: str | None) -> Response:
        code = internal_codes.get(service or "") if err.code == InternalServerError.code else None
        if code is not None:
            err = ApiError(err.message, code=code, status=err.status)
        return error_response(err, request_id)

    async def dispatch(request: Request) -> Response:
        request_id: str = request.scope.get(REQUEST_ID_SCOPE_KEY) or str(uuid.uuid4())
        service: str | None = None
        operation = "?"
        try:
            raw_path = _raw_path(request.scope)
            query_string = request.scope.get("query_string", b"").decode("utf-8", "surrogateescape")
            query = parse_qsl(query_string, keep_blank_values=True)
            route, path_params = router.match_route(request.method, raw_path, query)
            service, op = route.service, route.operation
            operation = op.name
            body = await _read_body(request)
            verify_sigv4(
                request.method,
                raw_path,
                query_string,
                request.headers,
                body,
                access_key_id=access_key_id,
                secret_access_key=secret_access_key,
                signing_names=signing_names,
                now=datetime.now(UTC),
            )
            handler = table.get(op)
            if handler is None:
                raise MethodNotAllowedError(f"sojourn does not implement {op.name} yet")
            params = parse_request(op, path_params, query, request.headers, body)
            output = await handler(RequestContext(request_id, op.name, service, state), params)
            status, headers, payload = serialize_response(op, output or {})
            headers["x-amzn-RequestId"] = request_id
            return Response(payload, status_code=status, headers=headers)
        except ApiError as err:
            if err.status >= 500:
                log.error("%s %s failed (%s): %s", request_id, operation, err.code, err.message)
            else:
                log.debug("%s %s rejected (%s): %s", request_id, operation, err.code, err.message)
            return fail(err, request_id, service)
        except Exception:
            log.exception("%s %s failed with an unexpected error", request_id, operation)
            message = f"Internal server error. The server log has the details under request id {request_id}."
            return fail(InternalServerError(message), request_id, service)

    async def healthz(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook()

    routes: list[BaseRoute] = [
        *extra_routes,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{path:path}", dispatch, methods=_ALL_METHODS),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_RequestIdMiddleware)], lifespan=lifespan)


def _raw_path(scope: Scope) -> str:
    """The request path as sent (percent-encoded), which both routing and SigV4 need."""
    raw: bytes | None = scope.get("raw_path")
    if raw:
        return raw.decode("utf-8", "surrogateescape").split("?", 1)[0]
    # Servers without raw_path: re-encode the decoded path (loses only the client's optional encodings).
    return quote(scope.get("path", "/"), safe="/~!$&'()*+,;=:@")
