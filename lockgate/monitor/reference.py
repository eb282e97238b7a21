"""The reference a deployment's live traffic is compared with: sketches of the training data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.monitor.sketch import CategoricalSketch, NumericSketch, Sketch, sketch_from_dict

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Reference", "reference_from_frame"]


@dataclass(frozen=True)
class Reference:
    """Per-feature sketches of a dataset version, named by its ref and digest."""

    dataset: str
    digest: str
    sketches: Mapping[str, Sketch] = field(default_factory=dict)
    # a sample of the table's rows (not serialised): the baseline model is run on them once, to get
    # the reference of its predictions
    rows: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def empty_live(self) -> dict[str, Sketch]:
        """Fresh live sketches cut like the reference's, ready to take traffic."""
        return {name: sketch.empty_like() for name, sketch in self.sketches.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "digest": self.digest,
            "sketches": {name: s.to_dict() for name, s in self.sketches.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        sketches = {name: sketch_from_dict(s) for name, s in data["sketches"].items()}
        return cls(str(data["dataset"]), str(data["digest"]), sketches)


def reference_from_frame(
    frame: pd.DataFrame,
    *,
    dataset: str = "",
    digest: str = "",
    bins: int = 20,
    max_categories: int = 50,
    exclude: tuple[str, ...] = (),
    keep_rows: int = 2000,
) -> Reference:
    """Numeric columns get quantile-binned sketches; every other column a categorical one.

    Up to ``keep_rows`` rows (a fixed random sample) are kept for the reference of predictions.
    """
    import pandas as pd

    sketches: dict[str, Sketch] = {}
    for name in frame.columns:
        if name in exclude:
            continue
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            sketches[str(name)] = NumericSketch.from_reference(column.to_numpy(dtype="float64"), bins)
        else:
            sketches[str(name)] = CategoricalSketch.from_reference(column.tolist(), max_categories)
    rows = frame.sample(n=keep_rows, random_state=0) if len(frame) > keep_rows else frame
    return Reference(dataset, digest, sketches, rows=rows if keep_rows > 0 else None)


def load_reference(ref: str, *, exclude: tuple[str, ...] = (), data_root: Path | None = None) -> Reference:
    """The reference of dataset version ``ref`` (``NAME@VERSION``, one CSV or Parquet table),
    its bytes checked against the digest recorded when it was versioned (found under ``data_root``
    when given, else where it was recorded, relative to this project)."""
    import pandas as pd

    from lockgate.errors import UserError
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import data_root_in_force, get_version, locate, project_root, verify_path

    version = get_version(connect(), ref)
    source = locate(version.source, project_root(), data_root_in_force(data_root))
    suffix = source.suffix.lower()
    if source.is_dir() or suffix not in (".csv", ".parquet", ".pq"):
        raise UserError(
            f"{version.ref} is not one CSV or Parquet table; drift needs one",
            hint="snapshot the table file itself as a dataset version",
        )
    verify_path(version, source)
    frame = pd.read_csv(source) if suffix == ".csv" else pd.read_parquet(source)
    return reference_from_frame(frame, dataset=version.ref, digest=version.digest, exclude=exclude)
