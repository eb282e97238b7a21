from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

Cli = Callable[..., tuple[int, str, str]]


@pytest.mark.integration
def test_monitor_drift_against_a_dataset_version(
    cli: Cli, mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    rng = np.random.default_rng(0)
    train = tmp_path / "train.csv"
    pd.DataFrame({"x": rng.normal(0, 1, 2000), "kind": rng.choice(["a", "b"], 2000), "y": 0}).to_csv(
        train, index=False
    )
    code, _, err = cli("data", "snapshot", str(train), "--name", f"d-{unique}")
    assert code == 0, err

    same = tmp_path / "same.csv"
    pd.DataFrame({"x": rng.normal(0, 1, 1000), "kind": rng.choice(["a", "b"], 1000)}).to_csv(
        same, index=False
    )
    code, out, _ = cli(
        "monitor", "drift", "--reference", f"d-{unique}@1", "--current", str(same), "--exclude", "y"
    )
    assert code == 0, out
    assert "no drift" in out

    moved = tmp_path / "moved.csv"
    pd.DataFrame({"x": rng.normal(1.0, 1, 1000), "kind": rng.choice(["a", "b"], 1000)}).to_csv(
        moved, index=False
    )
    code, out, _ = cli(
        "monitor", "drift", "--reference", f"d-{unique}@1", "--current", str(moved), "--exclude", "y"
    )
    assert code == 1
    assert "1 feature(s) drifted: x" in out

    code, _, err = cli("monitor", "drift", "--reference", f"d-{unique}@1", "--current", str(moved))
    assert code == 2 and "lacks column(s) y" in err
    code, _, err = cli(
        "monitor", "drift", "--reference", f"d-{unique}@1", "--current", str(tmp_path / "no.csv")
    )
    assert code == 2 and "does not exist" in err


@pytest.mark.integration
def test_serve_loads_its_drift_reference_from_a_dataset_version(
    cli: Cli, mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    from lockgate.errors import UserError
    from lockgate.monitor.reference import load_reference

    train = tmp_path / "train.csv"
    pd.DataFrame({"x": np.arange(500.0), "kind": ["a", "b"] * 250}).to_csv(train, index=False)
    code, _, err = cli("data", "snapshot", str(train), "--name", f"r-{unique}")
    assert code == 0, err
    reference = load_reference(f"r-{unique}@1")
    assert reference.dataset == f"r-{unique}@1" and reference.digest
    assert {name: s.kind for name, s in reference.sketches.items()} == {"x": "numeric", "kind": "categorical"}
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    code, _, err = cli("data", "snapshot", str(folder), "--name", f"f-{unique}")
    assert code == 0, err
    with pytest.raises(UserError, match="is not one CSV or Parquet table"):
        load_reference(f"f-{unique}@1")


def test_monitor_drift_takes_a_deployment_or_a_reference_and_a_file_not_both(cli: Cli) -> None:
    code, _, err = cli("monitor", "drift")
    assert code == 2 and "a served deployment, or --reference and --current" in err
    code, _, err = cli("monitor", "drift", "churn", "--reference", "d@1", "--current", "x.csv")
    assert code == 2 and "not both" in err
    code, _, err = cli("monitor", "drift", "--reference", "d@1")
    assert code == 2 and "--current" in err
