"""The route table's machinery: what an endpoint declares, and finding the endpoint of a request.

Every endpoint the server answers is one :class:`Endpoint` in one table
(:data:`lockgate.serving.routes.ROUTES`): its method, path template, handler, who may call it,
its request and response schemas and a summary. The same table drives dispatch, the 404 of an
unknown path, the 405 (with an ``Allow`` header) of a known path called with another method, and
the OpenAPI document (:mod:`lockgate.serving.openapi`), so they cannot drift apart.

Why a small matcher here and not Starlette's router: the endpoints need fields Starlette's
``Route`` does not carry (auth, schemas, operation ids), so the table would exist anyway, and
Starlette's ``SchemaGenerator`` reads YAML out of docstrings rather than from such a table. Its
router would also wrap each handler in a ``Request``/``Response`` pair and its own exception
handling, a second place where errors become answers beside the app's one handler, and a
per-request object the hot paths were written to avoid. Matching by path segments is a few dozen
lines: static paths are one dict lookup, templates are compared segment by segment (no regular
expression), and a parameter whose schema has an ``enum`` matches only those values
(``/admin/deployments/{deployment}/{command}`` beside ``.../history``).

The two inference paths are *hot*: :meth:`RouteTable.hot` finds them with one dict lookup or one
prefix and suffix test, before anything else, and their handlers read the body themselves (after
choosing the variant, so a request for a model not served is refused before its body is read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from lockgate.errors import LockgateError, MethodNotAllowed, NotFound
from lockgate.serving.exchange import Handler, Response

__all__ = ["Auth", "Endpoint", "RouteTable"]

_NO_PARAMS: dict[str, str] = {}
_MAX_SUGGESTED = 8


class Auth(Enum):
    """Who may call an endpoint."""

    PUBLIC = "public"
    """Anyone who reaches the server (inference, health, metrics, this document)."""
    ADMIN_PAGE = "admin_page"
    """The admin token, as a bearer header or a ``?token=`` query parameter (a page a browser opens)."""
    ADMIN = "admin"
    """The admin token as a bearer header; off (404) when the server has no token."""


@dataclass(frozen=True)
class Endpoint:
    """One operation: ``method`` on ``path`` (``{name}`` marks a path parameter) runs ``handler``.

    ``request`` maps the media types the body may have to their schemas (None: no body); the
    app answers 415 for any other and reads the body before the handler runs, except for a hot
    endpoint (``is_hot``, an inference path), whose handler checks and reads it itself after
    choosing the variant; a hot path with at most one parameter is also found before the table
    is searched. ``path_parameters`` gives a parameter a schema other than a string (an
    ``enum`` also limits what the path matches); ``parameters`` are the OpenAPI query and header
    parameters; ``responses`` the OpenAPI responses by status. ``on_denied`` answers a caller
    without a valid token instead of the JSON error (the dashboard's sign-in page).
    """

    method: str
    path: str
    handler: Handler
    summary: str
    operation_id: str
    responses: Mapping[str, Any]
    auth: Auth = Auth.PUBLIC
    request: Mapping[str, Any] | None = None
    is_request_required: bool = True
    path_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    parameters: Sequence[Mapping[str, Any]] = ()
    description: str | None = None
    is_hot: bool = False
    on_denied: Callable[[LockgateError], Response] | None = None

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.strip("/").split("/"))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(s[1:-1] for s in self.segments if s.startswith("{"))

    def allows(self, name: str, value: str) -> bool:
        """Whether path parameter ``name`` may be ``value`` (not empty; one of its enum, if any)."""
        enum = self.path_parameters.get(name, {}).get("enum")
        return bool(value) and (enum is None or value in enum)

    def shown(self) -> str:
        """``METHOD path``, with each enumerated parameter written as its choices."""
        path = self.path
        for name, schema in self.path_parameters.items():
            if "enum" in schema:
                path = path.replace(f"{{{name}}}", "(" + "|".join(schema["enum"]) + ")")
        return f"{self.method} {path}"


@dataclass(frozen=True)
class _Template:
    """A compiled path template: per segment, the literal text, or None for a parameter."""

    literals: tuple[str | None, ...]
    names: tuple[str | None, ...]
    allowed: tuple[frozenset[str] | None, ...]
    by_method: dict[str, Endpoint]

    def bind(self, segments: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for segment, literal, name, allowed in zip(
            segments, self.literals, self.names, self.allowed, strict=True
        ):
            if literal is not None:
                if segment != literal:
                    return None
            elif not segment or (allowed is not None and segment not in allowed):
                return None
            else:
                params[name] = segment  # type: ignore[index]
        return params


class RouteTable:
    """Finds the endpoint of a request: ``hot`` for the inference paths, ``match`` for the rest."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)
        self._hot_paths: dict[str, Endpoint] = {}
        self._hot_templates: list[tuple[str, str, str, Endpoint]] = []
        self._static: dict[str, dict[str, Endpoint]] = {}
        templates: dict[str, _Template] = {}
        seen: set[tuple[str, str]] = set()
        for endpoint in self.endpoints:
            if (endpoint.method, endpoint.path) in seen:
                raise ValueError(f"the route table has {endpoint.method} {endpoint.path} twice")
            seen.add((endpoint.method, endpoint.path))
            if endpoint.is_hot:
                self._add_hot(endpoint)
            if not endpoint.parameter_names:
                self._static.setdefault(_normal(endpoint.path), {})[endpoint.method] = endpoint
                continue
            template = templates.get(endpoint.path)
            if template is None:
                template = templates[endpoint.path] = _compile(endpoint)
            template.by_method[endpoint.method] = endpoint
        # the most literal segments first: a literal beats a parameter where both would match
        self._templates: dict[int, list[_Template]] = {}
        for template in sorted(templates.values(), key=lambda t: -sum(x is not None for x in t.literals)):
            self._templates.setdefault(len(template.literals), []).append(template)

    def _add_hot(self, endpoint: Endpoint) -> None:
        names = endpoint.parameter_names
        if not names:
            self._hot_paths[endpoint.path] = endpoint
            return
        if len(names) == 1:  # more (the versioned V2 path) are rare: match() finds those
            prefix, _, rest = endpoint.path.partition("{")
            self._hot_templates.append((prefix, rest.partition("}")[2], names[0], endpoint))

    def hot(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """The hot endpoint of ``method path`` (an exact path, or one parameter between a prefix
        and a suffix), or None: then :meth:`match` decides."""
        endpoint = self._hot_paths.get(path)
        if endpoint is not None:
            return (endpoint, _NO_PARAMS) if endpoint.method == method else None
        for prefix, suffix, name, endpoint in self._hot_templates:
            if method == endpoint.method and path.startswith(prefix) and path.endswith(suffix):
                value = path[len(prefix) : len(path) - len(suffix)]
                if value and "/" not in value:
                    return endpoint, {name: value}
        return None

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]]:
        """The endpoint and path parameters of ``method path``; a trailing slash is ignored, and
        HEAD is answered as GET. Raises NotFound for an unknown path, MethodNotAllowed (its
        ``detail["allow"]`` the methods the path takes) for a known path and another method."""
        normal = _normal(path)
        wanted = "GET" if method == "HEAD" else method
        allowed: set[str] = set()
        static = self._static.get(normal)
        if static is not None:
            endpoint = static.get(wanted)
            if endpoint is not None:
                return endpoint, _NO_PARAMS
            allowed.update(static)
        segments = normal.strip("/").split("/")
        for template in self._templates.get(len(segments), ()):
            params = template.bind(segments)
            if params is not None:
                endpoint = template.by_method.get(wanted)
                if endpoint is not None:
                    return endpoint, params
                allowed.update(template.by_method)
        if allowed:
            allow = _allow_header(allowed)
            raise MethodNotAllowed(
                f"method {method} is not allowed on {path}; use {allow}", detail={"allow": allow}
            )
        raise NotFound(f"no endpoint {method} {path}", hint=self._suggest(segments))

    def _suggest(self, segments: list[str]) -> str:
        """The endpoints that share the longest start with the path asked for, to say what exists."""
        best, shared = 0, []
        for endpoint in self.endpoints:
            common = 0
            for have, want in zip(endpoint.segments, segments, strict=False):
                if have != want and not (have.startswith("{") and endpoint.allows(have[1:-1], want)):
                    break
                common += 1
            if common > best:
                best, shared = common, [endpoint]
            elif common == best and common:
                shared.append(endpoint)
        listed = ", ".join(e.shown() for e in shared[:_MAX_SUGGESTED])
        more = ", ..." if len(shared) > _MAX_SUGGESTED else ""
        return f"endpoints here: {listed}{more}; see GET /openapi.json" if shared else "see GET /openapi.json"


def _normal(path: str) -> str:
    return path.rstrip("/") or "/"


def _compile(endpoint: Endpoint) -> _Template:
    literals: list[str | None] = []
    names: list[str | None] = []
    allowed: list[frozenset[str] | None] = []
    for segment in endpoint.segments:
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1]
            enum = endpoint.path_parameters.get(name, {}).get("enum")
            literals.append(None)
            names.append(name)
            allowed.append(None if enum is None else frozenset(enum))
        else:
            literals.append(segment)
            names.append(None)
            allowed.append(None)
    return _Template(tuple(literals), tuple(names), tuple(allowed), {})


def _allow_header(methods: set[str]) -> str:
    """The Allow header's value: GET implies HEAD."""
    if "GET" in methods:
        methods = {*methods, "HEAD"}
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m)))
