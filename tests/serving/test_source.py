"""Model sources: registry URIs resolve and verify; a tampered artifact is refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lockgate.errors import IntegrityError, NotFound
from lockgate.serving.source import resolve_source
from lockgate.tracking.digest import sha256_tree
from tests.support import start_server

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(logged_model: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged_model.tracking_uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return logged_model


def test_alias_and_version_resolve_and_verify(registry: Any, tmp_path: Path) -> None:
    by_alias = resolve_source("models:/cancer@champion", download_dir=tmp_path / "a")
    assert (by_alias.name, by_alias.version, by_alias.is_verified) == ("cancer", "1", True)
    assert by_alias.sha256 == sha256_tree(registry.path)
    by_version = resolve_source("models:/cancer/1", download_dir=tmp_path / "b")
    assert by_version.sha256 == by_alias.sha256


def test_a_version_without_digest_needs_allow_unverified(registry: Any, tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="--allow-unverified"):
        resolve_source("models:/cancer/2", download_dir=tmp_path / "a")
    source = resolve_source("models:/cancer/2", allow_unverified=True, download_dir=tmp_path / "b")
    assert not source.is_verified


def test_unknown_versions_and_paths_are_404(registry: Any, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no version 9"):
        resolve_source("models:/cancer/9", download_dir=tmp_path)
    with pytest.raises(NotFound, match="no alias 'gone'"):
        resolve_source("models:/cancer@gone", download_dir=tmp_path)
    with pytest.raises(NotFound):
        resolve_source(str(tmp_path / "missing"))


def test_one_flipped_byte_is_refused(registry: Any, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(registry.path, tampered)
    weights = max(tampered.iterdir(), key=lambda f: f.stat().st_size)  # the serialized model
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    expected = sha256_tree(registry.path)
    with pytest.raises(IntegrityError) as caught:
        resolve_source(str(tampered), expected_sha256=expected)
    assert caught.value.detail["expected"] == expected
    assert resolve_source(str(registry.path), expected_sha256=expected).is_verified


def test_a_tampered_registry_artifact_is_refused(registry: Any, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(registry.tracking_uri, registry_uri=registry.tracking_uri)
    version = client.get_model_version("cancer", "1")
    client.set_model_version_tag("cancer", "1", "lockgate.artifact_sha256", "0" * 64)
    try:
        with pytest.raises(IntegrityError, match="does not match its recorded digest"):
            resolve_source("models:/cancer/1", download_dir=tmp_path)
    finally:
        client.set_model_version_tag(
            "cancer", "1", "lockgate.artifact_sha256", version.tags["lockgate.artifact_sha256"]
        )


def test_a_path_that_is_not_a_model_is_refused_before_it_is_read(tmp_path: Path) -> None:
    import time

    from lockgate.errors import UserError
    from lockgate.serving.source import resolve_source

    (tmp_path / "notes.txt").write_text("not a model")
    for uri in ("/", "/proc/self/root", "file:///etc", str(tmp_path), str(tmp_path / "notes.txt")):
        started = time.perf_counter()
        with pytest.raises(UserError, match="is not a model: nothing there was read"):
            resolve_source(uri)
        assert time.perf_counter() - started < 5  # the root was not walked


def test_the_line_a_server_says_names_the_version_and_the_digest(tmp_path: Path) -> None:
    from lockgate.serving.source import ModelSource, describe_source

    digest = "1a2b3c4d5e6f" + "0" * 52
    registered = ModelSource("models:/m@champion", tmp_path, "m", "3", digest, True)
    assert describe_source(registered) == "verified models:/m@champion (version 3) sha256 1a2b3c4d5e6f"
    unrecorded = ModelSource("models:/m/2", tmp_path, "m", "2", digest, False)
    assert describe_source(unrecorded) == (
        "not verified models:/m/2 (version 2) sha256 1a2b3c4d5e6f: no digest was recorded at registration"
    )
    local = ModelSource("model", tmp_path, "m", digest[:12], digest, False)
    said = describe_source(local)
    assert said == f"not verified {tmp_path} sha256 1a2b3c4d5e6f: no --sha256 to compare with"


def test_serve_says_the_checksum_was_verified_and_removes_its_download_on_sigterm(
    registry: Any, tmp_path: Path
) -> None:
    import signal

    import httpx

    tmp, log = tmp_path / "tmp", tmp_path / "serve.log"
    tmp.mkdir()
    env = {
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "TMPDIR": str(tmp),  # the server's temporary files, so the test sees what it leaves
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    server = start_server(
        ["models:/cancer@champion"],
        token=None,
        env=env,
        unset=["MLFLOW_REGISTRY_URI"],
        cwd=tmp_path,
        log_to=log,
        log_level="info",
    )
    try:
        body = {"dataframe_split": {"columns": registry.columns, "data": [registry.features[0].tolist()]}}
        answer = httpx.post(f"{server.url}/invocations", json=body, timeout=30)
        assert answer.json() == {"predictions": [int(registry.labels[0])]}
        assert len(list(tmp.rglob("MLmodel"))) == 1  # downloaded under the server's temporary folder
        assert server.stop(signal.SIGTERM, timeout_s=30) == 0
    finally:
        server.stop(signal.SIGKILL)
    said = log.read_text()
    digest = sha256_tree(registry.path)
    assert f"INFO:     verified models:/cancer@champion (version 1) sha256 {digest[:12]}" in said, said
    assert not list(tmp.rglob("MLmodel")), "the downloaded model was left behind"
