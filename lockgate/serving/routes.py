"""The route table: every endpoint the model server answers, in one place.

Each entry says the method, the path template, the handler, who may call it, the request and
response schemas and a summary (:class:`~lockgate.serving.dispatch.Endpoint`). The app dispatches
by it (404 for a path not here, 405 with ``Allow`` for a method not here) and ``GET /openapi.json``
is generated from it, so an endpoint that is served is documented and the other way round. The
two inference paths are marked ``is_hot``: they are found first, with one lookup, and stay plain
ASGI code. Adding an endpoint is one entry here and its handler.
"""

from __future__ import annotations

import dataclasses

from lockgate.rollout.runner import COMMANDS
from lockgate.serving import admin, inference, status
from lockgate.serving.dispatch import Auth, Endpoint
from lockgate.serving.feedback import feedback
from lockgate.serving.schemas import (
    ADMIN_BODY_ERRORS,
    ADMIN_ERRORS,
    BINARY_BODY,
    ERRORS,
    HEADER_LENGTH,
    MODEL_HEADERS,
    ROUTING_KEY,
    error,
    json_content,
    ok,
)

__all__ = ["ROUTES"]

_READINESS = {"200": ok("Ready.", "Readiness"), "503": ok("Not ready: loading or draining.", "Readiness")}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_ANY_JSON = {"application/json": {"schema": {"type": "object"}}}
_DEPLOYED = {
    "200": ok("Updated.", "DeploymentStatus"),
    "201": ok("Created.", "DeploymentStatus"),
    "409": error("Its rollout is still live: promote or roll it back first."),
    "422": error("A key of the spec is wrong, or a model failed to load; the detail says."),
    **ADMIN_BODY_ERRORS,
    **ADMIN_ERRORS,
}
_STATUS = {"200": ok("The deployment's status.", "DeploymentStatus"), **ADMIN_ERRORS}
_DASHBOARD_ERRORS = {**ADMIN_ERRORS, "404": error("The dashboard is off (no LOCKGATE_ADMIN_TOKEN).")}
_TOKEN_QUERY = {
    "name": "token",
    "in": "query",
    "required": False,
    "description": "The admin token, for a browser that cannot send the header.",
    "schema": {"type": "string"},
}


def _model(*endpoints: Endpoint) -> list[Endpoint]:
    """The endpoints under ``/v2/models/{name}/``, and the same under ``.../versions/{version}/``
    (the protocol's versioned form: the version is informative, the served one answers)."""
    versioned = [
        dataclasses.replace(
            endpoint,
            path=endpoint.path.replace("/v2/models/{name}", "/v2/models/{name}/versions/{version}"),
            operation_id=f"{endpoint.operation_id}Version",
            summary=f"{endpoint.summary}, a version named",
        )
        for endpoint in endpoints
    ]
    return [*endpoints, *versioned]


_INFER = Endpoint(
    "POST",
    "/v2/models/{name}/infer",
    inference.infer,
    summary="Inference (Open Inference Protocol)",
    operation_id="infer",
    description=(
        "Takes JSON, or the binary tensor data extension: a JSON header of "
        "Inference-Header-Content-Length bytes, then the inputs' bytes "
        "(little-endian, row-major; BYTES elements each a 4-byte length and the "
        "bytes). A body whose sizes do not add up is a 400."
    ),
    parameters=(
        ROUTING_KEY,
        {"name": "Inference-Header-Content-Length", "in": "header", "required": False, **HEADER_LENGTH},
    ),
    request={**json_content("InferenceRequest"), **BINARY_BODY},
    responses={
        "200": {
            "description": (
                "Model outputs: JSON, or with binary outputs asked for, a JSON header of "
                "Inference-Header-Content-Length bytes followed by the outputs' binary data."
            ),
            "content": {**json_content("InferenceResponse"), **BINARY_BODY},
            "headers": {**MODEL_HEADERS, "Inference-Header-Content-Length": HEADER_LENGTH},
        },
        **ERRORS,
    },
    is_hot=True,
)

