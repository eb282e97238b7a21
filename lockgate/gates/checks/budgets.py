"""``budgets:``: single-request p95 latency and artifact size against their budgets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
from pydantic import Field, model_validator

from lockgate.gates.kinds import CheckKind, GateInputs, Spec, no_predictions, register_check_kind
from lockgate.gates.result import CheckResult, check_failed, check_passed

__all__ = [
    "KIND",
    "BudgetsSpec",
    "latency_budget",
    "size_budget",
]


class BudgetsSpec(Spec):
    """Single-request p95 latency (median over repeats, in-process) and artifact size."""

    latency_p95_ms: float | None = Field(default=None, gt=0)
    size_bytes: int | None = Field(default=None, gt=0)
    requests: int = Field(default=30, ge=20, le=10_000)
    repeats: int = Field(default=3, ge=1, le=100)
    warmup: int = Field(default=3, ge=0, le=1000)

    @model_validator(mode="after")
    def _one_budget(self) -> Self:
        if self.latency_p95_ms is None and self.size_bytes is None:
            raise ValueError("give at least one of latency_p95_ms, size_bytes")
        return self


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


def _run_budgets(spec: BudgetsSpec, inputs: GateInputs) -> list[CheckResult]:
    out = []
    if spec.latency_p95_ms is not None:
        if inputs.latency_ms is None:
            out.append(no_predictions("latency p95", inputs))
        else:
            out.append(latency_budget(inputs.latency_ms, spec.latency_p95_ms))
    if spec.size_bytes is not None:
        if inputs.size_bytes is None:
            out.append(check_failed("artifact size", "the artifact size is unknown"))
        else:
            out.append(size_budget(inputs.size_bytes, spec.size_bytes))
    return out


KIND = register_check_kind(CheckKind("budgets", BudgetsSpec, frozenset({"latency", "size"}), _run_budgets))
