"""The real server over HTTP: both protocols, every error, headers, metrics, OpenAPI."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _split(model: Any, rows: slice) -> dict[str, Any]:
    return {
        "dataframe_split": {
            "columns": model.columns,
            "data": model.features[rows].tolist(),
        }
    }


def test_invocations_match_the_model(server: Any, logged_model: Any) -> None:
    response = httpx.post(f"{server.url}/invocations", json=_split(logged_model, slice(0, 50)))
    assert response.status_code == 200
    assert response.json() == {"predictions": logged_model.labels[:50].tolist()}
    assert response.headers["x-model-name"] == "cancer"
    assert response.headers["x-model-version"]
    assert len(response.headers["x-request-id"]) >= 16


def test_every_mlflow_format_and_csv(server: Any, logged_model: Any) -> None:
    row = dict(zip(logged_model.columns, logged_model.features[3].tolist(), strict=True))
    expected = {"predictions": [int(logged_model.labels[3])]}
    for body in (
        {"dataframe_records": [row]},
        {"instances": [row]},
        {"inputs": {k: [v] for k, v in row.items()}},
    ):
        assert httpx.post(f"{server.url}/invocations", json=body).json() == expected
    csv = ",".join(logged_model.columns) + "\n" + ",".join(map(repr, row.values())) + "\n"
    response = httpx.post(f"{server.url}/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.json() == expected


def test_v2_infer_metadata_and_health(server: Any, logged_model: Any) -> None:
    body = {
        "id": "abc",
        "inputs": [
            {
                "name": "x",
                "shape": [2, 30],
                "datatype": "FP64",
                "data": logged_model.features[:2].ravel().tolist(),
            }
        ],
    }
    response = httpx.post(f"{server.url}/v2/models/cancer/infer", json=body)
    assert response.status_code == 200
    doc = response.json()
    assert doc["id"] == "abc"
    assert doc["model_name"] == "cancer"
    labels = next(o for o in doc["outputs"] if o["name"] == "predictions")
    assert labels["data"] == logged_model.labels[:2].tolist()
    probabilities = next(o for o in doc["outputs"] if o["name"] == "probabilities")
    np.testing.assert_allclose(
        np.reshape(probabilities["data"], probabilities["shape"]),
        logged_model.model.predict_proba(_frame(logged_model, 2)),
        rtol=1e-6,
        atol=1e-12,
    )
    meta = httpx.get(f"{server.url}/v2/models/cancer").json()
    assert meta["name"] == "cancer"
    assert [i["name"] for i in meta["inputs"]] == logged_model.columns
    assert meta["inputs"][0]["datatype"] == "FP64"
    assert httpx.get(f"{server.url}/v2").json()["name"] == "lockgate"
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{server.url}/v2/models/cancer/ready").status_code == 200


def _frame(model: Any, n: int) -> Any:
    import pandas as pd

    return pd.DataFrame(model.features[:n], columns=model.columns)


def test_client_request_id_is_echoed(server: Any, logged_model: Any) -> None:
    response = httpx.post(
        f"{server.url}/invocations",
        json=_split(logged_model, slice(0, 1)),
        headers={"x-request-id": "client-42"},
    )
    assert response.headers["x-request-id"] == "client-42"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "kind"),
    [
        ("POST", "/invocations", {"content": b'{"dataframe_split": [1,'}, 400, "bad_request"),
        (
            "POST",
            "/invocations",
            {"json": {"dataframe_split": {"columns": ["mean radius"], "data": [[1.0]]}}},
            422,
            "validation_error",
        ),
        ("POST", "/v2/models/nope/infer", {"json": {"inputs": []}}, 404, "not_found"),
        (
            "POST",
            "/invocations",
            {"content": b"a=1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/invocations",
            {"content": b"x" * (64 * 1024 + 1), "headers": {"content-type": "application/json"}},
            413,
            "payload_too_large",
        ),
        ("GET", "/invocations", {}, 405, "method_not_allowed"),
        ("GET", "/nowhere", {}, 404, "not_found"),
    ],
)
def test_errors_are_json_with_the_right_status(
    server: Any, method: str, path: str, kwargs: dict[str, Any], status: int, kind: str
) -> None:
    response = httpx.request(method, f"{server.url}{path}", **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == kind
    assert body["detail"]


def test_422_names_the_missing_column(server: Any, logged_model: Any) -> None:
    body = _split(logged_model, slice(0, 1))
    body["dataframe_split"]["columns"] = logged_model.columns[:-1]
    body["dataframe_split"]["data"] = [row[:-1] for row in body["dataframe_split"]["data"]]
    response = httpx.post(f"{server.url}/invocations", json=body)
    assert response.status_code == 422
    assert response.json()["context"]["field"] == "worst fractal dimension"


def test_chunked_body_over_the_limit_is_refused(server: Any) -> None:
    def chunks() -> Any:
        for _ in range(200):
            yield b" " * 1024

    response = httpx.post(
        f"{server.url}/invocations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_large_body_over_the_limit_gets_a_readable_413(server: Any) -> None:
    # 24 MB: the client is still sending when the server has decided; it must read the 413, not a reset
    for _ in range(3):
        response = httpx.post(
            f"{server.url}/invocations",
            content=b" " * 24_000_000,
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert response.status_code == 413
        assert "the limit is" in response.json()["detail"]


def test_metrics_count_requests_by_status(server: Any, logged_model: Any) -> None:
    httpx.post(f"{server.url}/invocations", json=_split(logged_model, slice(0, 1)))
    text = httpx.get(f"{server.url}/metrics").text
    assert 'lockgate_requests_total{model="cancer"' in text
    assert 'status="200"' in text
    assert 'status="422"' in text
    assert "lockgate_request_latency_seconds_bucket" in text
    assert "lockgate_batch_size_bucket" in text
    assert "lockgate_queue_depth" in text
    stats = server.app.variants["cancer"].snapshot()
    assert stats.requests >= 2
    assert stats.errors == 0  # 4xx are the client's, not the model's


def test_openapi_document_is_valid(server: Any) -> None:
    from openapi_spec_validator import validate

    document = httpx.get(f"{server.url}/openapi.json").json()
    validate(document)
    assert {"/invocations", "/v2/models/{name}/infer", "/metrics"} <= set(document["paths"])


def test_routing_hook_picks_the_variant(server: Any, logged_model: Any) -> None:
    app = server.app
    original = app.route
    seen: list[tuple[str, str | None]] = []

    def route(name: str, key: str | None) -> Any:
        seen.append((name, key))
        return original(name, key)

    app.set_route(route)
    try:
        response = httpx.post(
            f"{server.url}/invocations",
            json=_split(logged_model, slice(0, 1)),
            headers={"x-routing-key": "user-7"},
        )
    finally:
        app.set_route(original)
    assert response.status_code == 200
    assert seen == [("cancer", "user-7")]


def test_a_loopback_server_refuses_foreign_host_names(server: Any) -> None:
    """DNS rebinding: a page on evil.example re-points its name at 127.0.0.1 and calls the API."""
    for host in ("evil.example", "evil.example:8080", "10.0.0.1", "127.0.0.1.evil.example"):
        response = httpx.get(f"{server.url}/v2", headers={"host": host})
        assert response.status_code == 400, host
        assert "DNS rebinding" in response.json()["detail"]
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080", "LOCALHOST"):
        assert httpx.get(f"{server.url}/v2", headers={"host": host}).status_code == 200, host


def test_a_server_bound_elsewhere_answers_any_host_name(logged_model: Any) -> None:
    from lockgate.serving import ServeConfig, build_app, resolve_source

    source = resolve_source(str(logged_model.path), name="cancer")
    app = build_app(source, config=ServeConfig(str(logged_model.path), host="0.0.0.0"))
    assert app.allowed_hosts is None


def test_the_openapi_document_describes_the_admin_api() -> None:
    from openapi_spec_validator import validate

    from lockgate.serving.openapi import openapi_document

    doc = openapi_document()
    validate(doc)
    paths = doc["paths"]
    for path in (
        "/admin/deployments",
        "/admin/deployments/{deployment}",
        "/admin/deployments/{deployment}/{command}",
        "/admin/deployments/{deployment}/history",
        "/admin/deployments/{deployment}/stats",
    ):
        operations = [op for verb, op in paths[path].items() if verb != "parameters"]
        assert operations and all(op["security"] == [{"adminToken": []}] for op in operations), path
    assert doc["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"


def test_nan_from_pythons_json_is_read_not_malformed(server: Any, logged_model: Any) -> None:
    import json

    row = logged_model.features[0].tolist()
    row[3] = float("nan")  # what json.dumps and pandas send for a missing value
    body = json.dumps({"dataframe_split": {"columns": logged_model.columns, "data": [row]}})
    response = httpx.post(
        f"{server.url}/invocations", content=body, headers={"content-type": "application/json"}
    )
    # read as a missing value: these columns are required, so the answer names the column (422)
    assert response.status_code == 422, response.text
    assert f"'{logged_model.columns[3]}' is required" in response.json()["detail"]
