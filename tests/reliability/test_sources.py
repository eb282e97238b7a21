"""Where models and data come from: every path or URI field with every traversal form, URLs that
would make the server fetch from an address of an attacker's choosing, links out of a folder, and
an artifact with one byte flipped after it was registered.

Each case is refused with a 4xx (the admin API) or exit code 2 (the CLI), and nothing outside the
root is read or fetched: a listener stands in for the metadata service and must see no connection.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.errors import UserError
from lockgate.serving.source import check_model_uri, resolve_source
from tests.reliability.conftest import TOKEN

pytestmark = pytest.mark.integration

AUTH = {"authorization": f"Bearer {TOKEN}"}


class _Listener:
    """A TCP listener on 127.0.0.1 that counts connections: proof that nothing was fetched."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.close()


def _uris(model_dir: Path, listener_port: int) -> list[str]:
    here = f"127.0.0.1:{listener_port}"
    return [
        # traversal, each encoding
        "../../../../etc",
        "%2e%2e/%2e%2e/etc",
        "%252e%252e/%252e%252e/etc",
        "..\\..\\etc",
        "/etc",
        "/etc/passwd",
        "//proc/self/root",
        "file:///etc",
        "file:///etc/passwd",
        "file:////proc/self/root",
        f"file://{here}/model",
        f"{model_dir}#fragment",
        "models:/../../etc/1",
        "models:/x/1#fragment",
        "models:/x/1?v=2",
        "runs:/../../etc/model",
        "runs:/0123/model#x",
        # URLs: never fetched, whatever the address (the listener stands in for the target)
        f"http://{here}/latest/meta-data",
        f"https://{here}/model",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data",
        "s3://bucket/model",
        "gs://bucket/model",
        "mlflow-artifacts:/0/model",
        f"ftp://{here}/model",
        # relative paths name the server's working directory, which a client cannot see
        os.path.relpath(model_dir),
        "model",
        "./model",
    ]


def test_model_uris_are_refused_before_any_fetch_over_the_admin_api(
    gateway: Any, model_dir: Path, listener: _Listener
) -> None:
    for uri in _uris(model_dir, listener.port):
        spec = {
            "name": "attack",
            "variants": {"a": str(model_dir), "b": uri},
            "baseline": "a",
            "candidate": "b",
            "strategy": {"type": "direct"},
        }
        response = httpx.put(f"{gateway.url}/admin/deployments/attack", json=spec, headers=AUTH, timeout=60)
        assert 400 <= response.status_code < 500, (uri, response.status_code, response.text)
        assert "variant 'b'" in response.json()["detail"], (uri, response.text)
    listing = httpx.get(f"{gateway.url}/admin/deployments", headers=AUTH).json()
    assert "attack" not in [d["name"] for d in listing["deployments"]]
    assert listener.connections == 0
    assert httpx.get(f"{gateway.url}/v2/health/live").status_code == 200


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://example.com/model.onnx",
        "s3://bucket/model",
        "file://169.254.169.254/etc",
        "models:/x/1#fragment",
        "/etc\x00/passwd",
    ],
)
def test_check_model_uri_refuses_urls_hosts_and_fragments(uri: str) -> None:
    with pytest.raises(UserError):
        check_model_uri(uri)


def test_relative_paths_are_refused_only_where_asked(model_dir: Path) -> None:
    relative = os.path.relpath(model_dir)
    assert check_model_uri(relative) == relative  # `lockgate serve ./model` on the user's own machine
    with pytest.raises(UserError, match="relative"):
        check_model_uri(relative, allow_relative=False)
    assert check_model_uri(f"file://{model_dir}", allow_relative=False) == str(model_dir)
    assert check_model_uri("C:\\models\\m.onnx") == "C:\\models\\m.onnx"  # a drive, not a scheme


def test_a_link_out_of_a_model_folder_is_refused_and_not_read(
    gateway: Any, model_dir: Path, tmp_path: Path
) -> None:
    """A copy of a real model whose model file is a link to a file outside the folder."""
    import shutil

    linked = tmp_path / "linked"
    shutil.copytree(model_dir, linked)
    outside = tmp_path / "outside.skops"
    shutil.move(linked / "model.skops", outside)
    (linked / "model.skops").symlink_to(outside)
    before = outside.stat().st_atime_ns
    with pytest.raises(UserError, match="link out of the model folder"):
        resolve_source(str(linked))
    spec = {
        "name": "linked",
        "variants": {"a": str(model_dir), "b": str(linked)},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    response = httpx.put(f"{gateway.url}/admin/deployments/linked", json=spec, headers=AUTH, timeout=60)
    assert response.status_code == 400, response.text
    assert "link out of the model folder" in response.json()["detail"]
    assert outside.stat().st_atime_ns == before
    # a link inside the folder is fine
    inside = tmp_path / "inside"
    shutil.copytree(model_dir, inside)
    (inside / "alias.yaml").symlink_to(inside / "MLmodel")
    assert resolve_source(str(inside)).path == inside.resolve()


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "file://169.254.169.254/etc",
        "file:///etc",
        "/proc/self/root",
        "../../../../etc",
        "models:/../../etc/1",
    ],
)
def test_the_serve_cli_refuses_with_exit_2(cli: Callable[..., tuple[int, str, str]], uri: str) -> None:
    code, _, err = cli("serve", uri, "--port", "1")
    assert code == 2, err


