"""The ASGI app: both inference protocols, health, metadata, metrics and the OpenAPI document.

The request path is a plain ASGI callable (no middleware stack, no per-request Request object): on
two cores the server's own overhead decides how close a small model gets to a bare "hello world".
Every error raised while handling a request becomes a response in exactly one place,
:meth:`ServingApp._respond_error`: a :class:`~lockgate.errors.LockgateError` gives its status and
``{"error", "detail"}`` body; anything else is a bug, logged with its traceback, and a 500.

Routing: the app holds :class:`~lockgate.serving.variant.Variant` objects by key, and a ``route``
function picks the variant that serves a request from the requested model name and the routing
key (header ``x-routing-key``). The default serves each model by its name; a rollout swaps in its
own function with :meth:`ServingApp.set_route` (one attribute assignment, so atomic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

import lockgate
from lockgate.errors import (
    Conflict,
    Forbidden,
    LockgateError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    UserError,
)
from lockgate.monitor.dashboard import (
    DASHBOARD_HEADERS,
    DASHBOARD_PATH,
    DATA_PATH,
    SIGN_IN_HEADERS,
    RecentEvents,
    dashboard_authorization,
    dashboard_data,
    dashboard_page,
    sign_in_page,
)
from lockgate.serving.admin import check_admin_token, handle_admin
from lockgate.serving.binary_data import parse_header_length
from lockgate.serving.deployment import field_routing_key
from lockgate.serving.feedback import DEFAULT_MAX_IDS, Feedback, FeedbackJoins, parse_feedback
from lockgate.serving.logs import AccessLog
from lockgate.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from lockgate.serving.metrics import DeploymentCollector, ServingMetrics
from lockgate.serving.openapi import openapi_document
from lockgate.serving.protocol import (
    InferenceRequest,
    Outputs,
    decode_invocations,
    decode_v2,
    encode_invocations,
    encode_v2,
    encode_v2_binary,
)
from lockgate.serving.variant import Variant

if TYPE_CHECKING:
    from lockgate.serving.deployment import DeploymentManager, LiveDeployment

__all__ = ["DEFAULT_MAX_BODY_BYTES", "LOOPBACK_HOSTS", "Route", "ServingApp", "default_route"]

_log = logging.getLogger("lockgate.serving")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

Route = Callable[[str, "str | None"], Variant]
"""Picks the variant for (requested model name, routing key); raises NotFound for unknown names."""

_JSON = b"application/json"
_OCTET_STREAM = b"application/octet-stream"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
"""The Host names a loopback-bound server answers (``allowed_hosts=None`` answers any)."""
_ids = random.Random()  # noqa: S311 - request ids are unique, not secret
_MAX_REQUEST_ID = 128


def default_route(variants: MutableMapping[str, Variant]) -> Route:
    """Serve each model by its key; a name that is not served is a 404 listing what is."""

    def route(name: str, routing_key: str | None) -> Variant:
        variant = variants.get(name)
        if variant is None:
            raise NotFound(
                f"model '{name}' is not served here",
                hint=f"models served: {sorted(variants) or 'none yet'}",
            )
        return variant

    return route


class _DisconnectedError(Exception):
    """The client went away before its body arrived: nothing to answer."""


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: bytes = _JSON
    retry_after_s: float | None = None
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass
class _Served:
    """Which variant a request reached, for its headers and statistics whatever the outcome."""

    variant: Variant | None = None
    deployment: LiveDeployment | None = None
    name: str | None = None
    shadow: Variant | None = None
    request: InferenceRequest | None = None
    outputs: Outputs | None = None
    unit: int | None = None


def _header(scope: Scope, name: bytes) -> bytes | None:
    """One request header, looked up only where it matters (not on every request)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _media_type(value: bytes | None) -> str:
    if not value:
        return "application/json"
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


