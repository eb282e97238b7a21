"""What a gate says: one frozen :class:`CheckResult` per check, gathered in a :class:`GateReport`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CheckResult",
    "GateReport",
    "Number",
    "check_failed",
    "check_passed",
    "check_skipped",
    "format_number",
]

Number = float | int | str | bool | None


def format_number(value: float | None) -> str:
    """A number as a check's sentence writes it: four significant digits, ``-`` when there is none."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: its name, whether it passed, the numbers behind it and a sentence.

    ``is_skipped`` marks a check that could not run for a reason that is not the model's fault (no
    champion yet, no reference dataset); a skipped check does not fail the gate.
    """

    name: str
    passed: bool
    numbers: Mapping[str, Number] = field(default_factory=dict)
    message: str = ""
    kind: str = ""
    is_skipped: bool = False

    @property
    def status(self) -> str:
        if self.is_skipped:
            return "skipped"
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "passed": self.passed,
            "numbers": {k: _json_number(v) for k, v in self.numbers.items()},
            "message": self.message,
        }


def _json_number(value: Number) -> Number:
    # JSON has no NaN or infinity; a missing number reads as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_passed(name: str, message: str, **numbers: Number) -> CheckResult:
    return CheckResult(name, True, numbers, message)


def check_failed(name: str, message: str, **numbers: Number) -> CheckResult:
    return CheckResult(name, False, numbers, message)


def check_skipped(name: str, message: str, **numbers: Number) -> CheckResult:
    return CheckResult(name, True, numbers, message, is_skipped=True)


@dataclass(frozen=True)
class GateReport:
    """Every check's result for one candidate, against one baseline, under one policy."""

    model: str
    baseline: str | None
    policy_sha256: str
    results: tuple[CheckResult, ...]
    started_ms: int = 0
    duration_s: float = 0.0
    seed: int = 0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def to_dict(self) -> dict[str, Any]:
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for result in self.results:
            counts[result.status] += 1
        return {
            "model": self.model,
            "baseline": self.baseline,
            "verdict": self.verdict,
            "policy_sha256": self.policy_sha256,
            "seed": self.seed,
            "started_ms": self.started_ms,
            "duration_s": round(self.duration_s, 3),
            "counts": counts,
            "checks": [r.to_dict() for r in self.results],
        }
