from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.quickstart import MARKER, prepare_home


def test_fresh_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    home = tmp_path / "mine"
    home.mkdir()
    (home / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="was not made by `lockgate quickstart`"):
        prepare_home(home, is_fresh=True)
    assert (home / "precious.txt").exists()


def test_fresh_replaces_its_own_home(tmp_path: Path) -> None:
    home = tmp_path / "qs"
    prepare_home(home, is_fresh=False)
    (home / "old.db").write_text("x")
    prepare_home(home, is_fresh=True)
    assert not (home / "old.db").exists()
    assert (home / MARKER).exists()


@pytest.mark.integration
@pytest.mark.slow
def test_quickstart_runs_the_lifecycle(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lockgate.cli.main import main

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LOCKGATE_EXPERIMENT"):
        monkeypatch.delenv(var, raising=False)
    # --home sets LOCKGATE_HOME for the process; setting it here first makes monkeypatch restore it.
    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "qs"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["quickstart", "--home", str(tmp_path / "qs"), "--fresh"])
    out = capsys.readouterr().out
    assert info.value.code == 0, out
    assert "breast-cancer@1" in out
    assert "quickstart summary" in out
    assert "(sha256 verified)" in out and "p99" in out
    assert "lockgate validate breast-cancer-classifier@2 against breast-cancer-classifier@1" in out
    assert "the gate against the champion" in out and "champion accuracy (mcnemar)" in out
    assert "optimization trade-offs for breast-cancer-classifier@1" in out
    found = re.search(
        r"registered breast-cancer-classifier@(\d+) with lineage to breast-cancer-classifier@1", out
    )
    assert found, out
    onnx_version = int(found.group(1))
    # the canary is of the champion's ONNX version
    assert f"canary of breast-cancer-classifier v{onnx_version} behind the champion v1" in out
    assert "after 250 requests [stepping]" in out
    assert "promoted: stage 2 of 2 passed" in out or "rolled_back: policy:" in out
    assert not (tmp_path / "mlruns").exists(), "artifacts must stay under LOCKGATE_HOME"

    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import get_model_version

    version = get_model_version(connect(), "breast-cancer-classifier@champion")
    # the registry's champion is whatever the canary decided, and the summary says so
    assert version.version == (onnx_version if "promoted: stage 2 of 2" in out else 1)
    assert f"champion: breast-cancer-classifier@{version.version}" in out
    assert version.artifact_sha256
    assert version.datasets[0]["name"] == "breast-cancer"