@pytest.mark.parametrize(
    "name",
    ["../x", "..", "a/../../b", "/etc", "%2e%2e", "%252e%252e", "..\\x", "a#b", "//proc", "x/y"],
)
def test_dataset_and_model_names_cannot_walk_out(
    cli: Callable[..., tuple[int, str, str]], mlflow_home: Path, tmp_path: Path, name: str
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    code, _, err = cli("data", "snapshot", str(data), "--name", name)
    assert code == 2 and "dataset name" in err, err
    code, _, err = cli("register", "0123456789abcdef", "--name", name)
    assert code == 2 and "model name" in err, err
    assert not any(tmp_path.parent.glob("etc*")) and not any(mlflow_home.parent.glob("etc*"))


def test_a_dataset_folder_linking_out_is_not_copied(
    cli: Callable[..., tuple[int, str, str]], mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_text("a,b\n1,2\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("not data")
    (folder / "leak.txt").symlink_to(secret)
    code, _, err = cli("data", "snapshot", str(folder), "--name", f"linked-{unique}", "--copy")
    assert code == 2 and "links out of itself" in err, err
    assert not list(mlflow_home.rglob("leak.txt"))
    # without --copy only the manifest is kept, and links are not hashed: nothing leaves the folder
    code, _, err = cli("data", "snapshot", str(folder), "--name", f"linked-{unique}")
    assert code == 0, err


@pytest.mark.parametrize(
    "artifact", ["../model", "../../etc", "/etc", "a/../../b", "%2e%2e", "..\\m", "m#x", "a//b", ""]
)
def test_artifact_names_cannot_walk_out(
    cli: Callable[..., tuple[int, str, str]], mlflow_home: Path, artifact: str
) -> None:
    code, _, err = cli("register", "0123456789abcdef", "--name", "fine-name", "--artifact", artifact)
    assert code == 2, err
    assert "artifact name" in err


def test_run_artifact_paths_cannot_walk_out(mlflow_home: Path, tmp_path: Path) -> None:
    import lockgate

    note = tmp_path / "note.txt"
    note.write_text("x")
    with lockgate.track(run_name="artifacts") as run:
        for bad in ("../../escape", "/etc", "a/../../b", "%2e%2e/x"):
            with pytest.raises(UserError, match="not valid"):
                run.log_artifact(note, bad)
            with pytest.raises(UserError, match="not valid"):
                run.log_text("x", f"{bad}.txt")
        run.log_artifact(note, "notes")
    assert not (tmp_path.parent / "escape").exists()


def test_a_tampered_registered_artifact_is_refused_and_the_served_version_stays(
    gateway: Any, lockgate_home: Path, trained_run: Callable[..., str]
) -> None:
    """v1 and v2 registered through lockgate (digest recorded); one byte of v2's stored model file
    is flipped; deploying v2 is refused and v1 keeps answering."""
    from mlflow import MlflowClient

    from lockgate.settings import current_settings
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import register

    conn = connect()
    register(conn, trained_run("v1"), "tampered")
    register(conn, trained_run("v2", c=0.5), "tampered")
    uri = current_settings().tracking_uri
    client = MlflowClient(uri, registry_uri=uri)
    stored = Path(client.get_model_version_download_uri("tampered", "2").removeprefix("file://"))
    model_file = max((p for p in stored.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)

    def spec(candidate: str) -> dict[str, Any]:
        return {
            "name": "tamper",
            "variants": {"a": "models:/tampered/1", "b": candidate},
            "baseline": "a",
            "candidate": "b",
            "strategy": {"type": "direct"},
        }

    created = httpx.put(
        f"{gateway.url}/admin/deployments/tamper", json=spec("models:/tampered/1"), headers=AUTH, timeout=60
    )
    assert created.status_code == 201, created.text
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))
    response = httpx.put(
        f"{gateway.url}/admin/deployments/tamper", json=spec("models:/tampered/2"), headers=AUTH, timeout=60
    )
    assert response.status_code == 409, response.text
    assert "does not match its recorded digest" in response.json()["detail"]
    status = httpx.get(f"{gateway.url}/admin/deployments/tamper", headers=AUTH).json()
    assert {v["model_version"] for v in status["variants"].values()} == {"1"}
    assert {v["model_uri"] for v in status["variants"].values()} == {"models:/tampered/1"}
    row = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [1.0] * 30}]}
    answer = httpx.post(f"{gateway.url}/v2/models/tamper/infer", json=row)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-model-version"] == "1"
