"""``metrics:``: a metric on the holdout against a threshold and the baseline (MLflow's
``MetricThreshold``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Self

from pydantic import Field, field_validator, model_validator

from lockgate.gates.kinds import (
    CheckKind,
    GateInputs,
    Spec,
    no_predictions,
    predictions_for,
    register_check_kind,
)
from lockgate.gates.metrics import get_metric, known_metric
from lockgate.gates.result import CheckResult, check_failed, check_passed
from lockgate.gates.result import format_number as _fmt

__all__ = [
    "KIND",
    "MetricSpec",
    "metric_threshold",
]


class MetricSpec(Spec):
    """A metric on the holdout, in the terms of MLflow's ``MetricThreshold``.

    ``threshold``: the candidate's value must be at least this (at most, when lower is better).
    ``min_absolute_change`` / ``min_relative_change``: the candidate must beat the baseline by at
    least this much (a positive number; relative to ``abs(baseline)``, between 0 and 1).
    """

    metric: str
    threshold: float | None = None
    min_absolute_change: float | None = Field(default=None, gt=0)
    min_relative_change: float | None = Field(default=None, gt=0, le=1)
    greater_is_better: bool | None = None

    _metric = field_validator("metric")(known_metric)

    @model_validator(mode="after")
    def _one_threshold(self) -> Self:
        if self.threshold is None and self.min_absolute_change is None and self.min_relative_change is None:
            raise ValueError("give at least one of threshold, min_absolute_change, min_relative_change")
        return self


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


def _run_metrics(specs: Sequence[MetricSpec], inputs: GateInputs) -> list[CheckResult]:
    out = []
    for spec in specs:
        metric = get_metric(spec.metric)
        name = f"metric {metric.name}"
        candidate = predictions_for(inputs.candidate, metric)
        if inputs.y_true is None or inputs.candidate is None:
            out.append(no_predictions(name, inputs))
            continue
        if candidate is None:
            out.append(check_failed(name, f"{metric.name} needs scores, and the model gives only labels"))
            continue
        baseline = predictions_for(inputs.baseline, metric)
        out.append(
            metric_threshold(
                metric.name,
                metric(inputs.y_true, candidate),
                None if baseline is None else metric(inputs.y_true, baseline),
                greater_is_better=(
                    metric.greater_is_better if spec.greater_is_better is None else spec.greater_is_better
                ),
                threshold=spec.threshold,
                min_absolute_change=spec.min_absolute_change,
                min_relative_change=spec.min_relative_change,
            )
        )
    return out


KIND = register_check_kind(
    CheckKind("metrics", MetricSpec, frozenset({"holdout", "baseline"}), _run_metrics, is_list=True)
)
