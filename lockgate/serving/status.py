"""What the server says about itself: liveness, readiness, metadata, version, metrics, its API.

Readiness answers 503 while the models load or the server drains, so a load balancer sends no
traffic then; ``/ping`` and ``/health`` are the same check under the names SageMaker and MLflow
clients poll. A rollout store that cannot be reached does not make the server unready (serving goes
on at the current weights): the answer says the rollouts wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

import lockgate
from lockgate.errors import NotFound
from lockgate.serving.exchange import Exchange, Response
from lockgate.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

if TYPE_CHECKING:
    from lockgate.serving.app import ServingApp

__all__ = ["live", "metrics", "openapi", "ready", "server_metadata", "version"]

_LIVE = b'{"live":true}'


async def live(app: ServingApp, exchange: Exchange) -> Response:
    """Alive: the process answers."""
    return Response(200, _LIVE)


async def ready(app: ServingApp, exchange: Exchange) -> Response:
    """Ready to serve: loaded and not draining."""
    waiting = app.deployments.store_error if app.deployments is not None else None
    return app.readiness({"rollouts": f"waiting: {waiting}"} if waiting else {})


async def server_metadata(app: ServingApp, exchange: Exchange) -> Response:
    """The Open Inference Protocol's server metadata: name, version, extensions, models."""
    return Response(
        200,
        orjson.dumps(
            {
                "name": "lockgate",
                "version": lockgate.__version__,
                "extensions": ["model_repository_metadata", "binary_tensor_data"],
                "models": sorted(app.variants),
            }
        ),
    )


async def metrics(app: ServingApp, exchange: Exchange) -> Response:
    """The Prometheus text format."""
    if not app.expose_metrics:
        raise NotFound("metrics are off on this server", hint="start it without --no-metrics")
    return Response(200, app.metrics.render(), METRICS_CONTENT_TYPE.encode())


async def openapi(app: ServingApp, exchange: Exchange) -> Response:
    """The OpenAPI document, generated from the app's route table."""
    return Response(200, app.openapi_json())


async def version(app: ServingApp, exchange: Exchange) -> Response:
    """The version of lockgate serving."""
    return Response(200, orjson.dumps({"lockgate": lockgate.__version__}))
