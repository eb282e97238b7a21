"""The OpenAPI 3.1 document of the model server, written by hand (no framework generates it)."""

from __future__ import annotations

from typing import Any

import lockgate

__all__ = ["openapi_document"]


def _json(schema_ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("Error")}


_ERRORS = {
    "400": _error("Malformed JSON or a body of the wrong shape."),
    "404": _error("No such model."),
    "413": _error("Body over the size limit."),
    "415": _error("Unsupported content type."),
    "422": _error("The input does not fit the model signature; the detail names the field."),
    "503": {
        "description": "Queue full or model loading; retry after the Retry-After delay.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": _json("Error"),
    },
}

_MODEL_HEADERS = {
    "x-request-id": {"schema": {"type": "string"}, "description": "The client's or a new id."},
    "x-model-name": {
        "schema": {"type": "string"},
        "description": "The model's name: the registered model's, shared by a deployment's variants.",
    },
    "x-model-version": {"schema": {"type": "string"}, "description": "The version of that model."},
    "x-lockgate-variant": {
        "schema": {"type": "string"},
        "description": "The deployment's variant that answered (e.g. stable, canary); only for deployments.",
    },
}

_HEADER_LENGTH = {
    "schema": {"type": "integer", "minimum": 1},
    "description": "Binary tensor data extension: the byte length of the JSON header that starts "
    "the body; the binary data of the tensors follows it.",
}
# the binary tensor data extension: a JSON header (InferenceRequest / InferenceResponse), then bytes
_BINARY_BODY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_ROUTING = {
    "name": "x-routing-key",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Sticky key for routing between variants (a user id).",
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "examples": ["validation_error"]},
            "detail": {"type": "string"},
            "context": {},
        },
    },
    "Tensor": {
        "type": "object",
        "description": (
            "A tensor: its values in 'data' (row-major, flattened or nested), or, with the binary "
            "tensor data extension, parameters.binary_data_size bytes after the JSON header."
        ),
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {
                "type": "string",
                "enum": [
                    "BOOL",
                    "UINT8",
                    "UINT16",
                    "UINT32",
                    "UINT64",
                    "INT8",
                    "INT16",
                    "INT32",
                    "INT64",
                    "FP16",
                    "FP32",
                    "FP64",
                    "BYTES",
                ],
            },
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data_size": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The tensor's values are this many bytes of the binary data "
                        "after the JSON header (in the order of the tensors); no 'data' then.",
                    }
                },
            },
            "data": {"type": "array"},
        },
    },
    "InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data_output": {
                        "type": "boolean",
                        "description": "Answer every output as binary data (unless its own "
                        "parameters.binary_data says otherwise).",
                    }
                },
            },
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data": {"type": "boolean"}},
                        },
                    },
                },
            },
        },
    },
    "InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}},
        },
    },
    "TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/TensorMetadata"}},
            "outputs": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/TensorMetadata"},
            },
            "parameters": {"type": "object"},
        },
    },
    "ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
            "models": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["ready"],
        "properties": {
            "ready": {"type": "boolean"},
            "name": {"type": "string"},
            "rollouts": {
                "type": "string",
                "description": "Only while the rollout store is unreachable: why rollouts wait.",
            },
        },
    },
    "Liveness": {
        "type": "object",
        "required": ["live"],
        "properties": {"live": {"type": "boolean"}},
    },
    "InvocationsRequest": {
        "description": "Exactly one of the four MLflow scoring formats.",
        "type": "object",
        "properties": {
            "dataframe_split": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array"}},
                },
            },
            "dataframe_records": {"type": "array", "items": {"type": "object"}},
            "instances": {},
            "inputs": {},
            "params": {"type": "object"},
        },
    },
    "InvocationsResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {}},
    },
    "Feedback": {
        "type": "object",
        "description": "One outcome of an answered request: a number (value) or a conversion (label).",
        "required": ["request_id"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "The x-request-id header of the answer (or the V2 body's id).",
            },
            "value": {"type": "number", "description": "A numeric outcome: a score, revenue."},
            "label": {
                "oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}],
                "description": "A 0/1 outcome: did the user convert.",
            },
        },
        "oneOf": [{"required": ["value"]}, {"required": ["label"]}],
    },
    "FeedbackAnswer": {
        "type": "object",
        "required": ["model", "request_id", "variant", "model_version", "outcome", "counted", "duplicate"],
        "properties": {
            "model": {"type": "string"},
            "request_id": {"type": "string"},
            "variant": {"type": "string", "description": "The variant that answered the request."},
            "model_version": {"type": "string"},
            "outcome": {"type": "object"},
            "counted": {"type": "boolean", "description": "False when this outcome was already counted."},
            "duplicate": {"type": "boolean"},
        },
    },
}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": _json(schema)}


