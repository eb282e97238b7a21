"""``drift:``: the candidate's predictions against the champion's on the holdout (PSI and KS)."""

from __future__ import annotations

from pydantic import Field

from lockgate.gates.drift import DriftResult
from lockgate.gates.drift import prediction_drift as measure_drift
from lockgate.gates.kinds import CheckKind, GateInputs, Spec, no_baseline, no_predictions, register_check_kind
from lockgate.gates.result import CheckResult, check_failed, check_passed

__all__ = [
    "KIND",
    "DriftSpec",
    "prediction_drift",
]


class DriftSpec(Spec):
    """Candidate predictions against the champion's on the holdout: PSI and the KS statistic."""

    max_psi: float = Field(default=0.2, gt=0)
    max_ks: float = Field(default=0.2, gt=0, le=1)
    bins: int = Field(default=10, ge=2, le=100)


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


def _run_drift(spec: DriftSpec, inputs: GateInputs) -> list[CheckResult]:
    name = "prediction drift"
    if inputs.candidate is None:
        return [no_predictions(name, inputs)]
    if inputs.baseline is None:
        return [no_baseline(name, inputs)]
    cand, base = inputs.candidate, inputs.baseline
    if cand.scores is not None and base.scores is not None:
        on, current, reference = "score", cand.scores, base.scores
    else:
        on, current, reference = "label", cand.labels, base.labels
    drift = measure_drift(reference, current, bins=spec.bins)
    return [prediction_drift(drift, max_psi=spec.max_psi, max_ks=spec.max_ks, on=on)]


KIND = register_check_kind(CheckKind("drift", DriftSpec, frozenset({"holdout", "baseline"}), _run_drift))
