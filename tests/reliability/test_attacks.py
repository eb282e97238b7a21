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


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, f"?token={TOKEN}"),  # the dashboard's query-string token is for the page, not the API
        ({"x-api-key": TOKEN}, ""),
        ({"cookie": f"token={TOKEN}"}, ""),
        ({"authorization": TOKEN}, ""),
        ({"authorization": f"Token {TOKEN}"}, ""),
        ({"authorization": f"Bearer {TOKEN}x"}, ""),
        ({"authorization": f"Bearer {TOKEN.upper()}"}, ""),
        ({"authorization": "Bearer " + "a" * 10_000}, ""),
    ],
)
def test_no_other_credential_opens_the_admin_api(
    gateway: Any, model_dir: Path, headers: dict[str, str], query: str
) -> None:
    """Inference needs no token, so there is no inference token to misuse: only the admin bearer
    token in the Authorization header opens /admin/, and every other form is a 401/403."""
    spec = {
        "name": "sneaky",
        "variants": {"a": str(model_dir), "b": str(model_dir)},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    for method, path in (
        ("PUT", "/admin/deployments/sneaky"),
        ("POST", "/admin/deployments/served/rollback"),
        ("POST", "/admin/deployments/served/pause"),
        ("GET", "/admin/deployments"),
        ("GET", "/admin/deployments/served/history"),
    ):
        response = httpx.request(
            method, f"{gateway.url}{path}{query}", json=spec if method == "PUT" else {}, headers=headers
        )
        assert response.status_code in (401, 403), (method, path, response.text)
    status = httpx.get(f"{gateway.url}/admin/deployments/served", headers=AUTH).json()
    assert status["phase"] != "rolled_back" and status["phase"] != "paused"
    listing = httpx.get(f"{gateway.url}/admin/deployments", headers=AUTH).json()
    assert "sneaky" not in [d["name"] for d in listing["deployments"]]


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:8080",
        "127.0.0.1.attacker.example",
        "localhost.attacker.example",
        "127.0.0.2",
        "0.0.0.0",
        "[::2]",
        "",
    ],
)
def test_foreign_host_names_are_refused_on_every_path(gateway: Any, host: str) -> None:
    for method, path in (
        ("GET", "/admin/deployments"),
        ("GET", "/v2/health/ready"),
        ("POST", "/invocations"),
        ("GET", "/metrics"),
        ("GET", "/dashboard"),
    ):
        response = httpx.request(method, f"{gateway.url}{path}", headers={**AUTH, "host": host})
        assert response.status_code == 400, (host, path, response.text)
        assert "DNS rebinding" in response.json()["detail"]


def test_loopback_host_names_are_answered(gateway: Any) -> None:
    port = gateway.port
    for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", "[::1]:1"):
        response = httpx.get(f"{gateway.url}/v2/health/live", headers={"host": host})
        assert response.status_code == 200, host


def _raw(url: str, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send ``head`` and ``body_parts`` on one socket, never finishing the body; return what the
    server answers before it has the whole body (a 413 must come without waiting for the rest)."""
    import socket

    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed while we were still sending
                break
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


LIMIT = 64 * 1024
LIMIT_PATHS = [
    ("/invocations", {}),
    ("/v2/models/served/infer", {}),
    ("/v2/models/served/feedback", {}),
    ("/admin/deployments", AUTH),
]


@pytest.mark.parametrize(("path", "extra"), LIMIT_PATHS)
def test_a_declared_length_over_the_limit_is_413_before_any_body(
    gateway: Any, path: str, extra: dict[str, str]
) -> None:
    headers = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{headers}"
        f"content-length: {LIMIT + 1}\r\n\r\n"
    ).encode()
    answer = _raw(gateway.url, head, [])  # not one byte of the body is sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    _alive(gateway.url)


@pytest.mark.parametrize(("path", "extra"), LIMIT_PATHS)
def test_a_chunked_body_over_the_limit_is_413_before_it_ends(
    gateway: Any, path: str, extra: dict[str, str]
) -> None:
    headers = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{headers}"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"x" * 4096
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (LIMIT // len(chunk)) + [b"1\r\nx\r\n"]
    # limit + 1 bytes, and the body never ends (no 0-size chunk): the answer cannot wait for it
    answer = _raw(gateway.url, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    _alive(gateway.url)


def test_exactly_the_limit_is_read(gateway: Any) -> None:
    body = b'{"dataframe_split": {"columns": [], "data": []}' + b" " * LIMIT
    body = body[: LIMIT - 1] + b"}"
    response = httpx.post(
        f"{gateway.url}/invocations", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code != 413 and response.status_code < 500, response.text


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "x", "shape": [-1, 30], "datatype": "FP64", "data": [0.0] * 30},
        {"name": "x", "shape": [2**62, 2**62], "datatype": "FP64", "data": [0.0]},
        {"name": "x", "shape": [10**6] * 8, "datatype": "FP32", "data": [0.0]},
        {"name": "x", "shape": [10**12], "datatype": "BYTES", "data": ["a"]},
        {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [0.0] * 29},
        {"name": "x", "shape": [1, 30.5], "datatype": "FP64", "data": [0.0] * 30},
        {"name": "x", "shape": [1, 30], "datatype": "FP1024", "data": [0.0] * 30},
    ],
)
def test_malformed_tensors_are_400s(gateway: Any, tensor: dict[str, Any]) -> None:
    response = httpx.post(f"{gateway.url}/v2/models/served/infer", json={"inputs": [tensor]})
    assert 400 <= response.status_code < 500, response.text
    _alive(gateway.url)


def test_deeply_nested_feedback_and_commands_are_400s(gateway: Any) -> None:
    body = b'{"request_id": "x", "value": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for path in ("/v2/models/served/feedback", "/admin/deployments/served/pause"):
        headers = {"content-type": "application/json", **AUTH}
        response = httpx.post(f"{gateway.url}{path}", content=body, headers=headers)
        assert 400 <= response.status_code < 500, (path, response.text)
    _alive(gateway.url)
