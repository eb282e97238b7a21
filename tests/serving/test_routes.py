"""The route table drives dispatch, 404, 405 and the OpenAPI document: tested through the ASGI app
in process (no server), so a route that is served and a route that is documented are one thing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from lockgate.errors import NotFound
from lockgate.serving.app import ServingApp
from lockgate.serving.dispatch import Auth, Endpoint
from lockgate.serving.exchange import Exchange, Response
from lockgate.serving.openapi import openapi_document
from lockgate.serving.predictor import FunctionPredictor
from lockgate.serving.routes import ROUTES
from lockgate.serving.signature import FieldSpec, Signature
from lockgate.serving.variant import Variant
from tests.support import TOKEN


def _variant() -> Variant:
    signature = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64")))
    return Variant("m", "1", FunctionPredictor(lambda x: x[:, 0] + x[:, 1], signature))


def _send(app: ServingApp, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    """Start the app, send ``(method, path, httpx keywords)`` requests in order, stop it."""

    async def run() -> list[httpx.Response]:
        await app.startup()
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                return [await client.request(method, path, **kwargs) for method, path, kwargs in requests]
        finally:
            await app.shutdown()

    return asyncio.run(run())


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/invocations", "POST"),
        ("GET", "/v2/models/m/infer", "POST"),
        ("DELETE", "/v2/health/live", "GET, HEAD"),
        ("POST", "/v2/models/m", "GET, HEAD"),
        ("PUT", "/v2/models/m/versions/1/ready", "GET, HEAD"),
        ("DELETE", "/admin/deployments", "GET, HEAD, POST"),
        ("POST", "/admin/deployments/churn/history", "GET, HEAD"),
        ("GET", "/admin/deployments/churn/rollback", "POST"),
    ],
)
def test_a_known_path_with_another_method_is_a_405_with_allow(method: str, path: str, allow: str) -> None:
    [answer] = _send(ServingApp([_variant()], admin_token=TOKEN), (method, path, {}))
    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == allow
    body = answer.json()
    assert body["error"] == "method_not_allowed" and body["context"] == {"allow": allow}
    assert f"use {allow}" in body["detail"]


def test_an_unknown_path_is_a_404_in_the_error_trees_json_naming_what_is_there() -> None:
    nowhere, bad_command, bad_depth = _send(
        ServingApp([_variant()], admin_token=TOKEN),
        ("GET", "/nowhere", {}),
        ("POST", "/admin/deployments/churn/explode", {}),
        ("GET", "/v2/models/m/ready/now", {}),
    )
    for answer in (nowhere, bad_command, bad_depth):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/json"
        assert set(answer.json()) == {"error", "detail"}
        assert answer.json()["error"] == NotFound.kind
    assert nowhere.json()["detail"] == "no endpoint GET /nowhere; see GET /openapi.json"
    # the table says what exists under the path asked for, the commands included
    assert (
        "POST /admin/deployments/{deployment}/(start|promote|pause|resume|rollback)"
        in (bad_command.json()["detail"])
    )
    assert "GET /v2/models/{name}/ready" in bad_depth.json()["detail"]


def test_served_paths_answer_through_the_table() -> None:
    body = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    body["inputs"].append({"name": "b", "shape": [1], "datatype": "FP64", "data": [2.0]})
    infer, versioned, trailing, head, metadata = _send(
        ServingApp([_variant()]),
        ("POST", "/v2/models/m/infer", {"json": body}),
        ("POST", "/v2/models/m/versions/1/infer", {"json": body}),
        ("GET", "/v2/models/m/", {}),
        ("HEAD", "/v2/health/ready", {}),
        ("GET", "/v2/models/nope", {}),
    )
    assert infer.status_code == versioned.status_code == 200
    assert infer.json()["outputs"][0]["data"] == versioned.json()["outputs"][0]["data"] == [3.0]
    assert infer.headers["x-model-name"] == "m"
    assert trailing.status_code == 200 and trailing.json()["name"] == "m"
    assert head.status_code == 200
    assert metadata.status_code == 404 and "not served" in metadata.json()["detail"]


def test_the_document_lists_exactly_the_tables_routes() -> None:
    [answer] = _send(ServingApp([_variant()]), ("GET", "/openapi.json", {}))
    assert _operations(answer.json()) == {(e.method, e.path) for e in ROUTES}
    assert answer.json() == openapi_document()


async def _hello(app: ServingApp, exchange: Exchange) -> Response:
    return Response(200, b'{"hello": "%s"}' % exchange.params["who"].encode())


def test_a_route_added_to_the_table_is_served_and_documented() -> None:
    from openapi_spec_validator import validate

    hello = Endpoint(
        "GET",
        "/hello/{who}",
        _hello,
        summary="Say hello",
        operation_id="hello",
        auth=Auth.ADMIN,
        responses={"200": {"description": "A greeting."}},
    )
    app = ServingApp([_variant()], admin_token=TOKEN, routes=(*ROUTES, hello))
    document, greeted, refused, wrong = _send(
        app,
        ("GET", "/openapi.json", {}),
        ("GET", "/hello/ada", {"headers": {"authorization": f"Bearer {TOKEN}"}}),
        ("GET", "/hello/ada", {}),
        ("POST", "/hello/ada", {}),
    )
    validate(document.json())
    assert _operations(document.json()) == {(e.method, e.path) for e in (*ROUTES, hello)}
    operation = document.json()["paths"]["/hello/{who}"]["get"]
    assert operation["summary"] == "Say hello" and operation["security"] == [{"adminToken": []}]
    assert operation["parameters"] == [
        {"name": "who", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert greeted.status_code == 200 and greeted.json() == {"hello": "ada"}
    assert refused.status_code == 401
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"


def test_a_body_of_a_media_type_the_route_does_not_read_is_a_415_before_it_is_read() -> None:
    [answer] = _send(
        ServingApp([_variant()]),
        ("POST", "/v2/models/m/feedback", {"content": b"a=1", "headers": {"content-type": "text/plain"}}),
    )
    assert answer.status_code == 415
    assert answer.json()["detail"].startswith(
        "/v2/models/m/feedback reads application/json, not 'text/plain'"
    )


def test_a_table_with_an_operation_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="GET /v2 twice"):
        ServingApp(routes=(*ROUTES, ROUTES[0]))


def test_every_operation_id_is_unique_and_every_path_parameter_is_declared() -> None:
    ids = [e.operation_id for e in ROUTES]
    assert len(ids) == len(set(ids))
    for endpoint in ROUTES:
        assert set(endpoint.path_parameters) <= set(endpoint.parameter_names), endpoint.path


def test_the_hot_paths_are_found_without_the_table_search() -> None:
    app = ServingApp([_variant()])
    infer = app.routes.hot("POST", "/v2/models/m/infer")
    assert infer is not None and infer[0].operation_id == "infer" and infer[1] == {"name": "m"}
    invocations = app.routes.hot("POST", "/invocations")
    assert invocations is not None and invocations[0].operation_id == "invocations"
    for method, path in [
        ("GET", "/invocations"),
        ("POST", "/v2/models//infer"),
        ("POST", "/v2/models/a/b/infer"),
        ("POST", "/v2/models/m/feedback"),
    ]:
        assert app.routes.hot(method, path) is None, (method, path)
