"""One HTTP exchange: the request as the handlers see it, the answer, and what is recorded after it.

An :class:`Exchange` is made once per request (one object, slots, no per-request ``Request``
wrapper): the headers the server reads, the path parameters the route table found, and, once an
inference handler has routed it, which variant answered and with what. After the reply is sent,
:func:`record_exchange` adds it to the variant's statistics and metrics, remembers its id for
feedback, offers it to the shadow, the drift sketches and the capture sample, and writes the
access log line: none of that delays the answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockgate.serving.app import ServingApp
    from lockgate.serving.deployment import LiveDeployment
    from lockgate.serving.payload import InferenceRequest, Outputs
    from lockgate.serving.variant import Variant

__all__ = [
    "JSON",
    "Exchange",
    "Handler",
    "Message",
    "Receive",
    "Response",
    "Scope",
    "Send",
    "media_type",
    "record_exchange",
    "request_header",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
_NO_PARAMS: dict[str, str] = {}


@dataclass
class Response:
    """What a handler answers; the app adds the common headers and sends it."""

    status: int
    body: bytes
    content_type: bytes = JSON
    retry_after_s: float | None = None
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()


class Exchange:
    """One request (the headers read once, the route's path parameters, the body when the route
    takes one) and, for inference, the variant that answered: its headers and statistics need
    them whatever the outcome."""

    __slots__ = (
        "authorization",
        "body",
        "content_length",
        "content_type",
        "deployment",
        "name",
        "outputs",
        "params",
        "receive",
        "request",
        "request_id",
        "routing_key",
        "scope",
        "shadow",
        "unit",
        "variant",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        request_id: bytes,
        content_type: bytes | None,
        content_length: bytes | None,
        routing_key: bytes | None,
        authorization: bytes | None,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.request_id = request_id
        self.content_type = content_type
        self.content_length = content_length
        self.routing_key = routing_key
        self.authorization = authorization
        self.params = _NO_PARAMS
        self.body = b""
        self.variant: Variant | None = None
        self.deployment: LiveDeployment | None = None
        self.name: str | None = None  # the model or deployment name the request asked for
        self.shadow: Variant | None = None
        self.request: InferenceRequest | None = None
        self.outputs: Outputs | None = None
        self.unit: int | None = None


Handler = Callable[["ServingApp", Exchange], Awaitable[Response]]
"""An endpoint's code: the app (its variants, deployments, settings) and the exchange in, the answer out."""


def request_header(scope: Scope, name: bytes) -> bytes | None:
    """One request header, looked up only where it matters (not on every request)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def media_type(value: bytes | None) -> str:
    """The media type of a Content-Type header, lower case without parameters (JSON when absent)."""
    if not value:
        return "application/json"
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


# ------------------------------------------------------------------------ after the reply


def record_exchange(app: ServingApp, exchange: Exchange, status: int, started: float) -> None:
    """Count an answered request where it belongs (after the reply was sent)."""
    variant = exchange.variant
    if variant is not None:
        elapsed = time.perf_counter() - started
        variant.record(elapsed * 1000.0, is_error=status >= 500, unit=exchange.unit)
        if app.expose_metrics:
            app.metrics.observe_request(variant.model_name, variant.model_version, status, elapsed)
        if status == 200 and exchange.name is not None:
            _remember(app, exchange, variant)
        if exchange.shadow is not None:
            _mirror(exchange, elapsed * 1000.0)
        live = exchange.deployment
        if live is not None:
            if live.drift is not None:
                _sample(exchange, variant, status)
            if live.capture is not None and live.capture.take():
                _capture(live, exchange, variant, status, elapsed)
    if app.access_log is not None:
        _log_access(app, exchange, status, started)


def _capture(
    live: LiveDeployment, exchange: Exchange, variant: Variant, status: int, elapsed_s: float
) -> None:
    """Queue a sampled request of a deployment for the store (references, after the reply)."""
    request, name = exchange.request, live.name_of(variant)
    if live.capture is not None and request is not None and name is not None:
        live.capture.append(
            request_id=exchange.request_id,
            variant=name,
            model_name=variant.model_name,
            model_version=variant.model_version,
            status=status,
            latency_ms=elapsed_s * 1000.0,
            inputs=request.inputs,
            outputs=exchange.outputs if status == 200 else None,
        )


def _log_access(app: ServingApp, exchange: Exchange, status: int, started: float) -> None:
    access_log = app.access_log
    assert access_log is not None
    variant, live, scope = exchange.variant, exchange.deployment, exchange.scope
    client = scope.get("client")
    access_log.record(
        request_id=exchange.request_id,
        method=scope["method"],
        path=scope["path"],
        status=status,
        duration_ms=(time.perf_counter() - started) * 1000.0,
        client=client[0] if client else None,
        deployment=exchange.name if live is not None else None,
        variant=live.name_of(variant) if live is not None and variant is not None else None,
        model=variant.model_name if variant is not None else None,
        version=variant.model_version if variant is not None else None,
    )


def _remember(app: ServingApp, exchange: Exchange, variant: Variant) -> None:
    """Keep which variant answered, under the header's id and the V2 body's own id."""
    name, request_id = exchange.name, exchange.request_id
    assert name is not None
    app.feedback.remember(name, request_id, variant, exchange.unit)
    body_id = exchange.request.request_id if exchange.request is not None else None
    if body_id:
        app.feedback.remember(name, body_id.encode(), variant, exchange.unit)
    deployments = app.deployments
    if exchange.deployment is not None and deployments is not None and deployments.persist_joins:
        deployments.note_join(name, request_id, variant)
        if body_id:
            deployments.note_join(name, body_id.encode(), variant)


def _sample(exchange: Exchange, variant: Variant, status: int) -> None:
    """Offer an answered request's inputs and outputs to the drift sketches (after the reply)."""
    live, request = exchange.deployment, exchange.request
    if live is not None and live.drift is not None and request is not None and status == 200:
        name = live.name_of(variant)
        if name is not None:
            predictor = variant.predictor
            live.drift.offer(
                name,
                request.inputs,
                predictor.signature.column_names,
                exchange.outputs,
                predictor.primary_output,
            )


def _mirror(exchange: Exchange, primary_ms: float) -> None:
    """Offer an answered request's copy to the deployment's shadow (after the reply is sent)."""
    live, shadow, request, outputs = exchange.deployment, exchange.shadow, exchange.request, exchange.outputs
    if live is not None and shadow is not None and request is not None and outputs is not None:
        live.mirror.offer(shadow, request, outputs, primary_ms, exchange.unit)
