"""``slices:``: the metric on slices of the holdout (a pandas query, or each value of a column) against
the baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from lockgate.errors import ValidationError
from lockgate.gates.kinds import (
    CheckKind,
    GateInputs,
    Spec,
    no_predictions,
    predictions_for,
    register_check_kind,
)
from lockgate.gates.metrics import get_metric, known_metric
from lockgate.gates.result import (
    CheckResult,
    check_failed,
    check_passed,
    check_skipped,
)
from lockgate.gates.result import (
    format_number as _fmt,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KIND",
    "SliceSpec",
    "slice_against_baseline",
    "slice_masks",
]


class SliceSpec(Spec):
    """Rows picked by a pandas ``query`` rule, or one slice per value of ``column``."""

    name: str | None = None
    column: str | None = None
    query: str | None = None
    metric: str = "accuracy"
    margin: float = Field(default=0.05, ge=0)
    threshold: float | None = None
    min_rows: int = Field(default=30, ge=1)
    max_values: int = Field(default=20, ge=1, le=1000)

    _metric = field_validator("metric")(known_metric)

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        if (self.column is None) == (self.query is None):
            raise ValueError("give exactly one of column, query")
        return self

    @property
    def label(self) -> str:
        return self.name or self.query or str(self.column)


def slice_against_baseline(
    label: str,
    metric: str,
    rows: int,
    candidate: float,
    baseline: float | None,
    *,
    greater_is_better: bool,
    margin: float,
    min_rows: int,
    threshold: float | None = None,
) -> CheckResult:
    """One slice: no worse than the baseline by more than ``margin``, and above ``threshold`` if given."""
    name = f"slice {label} {metric}"
    numbers: dict[str, float | int | None] = {
        "rows": rows,
        "candidate": candidate,
        "baseline": baseline,
        "margin": margin,
    }
    if rows < min_rows:
        return check_skipped(name, f"{rows} rows, fewer than min_rows={min_rows}", **numbers)
    if math.isnan(candidate):
        return check_skipped(name, f"{metric} is undefined on this slice", **numbers)
    sign = 1.0 if greater_is_better else -1.0
    problems = []
    if baseline is not None and not math.isnan(baseline):
        change = sign * (candidate - baseline)
        numbers["change"] = change
        if change < -margin:
            problems.append(
                f"{metric} {_fmt(candidate)} vs champion {_fmt(baseline)} on {rows} rows: "
                f"worse by {-change:.4f}, more than the margin {margin}"
            )
    if threshold is not None:
        numbers["threshold"] = threshold
        if sign * (candidate - threshold) < 0:
            problems.append(f"{metric} {_fmt(candidate)} misses the threshold {_fmt(threshold)}")
    if problems:
        return check_failed(name, "; ".join(problems), **numbers)
    versus = f" vs champion {_fmt(baseline)}" if baseline is not None else ""
    return check_passed(name, f"{metric} {_fmt(candidate)}{versus} on {rows} rows", **numbers)


def slice_masks(spec: SliceSpec, frame: pd.DataFrame, where: str) -> list[tuple[str, npt.NDArray[np.bool_]]]:
    """(label, row mask) for each slice a rule defines: one for a query, one per value of a column."""
    if spec.query is not None:
        try:
            picked = frame.query(spec.query)
        except (KeyError, NameError, SyntaxError, ValueError, TypeError) as exc:
            raise ValidationError(
                f"{where}.query '{spec.query}' cannot run on the holdout: {exc}",
                hint="write a pandas query over the holdout's columns; quote names with spaces in "
                f"backticks; columns are {', '.join(map(str, frame.columns))}",
            ) from exc
        return [(spec.label, np.asarray(frame.index.isin(picked.index)))]
    column = str(spec.column)
    if column not in frame.columns:
        raise ValidationError(
            f"{where}.column '{column}' is not a column of the holdout",
            hint=f"columns are {', '.join(map(str, frame.columns))}",
        )
    values = frame[column].dropna().unique()
    if len(values) > spec.max_values:
        raise ValidationError(
            f"{where}.column '{column}' has {len(values)} distinct values, "
            f"more than max_values={spec.max_values}",
            hint='slice a continuous column with a query rule instead, e.g. query: "`age` >= 65"',
        )
    prefix = spec.name or column
    return [(f"{prefix}={value}", np.asarray(frame[column] == value)) for value in sorted(values, key=str)]


def _run_slices(specs: Sequence[SliceSpec], inputs: GateInputs) -> list[CheckResult]:
    out = []
    for index, spec in enumerate(specs):
        metric = get_metric(spec.metric)
        if inputs.y_true is None or inputs.candidate is None or inputs.frame is None:
            out.append(no_predictions(f"slice {spec.label} {metric.name}", inputs))
            continue
        candidate, baseline = (
            predictions_for(inputs.candidate, metric),
            predictions_for(inputs.baseline, metric),
        )
        if candidate is None:
            out.append(check_failed(f"slice {spec.label}", f"{metric.name} needs scores"))
            continue
        for label, mask in slice_masks(spec, inputs.frame, f"checks.slices[{index}]"):
            truth = inputs.y_true[mask]
            out.append(
                slice_against_baseline(
                    label,
                    metric.name,
                    int(mask.sum()),
                    metric(truth, candidate[mask]),
                    None if baseline is None else metric(truth, baseline[mask]),
                    greater_is_better=metric.greater_is_better,
                    margin=spec.margin,
                    min_rows=spec.min_rows,
                    threshold=spec.threshold,
                )
            )
    return out


KIND = register_check_kind(
    CheckKind("slices", SliceSpec, frozenset({"holdout", "baseline"}), _run_slices, is_list=True)
)
