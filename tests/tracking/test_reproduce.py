from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import lockgate
import lockgate.data
from lockgate.tracking.connection import connect
from lockgate.tracking.datasets import snapshot
from lockgate.tracking.digest import sha256_tree
from lockgate.tracking.reproduce import check_data, plan_reproduction


def test_check_data_statuses(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a\n1\n")
    changed = tmp_path / "changed.csv"
    changed.write_text("a\n2\n")
    recorded = [
        {"name": "good", "version": 1, "digest": sha256_tree(good), "path": str(good), "verified": "read"},
        {"name": "changed", "version": 1, "digest": "0" * 64, "path": str(changed), "verified": "read"},
        {"name": "gone", "version": None, "digest": "1" * 64, "path": str(tmp_path / "gone.csv")},
        # a link recorded before lockgate hashed what a run used: on disk as recorded, but not proven
        {"name": "old", "version": 1, "digest": sha256_tree(good), "path": str(good)},
        {"name": "old-changed", "version": 1, "digest": "2" * 64, "path": str(changed)},
    ]
    checks = check_data(recorded)
    assert [c.status for c in checks] == ["ok", "changed", "missing", "unverified", "changed"]
    assert [c.label for c in checks[:3]] == ["good@1", "changed@1", "gone (unregistered)"]


def test_data_root_redirects(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "d.csv").write_text("a\n1\n")
    recorded = [
        {
            "name": "d",
            "version": 1,
            "digest": sha256_tree(copy / "d.csv"),
            "path": "/elsewhere/d.csv",
            "verified": "hashed",
        }
    ]
    assert check_data(recorded, data_root=copy)[0].status == "ok"


def test_the_data_root_comes_from_the_environment_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "d.csv").write_text("a\n1\n")
    digest = sha256_tree(copy / "d.csv")
    recorded = [{"name": "d", "version": 1, "digest": digest, "path": "/elsewhere/d.csv"}]
    assert check_data(recorded)[0].status == "missing"
    monkeypatch.setenv("LOCKGATE_DATA_ROOT", str(copy))
    assert check_data(recorded)[0].status == "unverified"


@pytest.mark.integration
def test_plan_reproduction(mlflow_home: Path, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x\n1\n")
    with lockgate.track(run_name="repro", datasets=[data]) as run:
        pass
    plan = plan_reproduction(connect(), run.run_id)
    assert plan.is_data_ok
    assert plan.python_recorded == plan.python_now
    assert plan.packages_recorded == plan.packages_now
    assert any("requirements.txt" in c for c in plan.commands)
    data.write_text("x\n2\n")
    assert not plan_reproduction(connect(), run.run_id).is_data_ok


@pytest.mark.integration
def test_reproduce_after_an_edit_names_the_files_and_old_links_read_unverified(
    mlflow_home: Path, tmp_path: Path, unique: str, cli: Callable[..., tuple[int, str, str]]
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n2,1\n")
    version = snapshot(connect(), data, f"tumours-{unique}")
    with lockgate.track(run_name="checked", datasets=[version.ref]) as run:
        lockgate.data.load(version.ref)
    code, out, _ = cli("reproduce", run.run_id)
    assert code == 0 and "the data on disk matches the recorded digests" in out
    # a run recorded by a lockgate that took the name on trust: same link, no "verified"
    with lockgate.track(run_name="on-trust", capture_env=False) as old:
        link = {k: v for k, v in run.datasets[0].to_dict().items() if k not in ("verified", "changed_from")}
        old.set_tag("lockgate.datasets", json.dumps([link]))
    code, out, _ = cli("reproduce", old.run_id)
    assert code == 0
    assert "? unverified" in out and f"unverified: {version.ref}" in out
    assert "matches the recorded digests" not in out

    data.write_text("x,y\n1,0\n2,0\n")
    plan = plan_reproduction(connect(), run.run_id)
    assert [(c.status, c.differences) for c in plan.data] == [("changed", "train.csv changed")]
    code, _, err = cli("reproduce", run.run_id)
    assert code == 2
    assert f"{version.ref} at '{data}' is changed (train.csv changed)" in " ".join(err.split())
