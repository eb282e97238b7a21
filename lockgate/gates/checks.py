"""The gate's checks as pure functions: plain values in (numbers, arrays, profiles, schemas, tags), one
frozen :class:`CheckResult` out. No I/O, no clock, no MLflow; :mod:`lockgate.gates.gate` gathers the
inputs and :mod:`lockgate.gates.kinds` maps each section of the policy file onto these functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lockgate.gates.comparison import BootstrapResult, McNemarResult
from lockgate.gates.drift import DriftResult
from lockgate.gates.result import CheckResult, Number, check_failed, check_passed, check_skipped
from lockgate.tracking.refs import dataset_label

__all__ = [
    "champion_bootstrap",
    "champion_mcnemar",
    "data_nulls",
    "data_ranges",
    "data_schema",
    "data_skew",
    "latency_budget",
    "metric_threshold",
    "prediction_drift",
    "provenance",
    "signature_compatibility",
    "size_budget",
    "slice_against_baseline",
    "task_metric",
]


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


# -- metrics --------------------------------------------------------------------------------------
def metric_threshold(
    metric: str,
    candidate: float,
    baseline: float | None,
    *,
    greater_is_better: bool,
    threshold: float | None = None,
    min_absolute_change: float | None = None,
    min_relative_change: float | None = None,
) -> CheckResult:
    """MLflow's ``MetricThreshold`` rules: an absolute threshold and a minimum change over the baseline.

    The change rules need a baseline; without one they are reported and not applied.
    """
    name = f"metric {metric}"
    sign = 1.0 if greater_is_better else -1.0
    numbers: dict[str, float | None] = {"candidate": candidate, "baseline": baseline}
    problems: list[str] = []
    if math.isnan(candidate):
        return check_failed(name, f"{metric} is undefined on the holdout (one class only?)", **numbers)
    if threshold is not None:
        numbers["threshold"] = threshold
        if sign * (candidate - threshold) < 0:
            word = "below" if greater_is_better else "above"
            problems.append(f"{metric} {_fmt(candidate)} is {word} the threshold {_fmt(threshold)}")
    unapplied = False
    if baseline is not None and not math.isnan(baseline):
        change = sign * (candidate - baseline)
        numbers["change"] = change
        if min_absolute_change is not None:
            numbers["min_absolute_change"] = min_absolute_change
            if change < min_absolute_change:
                problems.append(
                    f"{metric} beats the baseline by {_fmt(change)}, less than {_fmt(min_absolute_change)}"
                )
        if min_relative_change is not None:
            relative = change / abs(baseline) if baseline != 0 else (math.inf if change > 0 else -math.inf)
            numbers["relative_change"] = relative
            numbers["min_relative_change"] = min_relative_change
            if relative < min_relative_change:
                problems.append(
                    f"{metric} beats the baseline by {relative:.2%}, less than {min_relative_change:.2%}"
                )
    elif min_absolute_change is not None or min_relative_change is not None:
        unapplied = True
    if problems:
        return check_failed(name, "; ".join(problems), **numbers)
    message = f"{metric} {_fmt(candidate)}"
    if baseline is not None:
        message += f" (baseline {_fmt(baseline)})"
    if unapplied:
        message += "; no baseline, so the change rules were not applied"
    return check_passed(name, message, **numbers)


# -- against the champion -------------------------------------------------------------------------
def champion_mcnemar(result: McNemarResult, margin: float) -> CheckResult:
    """Pass when the accuracy difference's lower bound is above ``-margin`` (non-inferiority)."""
    name = "champion accuracy (mcnemar)"
    numbers = {
        "difference": result.difference,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "margin": margin,
        "p_worse": result.p_value,
        "candidate_only": result.candidate_only,
        "baseline_only": result.baseline_only,
        "n": result.n,
    }
    detail = (
        f"accuracy difference {result.difference:+.4f} ({1 - result.alpha:.0%} lower bound "
        f"{result.ci_low:+.4f}); {result.candidate_only} rows only the candidate got right, "
        f"{result.baseline_only} only the champion; p(worse)={result.p_value:.3g}"
    )
    if result.is_non_inferior(margin):
        return check_passed(name, detail, **numbers)
    # the reason is the lower bound, not the estimate (which may be well within the margin)
    why = (
        f"not shown within {margin} of the champion: the {1 - result.alpha:.0%} lower bound of the "
        f"accuracy difference, {result.ci_low:+.4f}, is below {-margin:+.4f}"
    )
    return check_failed(name, f"{why}; {detail}", **numbers)


