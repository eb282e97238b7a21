"""What ``lockgate optimize`` makes candidates from and judges them on: the data file's rows (and
labels) in the model's input columns, or sentences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError
from lockgate.tracking.registry import RegisteredVersion

__all__ = ["Inputs", "data_file", "input_columns", "read_rows"]

_TABLES = (".csv", ".parquet", ".pq")


# -- data -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """What candidates are made from and judged on: rows (and labels), or sentences."""

    train: Any
    held_out: Any
    labels: npt.NDArray[Any] | None = None
    source: str = ""  # which rows or sentences judge, in words (holdout.describe_split)


def read_rows(path: Path, target: str, columns: list[str] | None) -> tuple[Any, Any]:
    import pandas as pd

    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    labels = frame[target].to_numpy() if target in frame.columns else None
    features = frame.drop(columns=[target]) if target in frame.columns else frame
    if columns:
        missing = [c for c in columns if c not in features.columns]
        if missing:
            raise UserError(
                f"the data file '{path}' lacks the model's input columns {', '.join(missing[:5])}",
                hint="pass --data with the columns the model was trained on",
            )
        features = features[columns]
    return features.to_numpy(dtype=np.float64), labels


def data_file(version: RegisteredVersion, data: Path | None) -> Path:
    if data is not None:
        if not data.is_file():
            raise UserError(f"data file '{data}' does not exist", hint="pass a CSV or Parquet file")
        return data
    for dataset in version.datasets:
        path = Path(str(dataset.get("path") or ""))
        if path.is_file() and path.suffix.lower() in _TABLES:
            return path
    raise UserError(
        f"{version.ref} records no data file on this machine to judge the optimized model on",
        hint="pass --data FILE.csv (with the label column named by --target)",
    )


def input_columns(signature: Any) -> list[str] | None:
    if signature is None or signature.inputs is None:
        return None
    names = signature.inputs.input_names()
    return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None
