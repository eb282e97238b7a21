"""``data:``: the holdout's profile against the reference (training) dataset's: schema, nulls, ranges
and skew."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from lockgate.gates.kinds import CheckKind, GateInputs, Spec, register_check_kind
from lockgate.gates.result import (
    CheckResult,
    Number,
    check_failed,
    check_passed,
    check_skipped,
)
from lockgate.gates.result import (
    format_number as _fmt,
)

__all__ = [
    "KIND",
    "DataSpec",
    "data_nulls",
    "data_ranges",
    "data_schema",
    "data_skew",
]


class DataSpec(Spec):
    """The holdout against the reference (training) dataset's profile: schema, nulls, ranges, skew."""

    check_schema: bool = True
    max_null_increase: float = Field(default=0.0, ge=0, le=1)
    range_tolerance: float | None = Field(default=0.1, ge=0)
    max_mean_shift_std: float | None = Field(default=0.5, gt=0)
    max_std_ratio: float | None = Field(default=2.0, gt=1)


def _table_columns(profile: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    columns: Mapping[str, Mapping[str, Any]] = profile.get("columns", {})
    return columns


def _kind_of(dtype: str | None) -> str:
    """int64 and float64 are both numbers: a column of whole numbers read with a null turns float."""
    text = str(dtype)
    if text.startswith(("int", "uint", "float", "Int", "UInt", "Float")):
        return "number"
    return text


def _numbers_of(info: Mapping[str, Any], *keys: str) -> tuple[float, ...] | None:
    """The named statistics of one profiled column as floats; None when any is missing."""
    values = []
    for key in keys:
        value = info.get(key)
        if value is None:
            return None
        values.append(float(value))
    return tuple(values)


def data_schema(
    holdout: Mapping[str, Any], reference: Mapping[str, Any], *, ignore: Sequence[str] = ()
) -> CheckResult:
    """The holdout has the reference's columns, with the same kinds of type."""
    name = "data schema"
    hold, ref = _table_columns(holdout), _table_columns(reference)
    missing = sorted(set(ref) - set(hold) - set(ignore))
    extra = sorted(set(hold) - set(ref) - set(ignore))
    changed = sorted(
        f"{c} {ref[c].get('dtype')} → {hold[c].get('dtype')}"
        for c in set(ref) & set(hold)
        if _kind_of(ref[c].get("dtype")) != _kind_of(hold[c].get("dtype"))
    )
    numbers = {
        "columns": len(hold),
        "missing": len(missing),
        "extra": len(extra),
        "type_changes": len(changed),
    }
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if changed:
        problems.append(f"type change(s) {', '.join(changed)}")
    if problems:
        return check_failed(name, "; ".join(problems), **numbers)
    note = f"; extra column(s) {', '.join(extra)}" if extra else ""
    return check_passed(name, f"{len(hold)} columns match the reference{note}", **numbers)


def data_nulls(
    holdout: Mapping[str, Any], reference: Mapping[str, Any], *, max_increase: float
) -> CheckResult:
    """No column's share of nulls rises over the reference's by more than ``max_increase``."""
    name = "data nulls"
    hold, ref = _table_columns(holdout), _table_columns(reference)
    hold_rows, ref_rows = max(int(holdout.get("rows", 0)), 1), max(int(reference.get("rows", 0)), 1)
    worst, worst_col, offenders = 0.0, "-", []
    for col in sorted(set(hold) & set(ref)):
        increase = int(hold[col].get("nulls", 0)) / hold_rows - int(ref[col].get("nulls", 0)) / ref_rows
        if increase > worst:
            worst, worst_col = increase, col
        if increase > max_increase:
            offenders.append(f"{col} +{increase:.2%}")
    numbers: dict[str, Number] = {
        "worst_increase": worst,
        "worst_column": worst_col,
        "max_increase": max_increase,
    }
    if offenders:
        return check_failed(name, "more nulls than the reference: " + ", ".join(offenders), **numbers)
    return check_passed(name, f"null shares within +{max_increase:.2%} of the reference", **numbers)


def data_ranges(holdout: Mapping[str, Any], reference: Mapping[str, Any], *, tolerance: float) -> CheckResult:
    """Numeric columns stay within the reference's [min, max], widened by ``tolerance`` × its span."""
    name = "data ranges"
    hold, ref = _table_columns(holdout), _table_columns(reference)
    offenders, checked = [], 0
    for col in sorted(set(hold) & set(ref)):
        ref_range, hold_range = _numbers_of(ref[col], "min", "max"), _numbers_of(hold[col], "min", "max")
        if ref_range is None or hold_range is None:
            continue
        (lo, hi), (h_lo, h_hi) = ref_range, hold_range
        checked += 1
        slack = tolerance * (hi - lo)
        if h_lo < lo - slack or h_hi > hi + slack:
            offenders.append(f"{col} [{_fmt(h_lo)}, {_fmt(h_hi)}] outside [{_fmt(lo)}, {_fmt(hi)}]")
    numbers: dict[str, Number] = {
        "columns_checked": checked,
        "out_of_range": len(offenders),
        "tolerance": tolerance,
    }
    if offenders:
        return check_failed(name, "values outside the reference range: " + "; ".join(offenders), **numbers)
    return check_passed(name, f"{checked} numeric columns within the reference range", **numbers)


def data_skew(
    holdout: Mapping[str, Any],
    reference: Mapping[str, Any],
    *,
    max_mean_shift_std: float | None,
    max_std_ratio: float | None,
) -> CheckResult:
    """Training/serving skew from two profiles: each numeric column's mean shift (in reference standard
    deviations) and the ratio of standard deviations."""
    name = "data skew"
    hold, ref = _table_columns(holdout), _table_columns(reference)
    worst_shift, worst_ratio, worst_col, offenders = 0.0, 1.0, "-", []
    for col in sorted(set(hold) & set(ref)):
        ref_stats, hold_stats = _numbers_of(ref[col], "mean", "std"), _numbers_of(hold[col], "mean", "std")
        if ref_stats is None or hold_stats is None:
            continue
        (mean_r, std_r), (mean_h, std_h) = ref_stats, hold_stats
        shift = abs(mean_h - mean_r) / std_r if std_r > 0 else (0.0 if mean_h == mean_r else math.inf)
        if std_r > 0 and std_h > 0:
            ratio = max(std_h / std_r, std_r / std_h)
        else:
            ratio = 1.0 if std_r == std_h else math.inf
        if shift > worst_shift:
            worst_shift, worst_col = shift, col
        worst_ratio = max(worst_ratio, ratio)
        if max_mean_shift_std is not None and shift > max_mean_shift_std:
            offenders.append(f"{col} mean moved {shift:.2f} sd")
        if max_std_ratio is not None and ratio > max_std_ratio:
            offenders.append(f"{col} spread ×{ratio:.2f}")
    numbers: dict[str, Number] = {
        "worst_mean_shift_std": worst_shift,
        "worst_column": worst_col,
        "worst_std_ratio": worst_ratio,
        "max_mean_shift_std": max_mean_shift_std,
        "max_std_ratio": max_std_ratio,
    }
    if offenders:
        return check_failed(
            name, "the holdout differs from the training data: " + "; ".join(offenders), **numbers
        )
    return check_passed(
        name,
        f"largest mean shift {worst_shift:.3f} sd ({worst_col}), spread ratio ≤ {worst_ratio:.3f}",
        **numbers,
    )


def _run_data(spec: DataSpec, inputs: GateInputs) -> list[CheckResult]:
    if inputs.holdout_profile is None:
        return [check_failed("data", "the holdout could not be profiled")]
    if inputs.reference_profile is None:
        return [
            check_skipped(
                "data",
                "no reference (training) dataset profile: set `reference: NAME@VERSION` in the policy or "
                "train with lockgate.track(datasets=[...])",
            )
        ]
    hold, ref = inputs.holdout_profile, inputs.reference_profile
    out = []
    if spec.check_schema:
        out.append(data_schema(hold, ref))
    out.append(data_nulls(hold, ref, max_increase=spec.max_null_increase))
    if spec.range_tolerance is not None:
        out.append(data_ranges(hold, ref, tolerance=spec.range_tolerance))
    if spec.max_mean_shift_std is not None or spec.max_std_ratio is not None:
        out.append(
            data_skew(hold, ref, max_mean_shift_std=spec.max_mean_shift_std, max_std_ratio=spec.max_std_ratio)
        )
    return out


KIND = register_check_kind(CheckKind("data", DataSpec, frozenset({"profiles"}), _run_data))