def champion_bootstrap(result: BootstrapResult, margin: float) -> CheckResult:
    """Pass when the paired bootstrap's lower bound of the improvement is above ``-margin``."""
    name = f"champion {result.metric} (bootstrap)"
    numbers = {
        "candidate": result.candidate,
        "baseline": result.baseline,
        "improvement": result.improvement,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "margin": margin,
        "resamples": result.resamples_used,
        "seed": result.seed,
    }
    detail = (
        f"{result.metric} {_fmt(result.candidate)} vs {_fmt(result.baseline)}, improvement "
        f"{result.improvement:+.4f} ({1 - result.alpha:.0%} lower bound {result.ci_low:+.4f}, "
        f"{result.resamples_used} resamples)"
    )
    if result.is_non_inferior(margin):
        return check_passed(name, detail, **numbers)
    # the reason is the lower bound, not the estimate (which may be well within the margin)
    why = (
        f"not shown within {margin} of the champion: the {1 - result.alpha:.0%} lower bound of the "
        f"{result.metric} improvement, {result.ci_low:+.4f}, is below {-margin:+.4f}"
    )
    return check_failed(name, f"{why}; {detail}", **numbers)


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


# -- signature ------------------------------------------------------------------------------------
def _columns(schema: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(spec.get("name", index)): spec for index, spec in enumerate(schema)}


def _is_tensor(schema: Sequence[Mapping[str, Any]]) -> bool:
    return any(spec.get("type") == "tensor" for spec in schema)


def _shapes_compatible(old: Sequence[int], new: Sequence[int]) -> bool:
    if len(old) != len(new):
        return False
    return all(n == -1 or n == o for o, n in zip(old, new, strict=True))