_DEPLOYMENT = {"name": "deployment", "in": "path", "required": True, "schema": {"type": "string"}}
_ADMIN_ERRORS = {
    "401": _error("No bearer token."),
    "403": _error("The token is not valid."),
    "404": _error("No such deployment (or the admin API is off: no LOCKGATE_ADMIN_TOKEN)."),
    "503": _error("The rollout store cannot be reached; serving goes on, retry later."),
}
_ADMIN_BODY_ERRORS = {
    "400": _error("Malformed JSON or a body of the wrong shape."),
    "413": _error("Body over the size limit."),
    "415": _error("The admin API reads application/json only."),
}
_HOST_REFUSED = _error(
    "The Host header names a host this loopback-bound server does not answer (a guard against DNS "
    "rebinding), or the request is malformed."
)
_ADMIN_SCHEMAS: dict[str, Any] = {
    "DeploymentSpec": {
        "type": "object",
        "description": "A deployment spec, as in the YAML file (docs/rollouts.md).",
        "required": ["variants", "baseline", "candidate", "strategy"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9_-]{1,63}$"},
            "variants": {"type": "object", "additionalProperties": {"type": "string"}},
            "baseline": {"type": "string"},
            "candidate": {"type": "string"},
            "strategy": {"type": "object", "required": ["type"]},
            "routing_key": {"type": "object"},
            "salt": {"type": "string"},
            "analysis": {"type": "object"},
            "actor": {"type": "string"},
        },
    },
    "DeploymentStatus": {
        "type": "object",
        "required": ["name", "phase", "strategy", "variants"],
        "properties": {
            "name": {"type": "string"},
            "phase": {"type": "string"},
            "strategy": {"type": "string"},
            "stage": {"type": "integer"},
            "reason": {"type": "string"},
            "variants": {"type": "object"},
            "shadow": {"type": "object"},
            "verdict": {"type": ["object", "null"]},
        },
    },
    "DeploymentList": {
        "type": "object",
        "required": ["deployments"],
        "properties": {
            "deployments": {"type": "array", "items": {"$ref": "#/components/schemas/DeploymentStatus"}}
        },
    },
    "Command": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "actor": {"type": "string", "maxLength": 64},
            "reason": {"type": "string"},
            "duration_s": {"type": "number", "description": "pause only: resume by itself after this"},
        },
    },
    "History": {
        "type": "object",
        "required": ["name", "events"],
        "properties": {"name": {"type": "string"}, "events": {"type": "array", "items": {"type": "object"}}},
    },
}