class ServingApp:
    """The model server as an ASGI app.

    ``variants`` are served from startup; ``loader`` (run in a thread at startup, readiness false
    meanwhile) returns more. ``default_model`` is the model ``/invocations`` serves (the first one
    when not given). ``max_body_bytes`` caps request bodies (413 beyond it). ``deployments``
    serves rollouts (a name routed between variants); ``admin_token`` turns the admin API on
    (``/admin/...``, bearer token; off when None). ``feedback_max_ids`` is how many recent request
    ids per model the feedback endpoint can join an outcome to. ``expose_metrics=False`` turns
    the Prometheus counters and ``/metrics`` off; ``access_log`` (off when None) gets a line per
    answered request.
    """

    def __init__(
        self,
        variants: Iterable[Variant] = (),
        *,
        loader: Callable[[], list[Variant]] | None = None,
        default_model: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_load_error: Callable[[BaseException], None] | None = None,
        deployments: DeploymentManager | None = None,
        admin_token: str | None = None,
        feedback_max_ids: int = DEFAULT_MAX_IDS,
        allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
        expose_metrics: bool = True,
        access_log: AccessLog | None = None,
    ) -> None:
        self.variants: dict[str, Variant] = {}
        self.expose_metrics = expose_metrics
        self.access_log = access_log
        self._access_flusher: asyncio.Task[None] | None = None
        self.allowed_hosts = (
            None if allowed_hosts is None else frozenset(h.lower().encode() for h in allowed_hosts)
        )
        self.deployments = deployments
        self.admin_token = admin_token
        self.loader = loader
        self.default_model = default_model
        self.max_body_bytes = max_body_bytes
        self.on_load_error = on_load_error
        self.metrics = ServingMetrics()
        if deployments is not None:
            self.metrics.add_collector(DeploymentCollector(deployments))
            deployments.after_tick.append(self.metrics.write_shared_gauges)
        self.feedback = FeedbackJoins(feedback_max_ids)
        self.route: Route = default_route(self.variants)
        self.is_loaded = False
        self.is_draining = False
        self.grace_s: float | None = None  # after the first signal, how long shutdown may take
        self.draining_since: float | None = None  # time.monotonic() of that signal
        self.is_abandoned = False  # model calls still running when the grace period ran out
        self.load_error: BaseException | None = None
        self._pending = list(variants)
        self._openapi: bytes | None = None
        self._started = False
        self._load_task: asyncio.Task[None] | None = None
        self._recent_events = RecentEvents()  # the dashboard's audit log, read incrementally

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_ready(self) -> bool:
        return self.is_loaded and not self.is_draining and self.load_error is None

    def set_route(self, route: Route) -> None:
        """Swap the routing function; requests already routed finish on their variant."""
        self.route = route

    def start_variant(self, variant: Variant) -> None:
        """Start a variant's batcher with its metrics (inside the running event loop)."""
        if not self.expose_metrics:
            variant.start()
            return
        variant.start(self.metrics.batch_observer(variant.model_name, variant.model_version))
        batcher = variant.batcher
        if batcher is not None:
            self.metrics.track_queue(variant.model_name, variant.model_version, lambda: batcher.queue_depth)

    def add_variant(self, variant: Variant) -> None:
        """Register and start a variant, served by its key (inside the running event loop)."""
        self.start_variant(variant)
        self.variants[variant.key] = variant
        if self.default_model is None:
            self.default_model = variant.key

    async def startup(self) -> None:
        if self._started:
            return
        self._started = True
        if self.access_log is not None:
            self._access_flusher = asyncio.get_running_loop().create_task(
                self._flush_access_log(self.access_log), name="lockgate-access-log"
            )
        for variant in self._pending:
            self.add_variant(variant)
        self._pending = []
        if self.loader is None and self.deployments is None:
            self.is_loaded = True
            return
        self._load_task = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        try:
            if self.deployments is not None:
                await self.deployments.start(self)
            loaded = await asyncio.to_thread(self.loader) if self.loader is not None else []
        # loading runs user models and files: whatever fails, the server must say so and stop
        except BaseException as exc:  # noqa: BLE001
            self.load_error = exc
            _log.error("could not load the model: %s", exc)
            if self.on_load_error is not None:
                self.on_load_error(exc)
            return
        for variant in loaded:
            self.add_variant(variant)
        if self.default_model is None and self.deployments is not None and self.deployments.live:
            self.default_model = next(iter(self.deployments.live))
        self.is_loaded = True
        _log.info("serving %s", ", ".join(f"{v.key} v{v.model_version}" for v in loaded) or "deployments")

    async def shutdown(self) -> None:
        """Stop being ready, answer what is queued, stop the workers: within ``grace_s`` of the
        first signal when set. A model call still running then (a model stuck in its own code) is
        abandoned, so a stuck model cannot keep the process from exiting."""
        self.is_draining = True
        now = time.monotonic()
        since = self.draining_since or now
        timeout = None if self.grace_s is None else max(0.5, since + self.grace_s - now)

        async def stop_all() -> None:
            if self.deployments is not None:
                await self.deployments.stop()
            await asyncio.gather(*(variant.stop() for variant in self.variants.values()))

        try:
            await asyncio.wait_for(stop_all(), timeout)
        except TimeoutError:
            self.is_abandoned = True
            _log.warning("model calls were still running when the grace period ran out; exiting without them")
            if self.deployments is not None:  # the counters still reach the store
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.deployments.flush(), 10.0)
        if self._access_flusher is not None:
            self._access_flusher.cancel()
            self._access_flusher = None
        if self.access_log is not None:
            self.access_log.flush()

    @staticmethod
    async def _flush_access_log(access_log: AccessLog) -> None:
        """Write the buffered access lines a few times a second, so a quiet server logs too."""
        while True:
            await asyncio.sleep(0.2)
            access_log.flush()

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = None
        content_type = None
        content_length = None
        routing_key = None
        authorization = None
        host = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"x-routing-key":
                routing_key = value
            elif name == b"authorization":
                authorization = value
            elif name == b"host":
                host = value
        if (
            request_id is None
            or len(request_id) > _MAX_REQUEST_ID
            or not request_id.isascii()
            or not request_id.replace(b"-", b"").replace(b"_", b"").replace(b".", b"").isalnum()
        ):
            # not os.urandom: a system call per request is measurable here; ids must be unique,
            # not secret (the generator is seeded from the OS at import)
            request_id = b"%032x" % _ids.getrandbits(128)
        served = _Served()
        try:
            if self.allowed_hosts is not None:
                self._check_host(host)
            if scope["path"].startswith("/admin/"):
                response = await self._admin(scope, receive, content_type, content_length, authorization)
            elif scope["path"].startswith(DASHBOARD_PATH):
                response = await self._dashboard(scope, authorization)
            else:
                response = await self._dispatch(
                    scope, receive, content_type, content_length, routing_key, request_id, served
                )
        except _DisconnectedError:
            return
        except LockgateError as exc:
            response = self._respond_error(exc, request_id)
        # the one place a bug becomes a response: logged with its traceback, answered 500
        except Exception as exc:  # noqa: BLE001
            response = self._respond_error(exc, request_id)
        headers = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
            (b"x-request-id", request_id),
        ]
        variant = served.variant
        if variant is not None:
            headers.append((b"x-model-name", variant.model_name.encode()))
            headers.append((b"x-model-version", variant.model_version.encode()))
            live = served.deployment
            if live is not None:
                # the model's name is the registered model's for every variant: this says which
                variant_name = live.name_of(variant)
                if variant_name is not None:
                    headers.append((b"x-lockgate-variant", variant_name.encode()))
        if response.retry_after_s is not None:
            headers.append((b"retry-after", str(max(1, round(response.retry_after_s))).encode()))
        if response.extra_headers:
            headers.extend(response.extra_headers)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        if variant is not None:
            elapsed = time.perf_counter() - started
            variant.record(elapsed * 1000.0, is_error=response.status >= 500, unit=served.unit)
            if self.expose_metrics:
                self.metrics.observe_request(
                    variant.model_name, variant.model_version, response.status, elapsed
                )
            if response.status == 200 and served.name is not None:
                self._remember(served, request_id, variant)
            if served.shadow is not None:
                self._mirror(served, elapsed * 1000.0)
            live = served.deployment
            if live is not None:
                if live.drift is not None:
                    self._sample(served, variant, response.status)
                if live.capture is not None and live.capture.take():
                    self._capture(live, served, variant, response.status, elapsed, request_id)
        if self.access_log is not None:
            self._log_access(self.access_log, scope, request_id, response.status, started, served)

    def _capture(
        self,
        live: LiveDeployment,
        served: _Served,
        variant: Variant,
        status: int,
        elapsed_s: float,
        request_id: bytes,
    ) -> None:
        """Queue a sampled request of a deployment for the store (references, after the reply)."""
        request, name = served.request, live.name_of(variant)
        if live.capture is not None and request is not None and name is not None:
            live.capture.append(
                request_id=request_id,
                variant=name,
                model_name=variant.model_name,
                model_version=variant.model_version,
                status=status,
                latency_ms=elapsed_s * 1000.0,
                inputs=request.inputs,
                outputs=served.outputs if status == 200 else None,
            )

    @staticmethod
    def _log_access(
        access_log: AccessLog, scope: Scope, request_id: bytes, status: int, started: float, served: _Served
    ) -> None:
        variant, live = served.variant, served.deployment
        client = scope.get("client")
        access_log.record(
            request_id=request_id,
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            client=client[0] if client else None,
            deployment=served.name if live is not None else None,
            variant=live.name_of(variant) if live is not None and variant is not None else None,
            model=variant.model_name if variant is not None else None,
            version=variant.model_version if variant is not None else None,
        )

    def _remember(self, served: _Served, request_id: bytes, variant: Variant) -> None:
        """Keep which variant answered, under the header's id and the V2 body's own id."""
        name = served.name
        assert name is not None
        self.feedback.remember(name, request_id, variant, served.unit)
        body_id = served.request.request_id if served.request is not None else None
        if body_id:
            self.feedback.remember(name, body_id.encode(), variant, served.unit)
        if served.deployment is not None and self.deployments is not None and self.deployments.persist_joins:
            self.deployments.note_join(name, request_id, variant)
            if body_id:
                self.deployments.note_join(name, body_id.encode(), variant)

    def _sample(self, served: _Served, variant: Variant, status: int) -> None:
        """Offer an answered request's inputs and outputs to the drift sketches (after the reply)."""
        live, request = served.deployment, served.request
        if live is not None and live.drift is not None and request is not None and status == 200:
            name = live.name_of(variant)
            if name is not None:
                predictor = variant.predictor
                live.drift.offer(
                    name,
                    request.inputs,
                    predictor.signature.column_names,
                    served.outputs,
                    predictor.primary_output,
                )

    def _mirror(self, served: _Served, primary_ms: float) -> None:
        """Offer an answered request's copy to the deployment's shadow (after the reply is sent)."""
        live, shadow, request, outputs = served.deployment, served.shadow, served.request, served.outputs
        if live is not None and shadow is not None and request is not None and outputs is not None:
            live.mirror.offer(shadow, request, outputs, primary_ms, served.unit)

    async def _admin(
        self,
        scope: Scope,
        receive: Receive,
        content_type: bytes | None,
        content_length: bytes | None,
        authorization: bytes | None,
    ) -> _Response:
        check_admin_token(self.admin_token, authorization)
        if self.deployments is None:
            raise NotFound(
                "this server runs no deployments",
                hint="start it with `lockgate serve --store URL` or `lockgate serve --deployment SPEC`",
            )
        method: str = scope["method"]
        body = b""
        if method in ("POST", "PUT"):
            if _media_type(content_type) != "application/json":
                raise UnsupportedMediaType(
                    f"the admin API reads JSON, not '{_media_type(content_type)}'",
                    hint="send Content-Type: application/json",
                )
            body = await self._read_body(receive, content_length)
        status, payload = await handle_admin(
            self.deployments, method, scope["path"], scope.get("query_string", b""), body
        )
        return _Response(status, payload)

    async def _dashboard(self, scope: Scope, authorization: bytes | None) -> _Response:
        """The read-only dashboard page and the JSON it polls, behind the admin token."""
        path: str = scope["path"].rstrip("/")
        if path not in (DASHBOARD_PATH, DATA_PATH):
            raise NotFound(f"no endpoint {path}", hint=f"the dashboard is GET {DASHBOARD_PATH}")
        token = dashboard_authorization(authorization, scope.get("query_string", b""), self.admin_token)
        try:
            check_admin_token(self.admin_token, token)
        except (Unauthorized, Forbidden) as exc:
            if path != DASHBOARD_PATH:
                raise
            # a person in a browser: a page that asks for the token, not JSON
            page = sign_in_page(exc.message)
            return _Response(exc.http_status, page, b"text/html; charset=utf-8", None, SIGN_IN_HEADERS)
        self._require(scope["method"], "GET")
        if path == DASHBOARD_PATH:
            return _Response(200, dashboard_page(), b"text/html; charset=utf-8", None, DASHBOARD_HEADERS)
        data = await dashboard_data(self.deployments, now=time.time(), recent=self._recent_events)
        return _Response(200, orjson.dumps(data), _JSON, None, ((b"cache-control", b"no-store"),))

    def _check_host(self, host: bytes | None) -> None:
        """A server bound to loopback answers only requests addressed to loopback: a page on
        another site that re-points its own name at 127.0.0.1 (DNS rebinding) is refused."""
        allowed = self.allowed_hosts or frozenset()
        name = (host or b"").lower()
        name = name[: name.find(b"]") + 1] if name.startswith(b"[") else name.split(b":", 1)[0]
        if name not in allowed:
            raise UserError(
                f"the Host header '{(host or b'').decode('latin-1')[:100]}' is not served here",
                hint="this server listens on loopback and answers 127.0.0.1, localhost and [::1] only "
                "(a guard against DNS rebinding); start it with --host to serve other names",
            )

    def _respond_error(self, exc: Exception, request_id: bytes) -> _Response:
        if isinstance(exc, LockgateError):
            error = exc
        else:
            _log.exception(
                "internal error while serving a request", extra={"request_id": request_id.decode("latin-1")}
            )
            error = LockgateError(
                f"internal error: {type(exc).__name__}",
                hint="this is a bug in lockgate or in the model; the server log has the traceback",
            )
        retry = error.retry_after_s if isinstance(error, ServiceUnavailable) else None
        return _Response(error.http_status, orjson.dumps(error.to_dict()), _JSON, retry)

    async def _read_body(self, receive: Receive, content_length: bytes | None) -> bytes:
        limit = self.max_body_bytes
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                raise UserError("the Content-Length header is not a number") from None
            if declared > limit:
                raise PayloadTooLarge(
                    f"the body is {declared} bytes; the limit is {limit}",
                    hint="send fewer rows per request, or raise --max-body-bytes",
                )
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False) and len(body) <= limit:
            return body
        chunks = [body]
        total = len(body)
        while message.get("more_body", False):
            if total > limit:
                break
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _DisconnectedError
            chunk = message.get("body", b"")
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(
                f"the body is over the limit of {limit} bytes",
                hint="send fewer rows per request, or raise --max-body-bytes",
            )
        return b"".join(chunks)

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        content_type: bytes | None,
        content_length: bytes | None,
        routing_key: bytes | None,
        request_id: bytes,
        served: _Served,
    ) -> _Response:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/invocations":
            self._require(method, "POST")
            return await self._invocations(scope, receive, content_type, content_length, routing_key, served)
        if path.startswith("/v2/models/"):
            return await self._v2_model(
                scope, receive, content_type, content_length, routing_key, request_id, served
            )
        if method not in ("GET", "HEAD"):
            if path in _GET_PATHS:
                self._require(method, "GET")
            raise NotFound(f"no endpoint {method} {path}", hint="see GET /openapi.json")
        if path == "/v2/health/live":
            return _Response(200, b'{"live":true}')
        if path in ("/v2/health/ready", "/ping", "/health"):
            waiting = self.deployments.store_error if self.deployments is not None else None
            # still ready (serving goes on at the current weights); the rollouts wait for the store
            return self._readiness({"rollouts": f"waiting: {waiting}"} if waiting else {})
        if path == "/v2":
            return _Response(200, self._server_metadata())
        if path == "/metrics":
            if not self.expose_metrics:
                raise NotFound("metrics are off on this server", hint="start it without --no-metrics")
            return _Response(200, self.metrics.render(), METRICS_CONTENT_TYPE.encode())
        if path == "/openapi.json":
            if self._openapi is None:
                self._openapi = orjson.dumps(openapi_document())
            return _Response(200, self._openapi)
        if path == "/version":
            return _Response(200, orjson.dumps({"lockgate": lockgate.__version__}))
        raise NotFound(f"no endpoint {method} {path}", hint="see GET /openapi.json")

    def _require(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise MethodNotAllowed(
                f"method {method} is not allowed here; use {allowed}", detail={"allow": allowed}
            )

    def _readiness(self, extra: dict[str, Any]) -> _Response:
        ready = self.is_ready
        return _Response(200 if ready else 503, orjson.dumps({**extra, "ready": ready}))

    def _server_metadata(self) -> bytes:
        return orjson.dumps(
            {
                "name": "lockgate",
                "version": lockgate.__version__,
                "extensions": ["model_repository_metadata", "binary_tensor_data"],
                "models": sorted(self.variants),
            }
        )

    def _route(self, name: str, scope: Scope, routing_key: bytes | None, served: _Served) -> Variant:
        """The variant that answers: a deployment's choice by routing key, or a model by name."""
        if self.deployments is not None:
            live = self.deployments.live.get(name)
            if live is not None:
                variant, served.shadow, served.unit = live.choose(
                    live.routing_key(scope["headers"], routing_key)
                )
                served.deployment = live
                served.variant = variant
                served.name = name
                return variant
        served.variant = self._serving_variant(name, routing_key)
        served.name = name
        return served.variant

    def _route_by_field(self, served: _Served, request: InferenceRequest) -> Variant:
        """Route again by the input field the deployment keys on (decoded with the first pick's
        signature: a deployment's variants take the same inputs)."""
        live = served.deployment
        assert live is not None and live.field_name is not None and served.variant is not None
        key = field_routing_key(request.inputs, served.variant.predictor.signature, live.field_name)
        variant, served.shadow, served.unit = live.choose(key)
        served.variant = variant
        return variant

    def _serving_variant(self, name: str, routing_key: bytes | None) -> Variant:
        if not self.is_loaded and name not in self.variants:
            if self.load_error is not None:
                raise ServiceUnavailable(
                    f"model '{name}' failed to load: {self.load_error}", retry_after_s=30.0
                )
            raise ServiceUnavailable(f"model '{name}' is still loading", retry_after_s=1.0)
        key = routing_key.decode("latin-1") if routing_key is not None else None
        return self.route(name, key)

    async def _invocations(
        self,
        scope: Scope,
        receive: Receive,
        content_type: bytes | None,
        content_length: bytes | None,
        routing_key: bytes | None,
        served: _Served,
    ) -> _Response:
        media_type = _media_type(content_type)
        if media_type not in ("application/json", "text/csv"):
            raise UnsupportedMediaType(
                f"/invocations does not read '{media_type}'",
                hint="send Content-Type: application/json (or text/csv)",
            )
        if self.default_model is None:
            raise ServiceUnavailable("no model is loaded yet", retry_after_s=1.0)
        variant = self._route(self.default_model, scope, routing_key, served)
        body = await self._read_body(receive, content_length)
        request = served.request = decode_invocations(body, media_type, variant.predictor.signature)
        if served.deployment is not None and served.deployment.field_name is not None:
            variant = self._route_by_field(served, request)
        outputs = served.outputs = await variant.infer(request)
        predictor = variant.predictor
        payload = encode_invocations(outputs, predictor.primary_output, as_records=predictor.is_table_output)
        return _Response(200, payload)

    async def _v2_model(
        self,
        scope: Scope,
        receive: Receive,
        content_type: bytes | None,
        content_length: bytes | None,
        routing_key: bytes | None,
        request_id: bytes,
        served: _Served,
    ) -> _Response:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path[len("/v2/models/") :].split("/")
        name = parts[0]
        rest = parts[1:]
        if len(rest) >= 2 and rest[0] == "versions":
            rest = rest[2:]  # /v2/models/{name}/versions/{version}/... : the version is informative
        if rest == ["infer"]:
            self._require(method, "POST")
            header_length = _header(scope, b"inference-header-content-length")
            media_type = _media_type(content_type)
            # binary tensor data: tritonclient sends no content type, others octet-stream or JSON
            if media_type != "application/json" and (
                header_length is None or media_type != "application/octet-stream"
            ):
                raise UnsupportedMediaType(
                    f"/v2/models/{name}/infer reads JSON, not '{media_type}'",
                    hint="send Content-Type: application/json, or application/octet-stream with "
                    "an Inference-Header-Content-Length header (binary tensor data)",
                )
            variant = self._route(name, scope, routing_key, served)
            body = await self._read_body(receive, content_length)
            request: InferenceRequest = decode_v2(
                body,
                variant.predictor.signature,
                None if header_length is None else parse_header_length(header_length),
            )
            served.request = request
            if served.deployment is not None and served.deployment.field_name is not None:
                variant = self._route_by_field(served, request)
            outputs = served.outputs = await variant.infer(request)
            answer_id = request.request_id or request_id.decode()
            binary = request.binary_outputs(request.output_names or list(outputs))
            if binary:
                payload, json_length = encode_v2_binary(
                    variant.model_name,
                    variant.model_version,
                    answer_id,
                    outputs,
                    request.output_names,
                    binary,
                )
                return _Response(
                    200,
                    payload,
                    _OCTET_STREAM,
                    extra_headers=((b"inference-header-content-length", b"%d" % json_length),),
                )
            payload = encode_v2(
                variant.model_name, variant.model_version, answer_id, outputs, request.output_names
            )
            return _Response(200, payload)
        if rest == ["feedback"]:
            self._require(method, "POST")
            if _media_type(content_type) != "application/json":
                raise UnsupportedMediaType(
                    f"/v2/models/{name}/feedback reads JSON, not '{_media_type(content_type)}'",
                    hint="send Content-Type: application/json",
                )
            return await self._feedback(name, await self._read_body(receive, content_length))
        if method not in ("GET", "HEAD"):
            self._require(method, "GET")
        if rest == [] or rest == [""]:
            return _Response(200, orjson.dumps(self._route(name, scope, None, _Served()).metadata()))
        if rest == ["ready"]:
            if name not in self.variants and self.is_loaded:
                self._route(name, scope, None, _Served())
            return self._readiness({"name": name})
        raise NotFound(f"no endpoint {method} {path}", hint="see GET /openapi.json")

    async def _feedback(self, name: str, body: bytes) -> _Response:
        """Join an outcome to the variant that answered its request, and count it once."""
        feedback = parse_feedback(body)
        if name not in self.variants and (self.deployments is None or name not in self.deployments.live):
            served = sorted({*self.variants, *(self.deployments.live if self.deployments else ())})
            raise NotFound(
                f"model '{name}' is not served here", hint=f"models served: {served or 'none yet'}"
            )
        if self.deployments is not None and self.deployments.persist_joins and name in self.deployments.live:
            variant, is_counted = await self._claim(name, feedback)
        else:
            variant = self.feedback.variant_of(name, feedback.request_id)
            _, is_counted = self.feedback.record(name, feedback)
        served_as = self._served_as(name, variant)
        return _Response(
            200,
            orjson.dumps(
                {
                    "model": name,
                    "request_id": feedback.request_id,
                    "variant": served_as,
                    "model_version": variant.model_version,
                    "outcome": feedback.to_dict(),
                    "counted": is_counted,
                    "duplicate": not is_counted,
                }
            ),
        )

    async def _claim(self, name: str, feedback: Feedback) -> tuple[Variant, bool]:
        """The store decides, so an outcome counts once whichever gateway it reaches and however
        long after its request (joins are flushed to the store a few times a second)."""
        assert self.deployments is not None
        unit: int | None = None
        try:
            known: Variant | None = self.feedback.variant_of(name, feedback.request_id)
            unit = self.feedback.unit_of(name, feedback.request_id)
        except NotFound:
            known = None
        outcome = feedback.to_dict()
        variant, previous = await self.deployments.claim_outcome(name, feedback.request_id, known, outcome)
        if variant is None:
            raise NotFound(
                f"no request '{feedback.request_id}' of '{name}' is known",
                hint="send the x-request-id of a 200 answer of this deployment (from any gateway "
                "on this store); a redeployed variant's requests no longer count",
                detail={"field": "request_id"},
            )
        if previous is not None:
            if previous != outcome:
                raise Conflict(
                    f"request '{feedback.request_id}' already has the outcome {previous}; "
                    f"{outcome} was not counted",
                    hint="each request counts once; send feedback for another request id",
                    detail={"field": "request_id", "recorded": previous},
                )
            return variant, False
        # a request answered on another gateway has no unit known here: the next unit in turn
        variant.record_outcome(value=feedback.value, label=feedback.label, unit=unit)
        return variant, True

    def _served_as(self, name: str, variant: Variant) -> str:
        """The name ``variant`` has under ``name`` now; NotFound once it is no longer served."""
        live = self.deployments.live.get(name) if self.deployments is not None else None
        if live is not None:
            served_as = live.name_of(variant)
            if served_as is not None:
                return served_as
        elif any(served is variant for served in self.variants.values()):
            return variant.key
        raise NotFound(
            f"the variant that answered this request of '{name}' is no longer served",
            hint="feedback counts for the variants a deployment serves now; it was redeployed since",
        )


_GET_PATHS = frozenset(
    ["/v2", "/v2/health/live", "/v2/health/ready", "/metrics", "/openapi.json", "/ping", "/health"]
)