def signature_compatibility(
    candidate: Sequence[Mapping[str, Any]] | None,
    baseline: Sequence[Mapping[str, Any]] | None,
    *,
    require_signature: bool = True,
) -> CheckResult:
    """Backwards compatibility of input schemas (MLflow ``Schema.to_dict()`` lists).

    Whatever a client sent to the baseline must still work: the candidate may drop columns and add
    optional ones, but not require a new column, make an optional one required, or change a type.
    """
    name = "signature"
    if candidate is None:
        if require_signature:
            return check_failed(name, "the candidate has no input signature; log the model with one")
        return check_skipped(name, "the candidate has no input signature")
    if baseline is None:
        return check_skipped(name, "no baseline signature to compare with", columns=len(candidate))
    if _is_tensor(candidate) or _is_tensor(baseline):
        if not (_is_tensor(candidate) and _is_tensor(baseline)) or len(candidate) != len(baseline):
            return check_failed(name, "the input changed between a tensor and a column schema")
        problems = []
        for index, (old, new) in enumerate(zip(baseline, candidate, strict=True)):
            old_spec, new_spec = old.get("tensor-spec", {}), new.get("tensor-spec", {})
            if old_spec.get("dtype") != new_spec.get("dtype"):
                problems.append(f"input {index} dtype {old_spec.get('dtype')} → {new_spec.get('dtype')}")
            if not _shapes_compatible(old_spec.get("shape", []), new_spec.get("shape", [])):
                problems.append(f"input {index} shape {old_spec.get('shape')} → {new_spec.get('shape')}")
        if problems:
            return check_failed(name, "incompatible tensor input: " + "; ".join(problems))
        return check_passed(name, "tensor inputs unchanged", inputs=len(candidate))
    new, old = _columns(candidate), _columns(baseline)
    added_required = sorted(c for c, s in new.items() if c not in old and s.get("required", True))
    now_required = sorted(
        c for c, s in new.items() if c in old and s.get("required", True) and not old[c].get("required", True)
    )
    type_changes = sorted(
        f"{c} {old[c].get('type')} → {s.get('type')}"
        for c, s in new.items()
        if c in old and s.get("type") != old[c].get("type")
    )
    removed = sorted(set(old) - set(new))
    added_optional = sorted(c for c, s in new.items() if c not in old and not s.get("required", True))
    numbers = {
        "columns_candidate": len(new),
        "columns_baseline": len(old),
        "new_required": len(added_required),
        "type_changes": len(type_changes),
        "removed": len(removed),
    }
    problems = []
    if added_required:
        problems.append(f"requires new column(s) {', '.join(added_required)}")
    if now_required:
        problems.append(f"makes optional column(s) required: {', '.join(now_required)}")
    if type_changes:
        problems.append(f"changes type(s): {', '.join(type_changes)}")
    if problems:
        return check_failed(name, "not backwards compatible: " + "; ".join(problems), **numbers)
    notes = []
    if removed:
        notes.append(f"no longer reads {', '.join(removed)}")
    if added_optional:
        notes.append(f"adds optional {', '.join(added_optional)}")
    summary = "compatible: " + "; ".join(notes) if notes else "unchanged"
    return check_passed(name, f"{summary} ({len(new)} columns)", **numbers)


# -- budgets --------------------------------------------------------------------------------------
def latency_budget(samples_ms: Sequence[Sequence[float]], budget_ms: float) -> CheckResult:
    """The median over repeats of each repeat's p95 single-request latency, against ``budget_ms``."""
    name = "latency p95"
    p95s = [float(np.percentile(np.asarray(s, dtype=np.float64), 95)) for s in samples_ms if len(s)]
    if not p95s:
        return check_failed(name, "no latency samples were taken")
    p95 = float(np.median(p95s))
    numbers = {
        "p95_ms": round(p95, 3),
        "budget_ms": budget_ms,
        "repeats": len(p95s),
        "requests": len(samples_ms[0]),
        "p95_min_ms": round(min(p95s), 3),
        "p95_max_ms": round(max(p95s), 3),
    }
    text = f"single-request p95 {p95:.2f} ms (median of {len(p95s)} repeats), budget {budget_ms:g} ms"
    if p95 > budget_ms:
        return check_failed(name, "over budget: " + text, **numbers)
    return check_passed(name, text, **numbers)


def size_budget(size_bytes: int, budget_bytes: int) -> CheckResult:
    name = "artifact size"
    numbers = {"size_bytes": size_bytes, "budget_bytes": budget_bytes}
    text = f"{size_bytes:,} bytes, budget {budget_bytes:,}"
    if size_bytes > budget_bytes:
        return check_failed(name, "over budget: " + text, **numbers)
    return check_passed(name, text, **numbers)


# -- data -----------------------------------------------------------------------------------------
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


# -- predictions ----------------------------------------------------------------------------------
def prediction_drift(result: DriftResult, *, max_psi: float, max_ks: float, on: str) -> CheckResult:
    """The candidate's predictions against the champion's on the same rows."""
    name = "prediction drift"
    numbers = {
        "psi": result.psi,
        "ks": result.ks_statistic,
        "ks_p_value": result.ks_p_value,
        "max_psi": max_psi,
        "max_ks": max_ks,
        "baseline_mean": result.reference_mean,
        "candidate_mean": result.current_mean,
    }
    text = f"{on}s: PSI {result.psi:.4f} (max {max_psi}), KS {result.ks_statistic:.4f} (max {max_ks})"
    if result.psi > max_psi or result.ks_statistic > max_ks:
        return check_failed(name, "the predictions moved away from the champion's: " + text, **numbers)
    return check_passed(name, text, **numbers)


