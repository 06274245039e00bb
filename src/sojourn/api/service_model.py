"""Routing derived from botocore's service models: every operation's HTTP method and URI template.

The templates (``/v1/apps/{application-id}/endpoints/{endpoint-id}``, greedy ``/{Key+}``, a fixed
query part such as ``/v1/x/{Name}?tagging``) are compiled into a tree of path segments. Matching
walks it literal-first, so the most specific template wins (``/contacts/list`` before
``/contacts/{EmailAddress}``), and only falls back to a less specific template when the more specific
one lacks the request's method.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel

from sojourn.api.errors import MethodNotAllowedError, NotFoundError

_LABEL = re.compile(r"^\{([^{}]+)\}$")


@lru_cache(maxsize=16)
def load_service(name: str) -> ServiceModel:
    """The botocore service model of ``name``, loaded once per process.

    Args:
        name: A botocore service name such as ``"pinpoint"`` or ``"sesv2"``.

    Returns:
        The (shared, cached) service model.
    """
    return botocore.session.get_session().get_service_model(name)


@dataclass(frozen=True)
class Route:
    """One operation's route.

    Attributes:
        service: The botocore service name (``"pinpoint"``).
        method: The HTTP method, upper case.
        template: The model's ``requestUri``.
        labels: The URI labels in template order (greedy ones without their ``+``).
        required_query: The template's fixed query part as ``(name, value or None)`` pairs.
        operation: The botocore operation model.
    """

    service: str
    method: str
    template: str
    labels: tuple[str, ...]
    required_query: tuple[tuple[str, str | None], ...]
    operation: OperationModel

    def accepts_query(self, query: Sequence[tuple[str, str]]) -> bool:
        """Whether ``query`` carries the template's fixed query part."""
        for name, value in self.required_query:
            if not any(k == name and (value is None or v == value) for k, v in query):
                return False
        return True


@dataclass
class _Node:
    """One path segment position in the route tree."""

    literals: dict[str, _Node] = field(default_factory=dict)
    label: _Node | None = None
    greedy: _Node | None = None
    # Per method, the routes ending here; those with more fixed query parameters first.
    routes: dict[str, list[Route]] = field(default_factory=dict)


def _split_template(template: str) -> tuple[list[str], tuple[tuple[str, str | None], ...]]:
    path, _, fixed_query = template.partition("?")
    required: list[tuple[str, str | None]] = []
    for part in filter(None, fixed_query.split("&")):
        name, eq, value = part.partition("=")
        required.append((name, value if eq else None))
    return _segments(path), tuple(required)


def _segments(path: str) -> list[str]:
    """The segments of a path; one trailing slash is ignored, as in AWS's routing."""
    if path.endswith("/") and len(path) > 1:
        path = path[:-1]
    return path.split("/")[1:] if path.startswith("/") else path.split("/")


class Router:
    """Finds the operation for a method and a path across one or more services."""

    def __init__(self, services: Sequence[str | ServiceModel]) -> None:
        """Compile every operation of ``services``.

        Args:
            services: botocore service names (or already loaded service models). When two services
                have the same template and method, the first one listed wins.
        """
        self._root = _Node()
        self.routes: list[Route] = []
        for service in services:
            model = load_service(service) if isinstance(service, str) else service
            for name in model.operation_names:
                self._add(model.service_name, model.operation_model(name))

    def _add(self, service: str, op: OperationModel) -> None:
        segments, required_query = _split_template(op.http["requestUri"])
        node = self._root
        labels: list[str] = []
        for segment in segments:
            m = _LABEL.match(segment)
            if m is None:
                node = node.literals.setdefault(segment, _Node())
            elif m.group(1).endswith("+"):
                labels.append(m.group(1)[:-1])
                node.greedy = node.greedy or _Node()
                node = node.greedy
            else:
                labels.append(m.group(1))
                node.label = node.label or _Node()
                node = node.label
        method = op.http.get("method", "POST").upper()
        route = Route(service, method, op.http["requestUri"], tuple(labels), required_query, op)
        self.routes.append(route)
        bucket = node.routes.setdefault(method, [])
        bucket.append(route)
        # Stable sort: a template with a fixed query part is more specific than one without.
        bucket.sort(key=lambda r: -len(r.required_query))

    def match(
        self, method: str, path: str, query: Sequence[tuple[str, str]] = ()
    ) -> tuple[OperationModel, dict[str, str]]:
        """The operation for a request and its percent-decoded path parameters.

        Args:
            method: The HTTP method.
            path: The raw (still percent-encoded) request path, without the query string. Raw, so an
                encoded ``/`` (``%2F``) inside an ARN stays within its label.
            query: The decoded query parameters; only needed for templates with a fixed query part.

        Returns:
            The operation model and its path parameters keyed by URI label (``{"application-id": ...}``).

        Raises:
            NotFoundError: no operation has this path.
            MethodNotAllowedError: operations have this path, but not for this method.
        """
        route, params = self.match_route(method, path, query)
        return route.operation, params

    def match_route(
        self, method: str, path: str, query: Sequence[tuple[str, str]] = ()
    ) -> tuple[Route, dict[str, str]]:
        """Like :meth:`match`, but returns the :class:`Route` (which also names the service)."""
        method = method.upper()
        segments = _segments(path)
        allowed: set[str] = set()
        for node, captures in self._walk(self._root, segments, 0, ()):
            for route in node.routes.get(method, ()):
                if route.accepts_query(query):
                    return route, dict(zip(route.labels, captures, strict=True))
            allowed.update(node.routes)
        if allowed:
            raise MethodNotAllowedError(
                f"{method} is not allowed on {unquote(path)}; this path takes {' or '.join(sorted(allowed))}"
            )
        raise NotFoundError(
            f"No API operation matches {method} {unquote(path)}. Check the request path and that endpoint_url "
            "is the server's root URL (for example http://localhost:8080, with no path)."
        )

    def _walk(
        self, node: _Node, segments: list[str], i: int, captures: tuple[str, ...]
    ) -> Iterator[tuple[_Node, tuple[str, ...]]]:
        """Nodes matching ``segments[i:]``, most specific first (literal, then label, then greedy)."""
        if i == len(segments):
            if node.routes:
                yield node, captures
            return
        segment = segments[i]
        literal = node.literals.get(segment)
        if literal is None and "%" in segment:
            # A client may percent-encode characters that need no encoding.
            literal = node.literals.get(unquote(segment))
        if literal is not None:
            yield from self._walk(literal, segments, i + 1, captures)
        if node.label is not None and segment:
            yield from self._walk(node.label, segments, i + 1, (*captures, unquote(segment)))
        if node.greedy is not None and segment:
            # Longest first: a greedy label takes as much of the path as the rest of the template allows.
            for end in range(len(segments), i, -1):
                value = unquote("/".join(segments[i:end]))
                yield from self._walk(node.greedy, segments, end, (*captures, value))
