"""The ASGI app: one request in, its endpoint found in the route table, one answer out.

The request path is a plain ASGI callable (no middleware stack, no per-request Request object): on
two cores the server's own overhead decides how close a small model gets to a bare "hello world".
The headers are read once into an :class:`~lockgate.serving.exchange.Exchange`; the two inference
paths are found with one lookup (:meth:`RouteTable.hot`), every other path through the route table
(:mod:`lockgate.serving.routes`), which also answers 404 and 405 and generates ``/openapi.json``.
The handlers live with their idea: :mod:`~lockgate.serving.inference`,
:mod:`~lockgate.serving.status`, :mod:`~lockgate.serving.feedback`, :mod:`~lockgate.serving.admin`.

Every error raised while handling a request becomes a response in exactly one place,
:meth:`ServingApp._respond_error`: a :class:`~lockgate.errors.LockgateError` gives its status and
``{"error", "detail"}`` body; anything else is a bug, logged with its traceback, and a 500.

Routing between models: the app holds :class:`~lockgate.serving.variant.Variant` objects by key,
and a ``route`` function picks the variant that serves a request from the requested model name and
the routing key (header ``x-routing-key``). The default serves each model by its name; a rollout
swaps in its own function with :meth:`ServingApp.set_route` (one attribute assignment, so atomic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from lockgate.errors import (
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
from lockgate.monitor.dashboard import RecentEvents
from lockgate.serving.admin import authorize
from lockgate.serving.dispatch import Auth, Endpoint, RouteTable
from lockgate.serving.exchange import (
    JSON,
    Exchange,
    Receive,
    Response,
    Scope,
    Send,
    media_type,
    record_exchange,
)
from lockgate.serving.feedback import DEFAULT_MAX_IDS, FeedbackJoins
from lockgate.serving.generation import GenerationCollector
from lockgate.serving.logs import AccessLog
from lockgate.serving.metrics import DeploymentCollector, ServingMetrics
from lockgate.serving.openapi import openapi_document
from lockgate.serving.routes import ROUTES
from lockgate.serving.variant import Variant

if TYPE_CHECKING:
    from lockgate.llm.traces import TraceSampler
    from lockgate.serving.deployment import DeploymentManager

__all__ = ["DEFAULT_MAX_BODY_BYTES", "LOOPBACK_HOSTS", "Route", "ServingApp", "default_route"]

_log = logging.getLogger("lockgate.serving")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024

Route = Callable[[str, "str | None"], Variant]
"""Picks the variant for (requested model name, routing key); raises NotFound for unknown names."""

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


class ServingApp:
    """The model server as an ASGI app.

    ``variants`` are served from startup; ``loader`` (run in a thread at startup, readiness false
    meanwhile) returns more. ``default_model`` is the model ``/invocations`` serves (the first one
    when not given). ``max_body_bytes`` caps request bodies (413 beyond it). ``deployments``
    serves rollouts (a name routed between variants); ``admin_token`` turns the admin API on
    (``/admin/...``, bearer token; off when None). ``feedback_max_ids`` is how many recent request
    ids per model the feedback endpoint can join an outcome to. ``expose_metrics=False`` turns
    the Prometheus counters and ``/metrics`` off; ``access_log`` (off when None) gets a line per
    answered request. ``routes`` is the route table (the server's own by default). ``traces``
    records a sample of generations as MLflow traces (off when None).
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
        routes: Sequence[Endpoint] = ROUTES,
        traces: TraceSampler | None = None,
    ) -> None:
        self.variants: dict[str, Variant] = {}
        self.traces = traces
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
        self.metrics.add_collector(GenerationCollector(self, histograms=not self.metrics.is_multiprocess))
        if deployments is not None:
            self.metrics.add_collector(DeploymentCollector(deployments))
            for collector in deployments.collectors():
                self.metrics.add_collector(collector)
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
        self.routes = RouteTable(routes)
        self._openapi: bytes | None = None
        self._started = False
        self._load_task: asyncio.Task[None] | None = None
        # True: lifespan startup waits for the models, so the server listens only once it can
        # answer (a worker joining a shared port must not take connections it would refuse)
        self.load_before_serving = False
        self.recent_events = RecentEvents()  # the dashboard's audit log, read incrementally

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
        if self.load_before_serving:
            await self._load()
            return
        self._load_task = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        try:
            if self.deployments is not None:
                await self.deployments.start(self)
            loaded = await asyncio.to_thread(self.loader) if self.loader is not None else []
        except asyncio.CancelledError:
            if self.is_draining:  # stopped while loading: a clean stop, not a failed load
                return
            raise
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
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()  # a stop while loading: nothing to drain, and not a failure
            with contextlib.suppress(asyncio.CancelledError):
                await self._load_task
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
        if self.traces is not None:
            await asyncio.to_thread(self.traces.close)  # what is queued reaches MLflow

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
        exchange = Exchange(
            scope, receive, request_id, content_type, content_length, routing_key, authorization
        )
        try:
            if self.allowed_hosts is not None:
                self._check_host(host)
            hot = self.routes.hot(scope["method"], scope["path"])
            if hot is not None:
                endpoint, exchange.params = hot
                response = await endpoint.handler(self, exchange)
            else:
                response = await self._dispatch(exchange)
        except _DisconnectedError:
            return
        except LockgateError as exc:
            response = self._respond_error(exc, request_id, scope["path"])
        # the one place a bug becomes a response: logged with its traceback, answered 500
        except Exception as exc:  # noqa: BLE001
            response = self._respond_error(exc, request_id, scope["path"])
        headers = [(b"content-type", response.content_type), (b"x-request-id", request_id)]
        if response.stream is None:  # a stream's length is not known: chunked
            headers.insert(1, (b"content-length", str(len(response.body)).encode()))
        variant = exchange.variant
        if variant is not None:
            headers.append((b"x-model-name", variant.model_name.encode()))
            headers.append((b"x-model-version", variant.model_version.encode()))
            live = exchange.deployment
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
        status = response.status
        if response.stream is None:
            await send({"type": "http.response.body", "body": response.body})
        else:
            # a stream that failed after it began counts with its error's status
            status = await self._send_stream(response.stream, exchange, send) or status
        if variant is not None or self.access_log is not None:
            record_exchange(self, exchange, status, started)

    async def _dispatch(self, exchange: Exchange) -> Response:
        """Any path but the hot ones: find its endpoint (404, 405), check the token the endpoint
        needs, read the body it takes (415 for a media type it does not read), run its handler."""
        scope = exchange.scope
        endpoint, exchange.params = self.routes.match(scope["method"], scope["path"])
        if endpoint.auth is not Auth.PUBLIC:
            try:
                authorize(endpoint.auth, self.admin_token, exchange)
            except (Unauthorized, Forbidden) as exc:
                if endpoint.on_denied is None:
                    raise
                return endpoint.on_denied(exc)
        if endpoint.request is not None and not endpoint.is_hot:
            media = media_type(exchange.content_type)
            if media not in endpoint.request:
                accepted = " or ".join(endpoint.request)
                raise UnsupportedMediaType(
                    f"{scope['path']} reads {accepted}, not '{media}'", hint=f"send Content-Type: {accepted}"
                )
            exchange.body = await self.read_body(exchange.receive, exchange.content_length)
        return await endpoint.handler(self, exchange)

    def readiness(self, extra: dict[str, Any]) -> Response:
        """200 when ready, 503 while loading or draining; ``extra`` joins the JSON body."""
        ready = self.is_ready
        return Response(200 if ready else 503, orjson.dumps({**extra, "ready": ready}))

    def openapi_json(self) -> bytes:
        """The OpenAPI document of this app's route table, as JSON (made once)."""
        if self._openapi is None:
            self._openapi = orjson.dumps(openapi_document(self.routes.endpoints))
        return self._openapi

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

    async def _send_stream(self, stream: AsyncIterator[bytes], exchange: Exchange, send: Send) -> int | None:
        """Send a streamed body as it comes, and stop it (closing the iterator: a generation
        frees its slot, an upstream's response is closed) once the client has gone. An error after
        the status was sent becomes a last server-sent event with the error's body (the status
        cannot change any more); its status is returned, for the counters."""
        gone = asyncio.ensure_future(exchange.receive())  # http.disconnect, at the end
        failed = None
        try:
            async for part in stream:
                if gone.done():
                    return None
                await send({"type": "http.response.body", "body": part, "more_body": True})
        # the same one place: an error of a stream already started is answered as an event
        except Exception as exc:  # noqa: BLE001
            error = self._respond_error(exc, exchange.request_id, exchange.scope["path"])
            failed = error.status
            event = b"data: " + error.body + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        finally:
            gone.cancel()
            await stream.aclose()  # type: ignore[attr-defined]
        await send({"type": "http.response.body", "body": b""})
        return failed

    def _respond_error(self, exc: Exception, request_id: bytes, path: str = "") -> Response:
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
        allow = (
            error.detail.get("allow")
            if isinstance(error, MethodNotAllowed) and isinstance(error.detail, dict)
            else None
        )
        headers = ((b"allow", allow.encode()),) if allow else ()
        body = error.to_openai_dict() if path.startswith("/v1/") else error.to_dict()
        return Response(error.http_status, orjson.dumps(body), JSON, retry, headers)

    async def read_body(self, receive: Receive, content_length: bytes | None) -> bytes:
        """The request body, up to ``max_body_bytes`` (413 beyond it, before reading it all)."""
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
