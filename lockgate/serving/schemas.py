"""The pieces of the OpenAPI document that endpoints share: component schemas, common responses.

The route table (:mod:`lockgate.serving.routes`) names these for each endpoint, and
:mod:`lockgate.serving.openapi` puts the document together from the table.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ADMIN_BODY_ERRORS",
    "ADMIN_ERRORS",
    "BINARY_BODY",
    "ERRORS",
    "HEADER_LENGTH",
    "HOST_REFUSED",
    "MODEL_HEADERS",
    "ROUTING_KEY",
    "SCHEMAS",
    "error",
    "json_content",
    "ok",
]


def json_content(schema_ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}


def ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": json_content(schema)}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": json_content("Error")}


ERRORS = {
    "400": error("Malformed JSON or a body of the wrong shape."),
    "404": error("No such model."),
    "413": error("Body over the size limit."),
    "415": error("Unsupported content type."),
    "422": error("The input does not fit the model signature; the detail names the field."),
    "503": {
        "description": "Queue full or model loading; retry after the Retry-After delay.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": json_content("Error"),
    },
}

MODEL_HEADERS = {
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

HEADER_LENGTH = {
    "schema": {"type": "integer", "minimum": 1},
    "description": "Binary tensor data extension: the byte length of the JSON header that starts "
    "the body; the binary data of the tensors follows it.",
}
# the binary tensor data extension: a JSON header (InferenceRequest / InferenceResponse), then bytes
BINARY_BODY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


ROUTING_KEY = {
    "name": "x-routing-key",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Sticky key for routing between variants (a user id).",
}

INFERENCE_SCHEMAS: dict[str, Any] = {
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
    "Version": {
        "type": "object",
        "required": ["lockgate"],
        "properties": {"lockgate": {"type": "string", "description": "The version of lockgate serving."}},
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


ADMIN_ERRORS = {
    "401": error("No bearer token."),
    "403": error("The token is not valid."),
    "404": error("No such deployment (or the admin API is off: no LOCKGATE_ADMIN_TOKEN)."),
    "503": error("The rollout store cannot be reached; serving goes on, retry later."),
}
ADMIN_BODY_ERRORS = {
    "400": error("Malformed JSON or a body of the wrong shape."),
    "413": error("Body over the size limit."),
    "415": error("The admin API reads application/json only."),
}
HOST_REFUSED = error(
    "The Host header names a host this loopback-bound server does not answer (a guard against DNS "
    "rebinding), or the request is malformed."
)
ADMIN_SCHEMAS: dict[str, Any] = {
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


SCHEMAS: dict[str, Any] = {**INFERENCE_SCHEMAS, **ADMIN_SCHEMAS}
