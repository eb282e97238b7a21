"""Model sources: registry URIs resolve and verify; a tampered artifact is refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lockgate.errors import IntegrityError, NotFound
from lockgate.serving.source import resolve_source
from lockgate.tracking.digest import sha256_tree

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
