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
