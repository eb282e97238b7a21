"""AWS Lambda entry point: lockgate's ASGI app behind Mangum, for API Gateway or a function URL.

The model is resolved, checksum-verified and loaded when Lambda imports this module (its init
phase, which is the cold start), then every invocation is one request through the same app that
`lockgate serve` runs: the V2 inference protocol, MLflow's /invocations, the health endpoints.

Package it with lockgate and Mangum (`pip install 'lockgate[serve,serverless]'`), set the handler to
`lambda_handler.handler` and the environment:

- ``LOCKGATE_MODEL_URI``: what to serve (``models:/NAME@ALIAS`` with ``MLFLOW_TRACKING_URI`` set,
  ``runs:/...`` or a folder packaged with the function, e.g. ``/var/task/model``);
- ``LOCKGATE_MODEL_SHA256`` (optional): the digest a packaged folder must have.

Rollouts need a long-lived process that ticks the controller; serve those with `lockgate serve`
(deploy/kubernetes/, deploy/compose/). A function serves one version; switch versions by alias
(Lambda's own weighted aliases split traffic between function versions).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from mangum import Mangum

from lockgate.serving import build_app, load_variant, resolve_source


def create_handler(model_uri: str, *, sha256: str | None = None) -> Mangum:
    """Load ``model_uri`` once and return the Lambda handler that serves it."""
    source = resolve_source(model_uri, expected_sha256=sha256)
    variant = load_variant(source)
    app = build_app(variants=[variant])
    # One event loop for the life of the execution environment: the app's batcher lives on it
    # between invocations, and Mangum runs each request on it (asyncio.get_event_loop()).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(app.startup())
    # the lifespan already ran above; Mangum must not start and stop the app on every request
    return Mangum(app, lifespan="off")


_handler: Mangum | None = None
if os.environ.get("LOCKGATE_MODEL_URI"):
    _handler = create_handler(
        os.environ["LOCKGATE_MODEL_URI"], sha256=os.environ.get("LOCKGATE_MODEL_SHA256") or None
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What Lambda calls for each request."""
    global _handler
    if _handler is None:
        model_uri = os.environ.get("LOCKGATE_MODEL_URI")
        if not model_uri:
            raise RuntimeError("set LOCKGATE_MODEL_URI to the model this function serves")
        _handler = create_handler(model_uri, sha256=os.environ.get("LOCKGATE_MODEL_SHA256") or None)
    result: dict[str, Any] = _handler(event, context)
    return result
