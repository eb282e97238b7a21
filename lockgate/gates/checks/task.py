"""The decision the task kinds share (text classification, embedding retrieval, prompts): a task metric
against a threshold and the baseline."""

from __future__ import annotations

from lockgate.gates.result import CheckResult, Number, check_failed, check_passed
from lockgate.gates.result import format_number as _fmt

__all__ = [
    "task_metric",
]


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