def _dashboard_paths() -> dict[str, Any]:
    """The read-only dashboard page and its data, under the admin token (or ``?token=``)."""
    secured: dict[str, Any] = {"security": [{"adminToken": []}]}
    token = {
        "name": "token",
        "in": "query",
        "required": False,
        "description": "The admin token, for a browser that cannot send the header.",
        "schema": {"type": "string"},
    }
    errors = {**_ADMIN_ERRORS, "404": _error("The dashboard is off (no LOCKGATE_ADMIN_TOKEN).")}
    return {
        "/dashboard": {
            "get": {
                **secured,
                "summary": "The live dashboard page (HTML, no external assets)",
                "operationId": "dashboard",
                "parameters": [token],
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **errors,
                    **{
                        status: {
                            "description": "No valid token: a page that asks for it.",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                        for status in ("401", "403")
                    },
                },
            }
        },
        "/dashboard/data": {
            "get": {
                **secured,
                "summary": "What the dashboard polls: status, recent events, weights over time",
                "operationId": "dashboardData",
                "parameters": [token],
                "responses": {
                    "200": {
                        "description": "Deployments.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **errors,
                },
            }
        },
    }


def _admin_paths() -> dict[str, Any]:
    """The admin API (``/admin/deployments``), all under the bearer token."""
    secured: dict[str, Any] = {"security": [{"adminToken": []}]}
    status = {"200": _ok("The deployment's status.", "DeploymentStatus"), **_ADMIN_ERRORS}
    return {
        "/admin/deployments": {
            "get": {
                **secured,
                "summary": "Every deployment's status",
                "operationId": "listDeployments",
                "responses": {"200": _ok("Deployments.", "DeploymentList"), **_ADMIN_ERRORS},
            },
            "post": {
                **secured,
                "summary": "Create a deployment, or give a finished one a new spec",
                "operationId": "createDeployment",
                "requestBody": {"required": True, "content": _json("DeploymentSpec")},
                "responses": {
                    "200": _ok("Updated.", "DeploymentStatus"),
                    "201": _ok("Created.", "DeploymentStatus"),
                    "409": _error("Its rollout is still live: promote or roll it back first."),
                    "422": _error("A key of the spec is wrong, or a model failed to load; the detail says."),
                    **_ADMIN_BODY_ERRORS,
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/admin/deployments/{deployment}": {
            "parameters": [_DEPLOYMENT],
            "get": {
                **secured,
                "summary": "A deployment's status",
                "operationId": "deploymentStatus",
                "responses": status,
            },
            "put": {
                **secured,
                "summary": "Create or update the deployment of this name",
                "operationId": "putDeployment",
                "requestBody": {"required": True, "content": _json("DeploymentSpec")},
                "responses": {
                    "200": _ok("Updated.", "DeploymentStatus"),
                    "201": _ok("Created.", "DeploymentStatus"),
                    "409": _error("Its rollout is still live: promote or roll it back first."),
                    "422": _error("A key of the spec is wrong, or a model failed to load; the detail says."),
                    **_ADMIN_BODY_ERRORS,
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/admin/deployments/{deployment}/{command}": {
            "parameters": [
                _DEPLOYMENT,
                {
                    "name": "command",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ["start", "promote", "pause", "resume", "rollback"]},
                },
            ],
            "post": {
                **secured,
                "summary": "Start, promote, pause, resume or roll back the rollout now",
                "operationId": "rolloutCommand",
                "requestBody": {"required": False, "content": _json("Command")},
                "responses": {
                    **status,
                    **_ADMIN_BODY_ERRORS,
                    "409": _error("The state machine does not allow this move from the current phase."),
                    "422": _error("A field of the body is wrong."),
                },
            },
        },
        "/admin/deployments/{deployment}/stats": {
            "parameters": [_DEPLOYMENT],
            "get": {
                **secured,
                "summary": "Each variant's raw accumulated counters (for lockgate analyze)",
                "operationId": "deploymentStats",
                "responses": {
                    "200": {
                        "description": "Counters per variant.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_ADMIN_ERRORS,
                },
            },
        },
        "/admin/deployments/{deployment}/history": {
            "parameters": [_DEPLOYMENT],
            "get": {
                **secured,
                "summary": "The audit log",
                "operationId": "deploymentHistory",
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "Only events with a larger id (0 or less: all).",
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "200": _ok("Events in order.", "History"),
                    "422": _error("after is not an event id (a whole number up to 2^63-1)."),
                    **_ADMIN_ERRORS,
                },
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """Every endpoint the server answers, with request and response schemas."""
    document = _document()
    for path_item in document["paths"].values():
        for key, operation in path_item.items():
            if key != "parameters":
                operation["responses"].setdefault("400", _HOST_REFUSED)  # any path: the Host guard
    return document


def _document() -> dict[str, Any]:
    infer_responses = {
        "200": {
            "description": (
                "Model outputs: JSON, or with binary outputs asked for, a JSON header of "
                "Inference-Header-Content-Length bytes followed by the outputs' binary data."
            ),
            "content": {**_json("InferenceResponse"), **_BINARY_BODY},
            "headers": {**_MODEL_HEADERS, "Inference-Header-Content-Length": _HEADER_LENGTH},
        },
        **_ERRORS,
    }
    invocations_responses = {
        "200": {
            **_ok("MLflow-style predictions.", "InvocationsResponse"),
            "headers": _MODEL_HEADERS,
        },
        **_ERRORS,
    }
    readiness = {
        "200": _ok("Ready.", "Readiness"),
        "503": _ok("Not ready: loading or draining.", "Readiness"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lockgate model server",
            "version": lockgate.__version__,
            "description": "Open Inference Protocol (V2) and MLflow-compatible scoring.",
        },
        "paths": {
            "/v2": {
                "get": {
                    "summary": "Server metadata",
                    "operationId": "serverMetadata",
                    "responses": {"200": _ok("Server metadata.", "ServerMetadata")},
                }
            },
            "/v2/health/live": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "live",
                    "responses": {"200": _ok("Alive.", "Liveness")},
                }
            },
            "/v2/health/ready": {
                "get": {"summary": "Readiness", "operationId": "ready", "responses": readiness}
            },
            "/v2/models/{name}": {
                "get": {
                    "summary": "Model metadata (signature, runtime)",
                    "operationId": "modelMetadata",
                    "parameters": [_NAME],
                    "responses": {
                        "200": _ok("Model metadata.", "ModelMetadata"),
                        "404": _ERRORS["404"],
                        "503": _ERRORS["503"],
                    },
                }
            },
            "/v2/models/{name}/ready": {
                "get": {
                    "summary": "Model readiness",
                    "operationId": "modelReady",
                    "parameters": [_NAME],
                    "responses": {**readiness, "404": _ERRORS["404"]},
                }
            },
            "/v2/models/{name}/infer": {
                "post": {
                    "summary": "Inference (Open Inference Protocol)",
                    "operationId": "infer",
                    "description": (
                        "Takes JSON, or the binary tensor data extension: a JSON header of "
                        "Inference-Header-Content-Length bytes, then the inputs' bytes "
                        "(little-endian, row-major; BYTES elements each a 4-byte length and the "
                        "bytes). A body whose sizes do not add up is a 400."
                    ),
                    "parameters": [
                        _NAME,
                        _ROUTING,
                        {
                            "name": "Inference-Header-Content-Length",
                            "in": "header",
                            "required": False,
                            **_HEADER_LENGTH,
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {**_json("InferenceRequest"), **_BINARY_BODY},
                    },
                    "responses": infer_responses,
                }
            },
            "/v2/models/{name}/feedback": {
                "post": {
                    "summary": "The outcome of an answered request, joined to the variant that answered it",
                    "description": (
                        "Counted once per request id: the same outcome again is a 200 with "
                        "duplicate true, a different one a 409. Ids are kept for the last 100,000 "
                        "answers per model, in the serving process."
                    ),
                    "operationId": "feedback",
                    "parameters": [_NAME],
                    "requestBody": {"required": True, "content": _json("Feedback")},
                    "responses": {
                        "200": _ok("The outcome was joined (and counted unless a repeat).", "FeedbackAnswer"),
                        "400": _ERRORS["400"],
                        "404": _error("No such model, or the request id is not known here."),
                        "409": _error("This request already has a different outcome."),
                        "413": _ERRORS["413"],
                        "415": _ERRORS["415"],
                        "422": _error("A field of the body is wrong; the context names it."),
                    },
                }
            },
            "/invocations": {
                "post": {
                    "summary": "Inference (MLflow scoring protocol) on the default model",
                    "operationId": "invocations",
                    "parameters": [_ROUTING],
                    "requestBody": {
                        "required": True,
                        "content": {
                            **_json("InvocationsRequest"),
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": invocations_responses,
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            **_admin_paths(),
            **_dashboard_paths(),
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {**_SCHEMAS, **_ADMIN_SCHEMAS},
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