# -- provenance -----------------------------------------------------------------------------------
def provenance(
    tags: Mapping[str, str],
    *,
    require_commit: bool = True,
    require_clean: bool = True,
    require_datasets: bool = True,
    require_verified: bool = True,
) -> CheckResult:
    """The training run recorded a git commit, a clean tree and its datasets' digests; with
    ``require_verified``, each digest taken from the bytes the run used (``lockgate.data`` or
    ``track(datasets=...)``, not a link recorded on trust) and matching the version it names."""
    name = "provenance"
    commit = tags.get("lockgate.git.commit", "none")
    is_dirty = tags.get("lockgate.git.dirty", "unknown")
    try:
        datasets = json.loads(tags.get("lockgate.datasets", "[]"))
    except json.JSONDecodeError:
        datasets = []
    with_digest = [d for d in datasets if isinstance(d, dict) and d.get("digest")]
    unverified = [dataset_label(d) for d in with_digest if not d.get("verified")]
    changed = [dataset_label(d) for d in with_digest if d.get("changed_from") is not None]
    numbers: dict[str, Number] = {"commit": commit[:12], "dirty": is_dirty, "datasets": len(with_digest)}
    if unverified:
        numbers["unverified"] = len(unverified)
    problems = []
    if require_commit and commit in ("", "none"):
        problems.append("no git commit recorded (train inside a git repository with lockgate.track)")
    if require_clean and is_dirty != "false":
        problems.append(
            "trained from a tree with uncommitted changes"
            if is_dirty == "true"
            else "the tree state is unknown"
        )
    if require_datasets and not with_digest:
        problems.append("no dataset digests recorded (pass datasets=[...] to lockgate.track)")
    if require_verified and unverified:
        problems.append(
            f"dataset link unverified: {', '.join(unverified)} (recorded without hashing the files the run "
            "used; retrain reading them with lockgate.data.load or lockgate.track(datasets=[...]), or "
            "set require_verified: false)"
        )
    if require_verified and changed:
        problems.append(
            f"trained on files that are not the version they name: {', '.join(changed)} (snapshot them "
            "with `lockgate data snapshot` and train on that version)"
        )
    if problems:
        return check_failed(name, "; ".join(problems), **numbers)
    digests = f"{len(with_digest)} dataset digest(s)"
    if unverified:
        digests += f", {len(unverified)} unverified"
    return check_passed(name, f"commit {commit[:12]}, clean tree, {digests}", **numbers)


# -- text and embedding models --------------------------------------------------------------------
def task_metric(
    name: str,
    metric: str,
    candidate: float,
    baseline: float | None,
    *,
    threshold: float | None,
    margin: float,
    n: int,
) -> CheckResult:
    """A task metric (greater is better) at least ``threshold`` and at most ``margin`` below the baseline."""
    numbers: dict[str, Number] = {"candidate": candidate, "baseline": baseline, "n": n}
    problems = []
    if threshold is not None:
        numbers["threshold"] = threshold
        if candidate < threshold:
            problems.append(f"{metric} {_fmt(candidate)} is below the threshold {_fmt(threshold)}")
    if baseline is not None:
        numbers["change"] = candidate - baseline
        numbers["margin"] = margin
        if candidate < baseline - margin:
            problems.append(
                f"{metric} {_fmt(candidate)} is below the baseline's {_fmt(baseline)} by more than {margin}"
            )
    if problems:
        return check_failed(name, "; ".join(problems), **numbers)
    message = f"{metric} {_fmt(candidate)} on {n} examples"
    if baseline is not None:
        message += f" (baseline {_fmt(baseline)})"
    return check_passed(name, message, **numbers)
