"""``champion:``: non-inferiority against the champion on the same rows (exact McNemar or paired
bootstrap)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from lockgate.gates.comparison import BootstrapResult, McNemarResult, mcnemar_exact, paired_bootstrap
from lockgate.gates.kinds import (
    CheckKind,
    GateInputs,
    Spec,
    no_baseline,
    no_predictions,
    predictions_for,
    register_check_kind,
)
from lockgate.gates.metrics import get_metric, known_metric
from lockgate.gates.result import CheckResult, check_failed, check_passed
from lockgate.gates.result import format_number as _fmt

__all__ = [
    "KIND",
    "ChampionSpec",
    "champion_bootstrap",
    "champion_mcnemar",
]


class ChampionSpec(Spec):
    """Non-inferiority against the baseline on the same rows: worse by at most ``margin``.

    ``mcnemar`` (exact binomial on discordant pairs) is for accuracy and error rate; ``bootstrap``
    (paired percentile interval, seeded) works for any metric.
    """

    metric: str = "accuracy"
    test: Literal["mcnemar", "bootstrap"] = "bootstrap"
    margin: float = Field(default=0.0, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    resamples: int = Field(default=1000, ge=100, le=100_000)

    _metric = field_validator("metric")(known_metric)

    @model_validator(mode="after")
    def _mcnemar_reads_labels(self) -> Self:
        if self.test == "mcnemar" and self.metric not in ("accuracy", "error_rate"):
            raise ValueError(
                f"test 'mcnemar' compares accuracy; use test: bootstrap for metric '{self.metric}'"
            )
        return self


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


def _run_champion(specs: Sequence[ChampionSpec], inputs: GateInputs) -> list[CheckResult]:
    out = []
    for spec in specs:
        metric = get_metric(spec.metric)
        name = f"champion {metric.name} ({spec.test})"
        if inputs.y_true is None or inputs.candidate is None:
            out.append(no_predictions(name, inputs))
            continue
        if inputs.baseline is None:
            out.append(no_baseline(name, inputs))
            continue
        if spec.test == "mcnemar":
            result = mcnemar_exact(
                inputs.candidate.labels == inputs.y_true,
                inputs.baseline.labels == inputs.y_true,
                alpha=spec.alpha,
            )
            out.append(champion_mcnemar(result, spec.margin))
            continue
        candidate, baseline = (
            predictions_for(inputs.candidate, metric),
            predictions_for(inputs.baseline, metric),
        )
        if candidate is None or baseline is None:
            out.append(check_failed(name, f"{metric.name} needs scores from both models"))
            continue
        boot = paired_bootstrap(
            metric,
            inputs.y_true,
            candidate,
            baseline,
            resamples=spec.resamples,
            alpha=spec.alpha,
            seed=inputs.seed,
        )
        out.append(champion_bootstrap(boot, spec.margin))
    return out


KIND = register_check_kind(
    CheckKind("champion", ChampionSpec, frozenset({"holdout", "baseline"}), _run_champion, is_list=True)
)