_MODEL_METADATA = Endpoint(
    "GET",
    "/v2/models/{name}",
    inference.model_metadata,
    summary="Model metadata (signature, runtime)",
    operation_id="modelMetadata",
    responses={"200": ok("Model metadata.", "ModelMetadata"), "404": ERRORS["404"], "503": ERRORS["503"]},
)

_MODEL_READY = Endpoint(
    "GET",
    "/v2/models/{name}/ready",
    inference.model_ready,
    summary="Model readiness",
    operation_id="modelReady",
    responses={**_READINESS, "404": ERRORS["404"]},
)

_FEEDBACK = Endpoint(
    "POST",
    "/v2/models/{name}/feedback",
    feedback,
    summary="The outcome of an answered request, joined to the variant that answered it",
    operation_id="feedback",
    description=(
        "Counted once per request id: the same outcome again is a 200 with "
        "duplicate true, a different one a 409. Ids are kept for the last 100,000 "
        "answers per model, in the serving process."
    ),
    request=json_content("Feedback"),
    responses={
        "200": ok("The outcome was joined (and counted unless a repeat).", "FeedbackAnswer"),
        "400": ERRORS["400"],
        "404": error("No such model, or the request id is not known here."),
        "409": error("This request already has a different outcome."),
        "413": ERRORS["413"],
        "415": ERRORS["415"],
        "422": error("A field of the body is wrong; the context names it."),
    },
)

_INFERENCE: list[Endpoint] = [
    Endpoint(
        "GET",
        "/v2",
        status.server_metadata,
        summary="Server metadata",
        operation_id="serverMetadata",
        responses={"200": ok("Server metadata.", "ServerMetadata")},
    ),
    Endpoint(
        "GET",
        "/v2/health/live",
        status.live,
        summary="Liveness",
        operation_id="live",
        responses={"200": ok("Alive.", "Liveness")},
    ),
    Endpoint(
        "GET",
        "/v2/health/ready",
        status.ready,
        summary="Readiness",
        operation_id="ready",
        responses=_READINESS,
    ),
    *_model(_MODEL_METADATA, _MODEL_READY, _INFER, _FEEDBACK),
    Endpoint(
        "POST",
        "/invocations",
        inference.invocations,
        summary="Inference (MLflow scoring protocol) on the default model",
        operation_id="invocations",
        parameters=(ROUTING_KEY,),
        request={**json_content("InvocationsRequest"), "text/csv": {"schema": {"type": "string"}}},
        responses={
            "200": {**ok("MLflow-style predictions.", "InvocationsResponse"), "headers": MODEL_HEADERS},
            **ERRORS,
        },
        is_hot=True,
    ),
    Endpoint(
        "GET",
        "/ping",
        status.ready,
        summary="Readiness, as SageMaker and MLflow's scoring server answer it",
        operation_id="ping",
        responses=_READINESS,
    ),
    Endpoint(
        "GET",
        "/health",
        status.ready,
        summary="Readiness, under the name MLflow's scoring server uses",
        operation_id="health",
        responses=_READINESS,
    ),
    Endpoint(
        "GET",
        "/metrics",
        status.metrics,
        summary="Prometheus metrics",
        operation_id="metrics",
        responses={
            "200": {"description": "Prometheus text format.", "content": _TEXT},
            "404": error("Metrics are off on this server (--no-metrics)."),
        },
    ),
    Endpoint(
        "GET",
        "/version",
        status.version,
        summary="The version of lockgate serving",
        operation_id="version",
        responses={"200": ok("The version.", "Version")},
    ),
]

_DEPLOYMENT = "/admin/deployments/{deployment}"

