"""The OpenAPI 3.1 document of the model server, generated from the route table.

One operation per :class:`~lockgate.serving.dispatch.Endpoint`, in the table's order: its path
parameters (strings, or the schema the entry gives), its query and header parameters, its request
body, its responses (every one may also be the Host guard's 400), and the bearer token where the
entry needs the admin token. The component schemas are :mod:`lockgate.serving.schemas`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lockgate
from lockgate.serving.dispatch import Auth, Endpoint
from lockgate.serving.schemas import HOST_REFUSED, SCHEMAS

__all__ = ["openapi_document"]


def openapi_document(routes: Sequence[Endpoint] | None = None) -> dict[str, Any]:
    """Every endpoint of ``routes`` (the server's table when not given), with its schemas."""
    if routes is None:
        from lockgate.serving.routes import ROUTES

        routes = ROUTES
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in routes:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lockgate model server",
            "version": lockgate.__version__,
            "description": "Open Inference Protocol (V2) and MLflow-compatible scoring.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": endpoint.summary, "operationId": endpoint.operation_id}
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.auth is not Auth.PUBLIC:
        operation["security"] = [{"adminToken": []}]
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(endpoint.path_parameters.get(name, {"type": "string"})),
        }
        for name in endpoint.parameter_names
    ]
    parameters += [dict(parameter) for parameter in endpoint.parameters]
    if parameters:
        operation["parameters"] = parameters
    if endpoint.request is not None:
        operation["requestBody"] = {
            "required": endpoint.is_request_required,
            "content": dict(endpoint.request),
        }
    operation["responses"] = {**endpoint.responses}
    operation["responses"].setdefault("400", HOST_REFUSED)  # any path: the Host guard
    return operation
