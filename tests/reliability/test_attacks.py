"""Attacks and bad input against a real server: each refused with a 4xx, the server keeps serving.

Issue 12's list, the parts that touch the HTTP surface: path traversal in deployment names and
model URIs given to the admin API, the admin token, DNS rebinding, body limits, deeply nested
JSON and tensors whose declared size is out of all proportion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import TOKEN

pytestmark = pytest.mark.integration

AUTH = {"authorization": f"Bearer {TOKEN}"}

TRAVERSALS = [
    "../etc",
    "..%2f..%2fetc",
    "%2e%2e",
    "%252e%252e",
    "..\\windows",
    "/etc/passwd",
    "//proc/self/root",
    "a#fragment",
    "name/../../x",
]


def _alive(url: str) -> None:
    assert httpx.get(f"{url}/v2/health/live").status_code == 200


@pytest.mark.parametrize("name", TRAVERSALS)
def test_deployment_names_cannot_walk_out(gateway: Any, model_dir: Path, name: str) -> None:
    spec = {
        "name": name,
        "variants": {"a": str(model_dir), "b": str(model_dir)},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    response = httpx.post(f"{gateway.url}/admin/deployments", json=spec, headers=AUTH)
    assert 400 <= response.status_code < 500, response.text
    for path in (f"/admin/deployments/{name}", f"/admin/deployments/{name}/history"):
        answer = httpx.get(f"{gateway.url}{path}", headers=AUTH)
        assert 400 <= answer.status_code < 500, (path, answer.text)
    _alive(gateway.url)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc",
        "/etc",
        "/proc/self/root",
        "../../../../etc",
        "models:/../../etc/1",
        "runs:/../../etc/model",
        "http://169.254.169.254/latest/meta-data",
        "models:/x/1#fragment",
    ],
)
def test_model_uris_outside_a_model_are_refused(gateway: Any, model_dir: Path, uri: str) -> None:
    spec = {
        "name": "attack",
        "variants": {"a": str(model_dir), "b": uri},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    response = httpx.put(f"{gateway.url}/admin/deployments/attack", json=spec, headers=AUTH, timeout=60)
    assert 400 <= response.status_code < 500, (uri, response.status_code, response.text)
    assert "variant 'b'" in response.json()["detail"] or "variants.b" in response.json()["detail"]
    _alive(gateway.url)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 403),
        ({"authorization": "Basic " + TOKEN}, 401),
        ({"authorization": "Bearer"}, 401),
        ({"authorization": f"Bearer {TOKEN[:-1]}"}, 403),
    ],
)
def test_the_admin_api_without_the_right_token_changes_nothing(
    gateway: Any, model_dir: Path, headers: dict[str, str], status: int
) -> None:
    spec = {
        "name": "guarded",
        "variants": {"a": str(model_dir), "b": str(model_dir)},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    assert (
        httpx.put(f"{gateway.url}/admin/deployments/guarded", json=spec, headers=headers).status_code
        == status
    )
    assert httpx.post(f"{gateway.url}/admin/deployments/guarded/start", headers=headers).status_code == status
    listing = httpx.get(f"{gateway.url}/admin/deployments", headers=AUTH).json()
    assert "guarded" not in [d["name"] for d in listing["deployments"]]


def test_a_foreign_host_is_refused(gateway: Any) -> None:
    response = httpx.get(f"{gateway.url}/admin/deployments", headers={**AUTH, "host": "attacker.example"})
    assert response.status_code == 400


def test_body_limits_hold_with_and_without_a_length(gateway: Any) -> None:
    too_big = b"x" * (64 * 1024 + 1)
    declared = httpx.post(
        f"{gateway.url}/invocations", content=too_big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413

    def chunks() -> Any:
        for _ in range(65):
            yield b"x" * 1024

    chunked = httpx.post(
        f"{gateway.url}/invocations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    _alive(gateway.url)


def test_deeply_nested_json_is_a_400(gateway: Any) -> None:
    body = b"[" * 5000 + b"]" * 5000
    for path in ("/invocations", "/admin/deployments"):
        headers = {"content-type": "application/json", **AUTH}
        response = httpx.post(f"{gateway.url}{path}", content=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
    _alive(gateway.url)


def test_a_tensor_declaring_a_huge_shape_is_refused_without_allocating_it(gateway: Any) -> None:
    body = {"inputs": [{"name": "x", "shape": [10**12, 30], "datatype": "FP64", "data": [0.0] * 30}]}
    response = httpx.post(f"{gateway.url}/v2/models/served/infer", json=body)
    assert 400 <= response.status_code < 500, response.text
    _alive(gateway.url)


def test_a_pickled_model_that_would_run_code_is_not_loaded_unverified(
    gateway: Any, model_dir: Path, tmp_path: Path
) -> None:
    """A pyfunc whose unpickling writes a sentinel file: refused before loading, nothing runs."""
    import os
    import warnings

    import mlflow.pyfunc

    sentinel = tmp_path / "pwned"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        class Evil(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
            def __reduce__(self):  # type: ignore[no-untyped-def]
                return (os.system, (f"touch {sentinel}",))

            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                return model_input

        mlflow.pyfunc.save_model(str(tmp_path / "evil"), python_model=Evil())
    sentinel.unlink(missing_ok=True)  # saving loads the model back once, here in the test process
    spec = {
        "name": "evil",
        "variants": {"a": str(model_dir), "b": str(tmp_path / "evil")},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    response = httpx.put(f"{gateway.url}/admin/deployments/evil", json=spec, headers=AUTH, timeout=60)
    assert response.status_code == 409, response.text
    assert "runs the code inside" in response.json()["detail"]
    assert not sentinel.exists()
    _alive(gateway.url)
    import cloudpickle  # the control: unpickling it really would have run the code

    with open(tmp_path / "evil" / "python_model.pkl", "rb") as file:
        cloudpickle.load(file)
    assert sentinel.exists()