_ADMIN: list[Endpoint] = [
    Endpoint(
        "GET",
        "/admin/deployments",
        admin.list_deployments,
        summary="Every deployment's status",
        operation_id="listDeployments",
        auth=Auth.ADMIN,
        responses={"200": ok("Deployments.", "DeploymentList"), **ADMIN_ERRORS},
    ),
    Endpoint(
        "POST",
        "/admin/deployments",
        admin.create_deployment,
        summary="Create a deployment, or give a finished one a new spec",
        operation_id="createDeployment",
        auth=Auth.ADMIN,
        request=json_content("DeploymentSpec"),
        responses=_DEPLOYED,
    ),
    Endpoint(
        "GET",
        _DEPLOYMENT,
        admin.deployment_status,
        summary="A deployment's status",
        operation_id="deploymentStatus",
        auth=Auth.ADMIN,
        responses=_STATUS,
    ),
    Endpoint(
        "PUT",
        _DEPLOYMENT,
        admin.put_deployment,
        summary="Create or update the deployment of this name",
        operation_id="putDeployment",
        auth=Auth.ADMIN,
        request=json_content("DeploymentSpec"),
        responses=_DEPLOYED,
    ),
    Endpoint(
        "POST",
        _DEPLOYMENT + "/{command}",
        admin.rollout_command,
        summary="Start, promote, pause, resume or roll back the rollout now",
        operation_id="rolloutCommand",
        auth=Auth.ADMIN,
        path_parameters={"command": {"type": "string", "enum": list(COMMANDS)}},
        request=json_content("Command"),
        is_request_required=False,
        responses={
            **_STATUS,
            **ADMIN_BODY_ERRORS,
            "409": error("The state machine does not allow this move from the current phase."),
            "422": error("A field of the body is wrong."),
        },
    ),
    Endpoint(
        "GET",
        _DEPLOYMENT + "/stats",
        admin.deployment_stats,
        summary="Each variant's raw accumulated counters (for lockgate analyze)",
        operation_id="deploymentStats",
        auth=Auth.ADMIN,
        responses={"200": {"description": "Counters per variant.", "content": _ANY_JSON}, **ADMIN_ERRORS},
    ),
    Endpoint(
        "GET",
        _DEPLOYMENT + "/history",
        admin.deployment_history,
        summary="The audit log",
        operation_id="deploymentHistory",
        auth=Auth.ADMIN,
        parameters=(
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "Only events with a larger id (0 or less: all).",
                "schema": {"type": "integer"},
            },
        ),
        responses={
            "200": ok("Events in order.", "History"),
            "422": error("after is not an event id (a whole number up to 2^63-1)."),
            **ADMIN_ERRORS,
        },
    ),
    Endpoint(
        "GET",
        "/dashboard",
        admin.dashboard,
        summary="The live dashboard page (HTML, no external assets)",
        operation_id="dashboard",
        auth=Auth.ADMIN_PAGE,
        parameters=(_TOKEN_QUERY,),
        responses={
            "200": {"description": "The page.", "content": _HTML},
            **_DASHBOARD_ERRORS,
            **{
                code: {"description": "No valid token: a page that asks for it.", "content": _HTML}
                for code in ("401", "403")
            },
        },
        on_denied=admin.sign_in,
    ),
    Endpoint(
        "GET",
        "/dashboard/data",
        admin.dashboard_json,
        summary="What the dashboard polls: status, recent events, weights over time",
        operation_id="dashboardData",
        auth=Auth.ADMIN_PAGE,
        parameters=(_TOKEN_QUERY,),
        responses={"200": {"description": "Deployments.", "content": _ANY_JSON}, **_DASHBOARD_ERRORS},
    ),
]

_DOCUMENT = Endpoint(
    "GET",
    "/openapi.json",
    status.openapi,
    summary="This document",
    operation_id="openapi",
    responses={"200": {"description": "OpenAPI document.", "content": _ANY_JSON}},
)

ROUTES: tuple[Endpoint, ...] = (*_INFERENCE, *_ADMIN, _DOCUMENT)
"""Every endpoint of the model server."""
