"""The two inference endpoints (the hot paths) and the choice of the variant that answers.

``POST /v2/models/{name}/infer`` (Open Inference Protocol, JSON or binary tensor data) and
``POST /invocations`` (MLflow scoring, the default model). Each checks the media type, picks the
variant (a deployment's choice by routing key, or the model of that name), and only then reads the
body: a request for a model that is not served, or one still loading, is refused unread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from lockgate.errors import ServiceUnavailable, UnsupportedMediaType
from lockgate.serving.binary_data import parse_header_length
from lockgate.serving.deployment import field_routing_key
from lockgate.serving.exchange import Exchange, Response, Scope, media_type, request_header
from lockgate.serving.invocations_codec import decode_invocations, encode_invocations
from lockgate.serving.v2_codec import decode_v2, encode_v2, encode_v2_binary

if TYPE_CHECKING:
    from lockgate.serving.app import ServingApp
    from lockgate.serving.deployment import LiveDeployment
    from lockgate.serving.payload import InferenceRequest
    from lockgate.serving.variant import Variant

__all__ = ["choose_variant", "infer", "invocations", "model_metadata", "model_ready"]

_OCTET_STREAM = b"application/octet-stream"


async def invocations(app: ServingApp, exchange: Exchange) -> Response:
    """MLflow scoring on the default model (JSON or CSV)."""
    media = media_type(exchange.content_type)
    if media not in ("application/json", "text/csv"):
        raise UnsupportedMediaType(
            f"/invocations does not read '{media}'",
            hint="send Content-Type: application/json (or text/csv)",
        )
    if app.default_model is None:
        raise ServiceUnavailable("no model is loaded yet", retry_after_s=1.0)
    variant = _route(app, exchange, app.default_model)
    body = await app.read_body(exchange.receive, exchange.content_length)
    request = exchange.request = decode_invocations(body, media, variant.predictor.signature)
    if exchange.deployment is not None and exchange.deployment.field_name is not None:
        variant = _route_by_field(exchange, request)
    outputs = exchange.outputs = await variant.infer(request)
    predictor = variant.predictor
    payload = encode_invocations(outputs, predictor.primary_output, as_records=predictor.is_table_output)
    return Response(200, payload)


async def infer(app: ServingApp, exchange: Exchange) -> Response:
    """Open Inference Protocol inference, JSON or with the binary tensor data extension."""
    name = exchange.params["name"]
    header_length = request_header(exchange.scope, b"inference-header-content-length")
    media = media_type(exchange.content_type)
    # binary tensor data: tritonclient sends no content type, others octet-stream or JSON
    if media != "application/json" and (header_length is None or media != "application/octet-stream"):
        raise UnsupportedMediaType(
            f"/v2/models/{name}/infer reads JSON, not '{media}'",
            hint="send Content-Type: application/json, or application/octet-stream with "
            "an Inference-Header-Content-Length header (binary tensor data)",
        )
    variant = _route(app, exchange, name)
    body = await app.read_body(exchange.receive, exchange.content_length)
    request: InferenceRequest = decode_v2(
        body,
        variant.predictor.signature,
        None if header_length is None else parse_header_length(header_length),
    )
    exchange.request = request
    if exchange.deployment is not None and exchange.deployment.field_name is not None:
        variant = _route_by_field(exchange, request)
    outputs = exchange.outputs = await variant.infer(request)
    answer_id = request.request_id or exchange.request_id.decode()
    binary = request.binary_outputs(request.output_names or list(outputs))
    if binary:
        payload, json_length = encode_v2_binary(
            variant.model_name, variant.model_version, answer_id, outputs, request.output_names, binary
        )
        return Response(
            200,
            payload,
            _OCTET_STREAM,
            extra_headers=((b"inference-header-content-length", b"%d" % json_length),),
        )
    payload = encode_v2(variant.model_name, variant.model_version, answer_id, outputs, request.output_names)
    return Response(200, payload)


async def model_metadata(app: ServingApp, exchange: Exchange) -> Response:
    """A model's (or a deployment's current variant's) signature and runtime."""
    variant, *_ = choose_variant(app, exchange.params["name"], exchange.scope, None)
    return Response(200, orjson.dumps(variant.metadata()))


async def model_ready(app: ServingApp, exchange: Exchange) -> Response:
    """Whether the server is ready, for a model it serves (404 for one it does not)."""
    name = exchange.params["name"]
    if name not in app.variants and app.is_loaded:
        choose_variant(app, name, exchange.scope, None)
    return app.readiness({"name": name})


def choose_variant(
    app: ServingApp, name: str, scope: Scope, routing_key: bytes | None
) -> tuple[Variant, LiveDeployment | None, Variant | None, int | None]:
    """The variant that answers a request for ``name``, the deployment that chose it (if one
    did), the shadow to copy the request to and the unit of analysis."""
    deployments = app.deployments
    if deployments is not None:
        live = deployments.live.get(name)
        if live is not None:
            variant, shadow, unit = live.choose(live.routing_key(scope["headers"], routing_key))
            return variant, live, shadow, unit
    return _serving_variant(app, name, routing_key), None, None, None


def _route(app: ServingApp, exchange: Exchange, name: str) -> Variant:
    """Choose the variant for ``name`` and note it (and its deployment) on the exchange."""
    variant, exchange.deployment, exchange.shadow, exchange.unit = choose_variant(
        app, name, exchange.scope, exchange.routing_key
    )
    exchange.variant = variant
    exchange.name = name
    return variant


def _route_by_field(exchange: Exchange, request: InferenceRequest) -> Variant:
    """Route again by the input field the deployment keys on (decoded with the first pick's
    signature: a deployment's variants take the same inputs)."""
    live = exchange.deployment
    assert live is not None and live.field_name is not None and exchange.variant is not None
    key = field_routing_key(request.inputs, exchange.variant.predictor.signature, live.field_name)
    variant, exchange.shadow, exchange.unit = live.choose(key)
    exchange.variant = variant
    return variant


def _serving_variant(app: ServingApp, name: str, routing_key: bytes | None) -> Variant:
    if not app.is_loaded and name not in app.variants:
        if app.load_error is not None:
            raise ServiceUnavailable(f"model '{name}' failed to load: {app.load_error}", retry_after_s=30.0)
        raise ServiceUnavailable(f"model '{name}' is still loading", retry_after_s=1.0)
    key = routing_key.decode("latin-1") if routing_key is not None else None
    return app.route(name, key)
