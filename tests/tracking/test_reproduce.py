from __future__ import annotations

from pathlib import Path

import pytest

import lockgate
from lockgate.tracking.connection import connect
from lockgate.tracking.digest import sha256_tree
from lockgate.tracking.reproduce import check_data, plan_reproduction


def test_check_data_statuses(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a\n1\n")
    changed = tmp_path / "changed.csv"
    changed.write_text("a\n2\n")
    recorded = [
        {"name": "good", "version": 1, "digest": sha256_tree(good), "path": str(good)},
        {"name": "changed", "version": 1, "digest": "0" * 64, "path": str(changed)},
        {"name": "gone", "version": None, "digest": "1" * 64, "path": str(tmp_path / "gone.csv")},
    ]
    assert [c.status for c in check_data(recorded)] == ["ok", "changed", "missing"]


def test_data_root_redirects(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "d.csv").write_text("a\n1\n")
    recorded = [
        {"name": "d", "version": 1, "digest": sha256_tree(copy / "d.csv"), "path": "/elsewhere/d.csv"}
    ]
    assert check_data(recorded, data_root=copy)[0].status == "ok"


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
