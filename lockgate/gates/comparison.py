"""Comparing a candidate with the champion on the same rows: McNemar's exact test and a paired bootstrap.

Both answer the non-inferiority question a gate asks — "is the candidate worse than the champion by
more than ``margin``?" — and both are paired: each holdout row is scored by both models, so the
row-to-row difficulty cancels and far fewer rows are needed than comparing two independent samples.
Differences are oriented so that positive means the candidate is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest

from lockgate.errors import ValidationError
from lockgate.gates.metrics import Metric

__all__ = ["BootstrapResult", "McNemarResult", "mcnemar_exact", "paired_bootstrap"]

FloatArray = npt.NDArray[np.float64]


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValidationError(f"alpha={alpha} must lie in (0, 0.5)", hint="0.05 is the usual choice")


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correct/incorrect outcomes.

    ``candidate_only`` rows only the candidate got right, ``baseline_only`` rows only the baseline got
    right. ``p_value`` is the exact one-sided binomial p-value for "the candidate is less accurate"
    (``binomtest(candidate_only, candidate_only + baseline_only, 0.5, alternative="less")``);
    ``ci_low``/``ci_high`` bound the accuracy difference (candidate - baseline) at one-sided level
    ``1 - alpha`` each, from the Clopper-Pearson interval of the discordant split.
    """

    n: int
    candidate_only: int
    baseline_only: int
    difference: float
    p_value: float
    p_value_two_sided: float
    ci_low: float
    ci_high: float
    alpha: float

    def is_non_inferior(self, margin: float) -> bool:
        """True when the candidate is, with confidence ``1 - alpha``, at most ``margin`` less accurate."""
        return self.ci_low >= -margin


def mcnemar_exact(
    candidate_correct: npt.ArrayLike, baseline_correct: npt.ArrayLike, *, alpha: float = 0.05
) -> McNemarResult:
    """Exact McNemar test from two boolean arrays (is each row right?) of equal length."""
    _check_alpha(alpha)
    cand = np.asarray(candidate_correct, dtype=bool).ravel()
    base = np.asarray(baseline_correct, dtype=bool).ravel()
    if cand.shape != base.shape or cand.size == 0:
        raise ValidationError(
            f"McNemar's test needs two equal, non-empty outcome arrays (got {cand.size} and {base.size})",
            hint="score both models on the same holdout rows",
        )
    n = int(cand.size)
    candidate_only = int(np.sum(cand & ~base))
    baseline_only = int(np.sum(base & ~cand))
    discordant = candidate_only + baseline_only
    difference = (candidate_only - baseline_only) / n
    if discordant == 0:
        return McNemarResult(n, 0, 0, 0.0, 1.0, 1.0, 0.0, 0.0, alpha)
    less = binomtest(candidate_only, discordant, 0.5, alternative="less")
    both = binomtest(candidate_only, discordant, 0.5, alternative="two-sided")
    interval = both.proportion_ci(confidence_level=1.0 - 2.0 * alpha, method="exact")
    scale = discordant / n
    return McNemarResult(
        n=n,
        candidate_only=candidate_only,
        baseline_only=baseline_only,
        difference=difference,
        p_value=float(less.pvalue),
        p_value_two_sided=float(both.pvalue),
        ci_low=float(scale * (2.0 * interval.low - 1.0)),
        ci_high=float(scale * (2.0 * interval.high - 1.0)),
        alpha=alpha,
    )


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of ``improvement = ±(metric(candidate) - metric(baseline))``, + meaning better.

    ``ci_low``/``ci_high`` are the ``alpha`` and ``1 - alpha`` percentiles of the resampled
    improvements (a one-sided ``1 - alpha`` bound each); ``resamples_used`` leaves out resamples where
    the metric is undefined (one class only, for ROC AUC).
    """

    metric: str
    candidate: float
    baseline: float
    improvement: float
    ci_low: float
    ci_high: float
    resamples: int
    resamples_used: int
    alpha: float
    seed: int

    def is_non_inferior(self, margin: float) -> bool:
        return bool(np.isfinite(self.ci_low)) and self.ci_low >= -margin


def paired_bootstrap(
    metric: Metric,
    y_true: npt.ArrayLike,
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> BootstrapResult:
    """Resample rows with replacement (the same rows for both models); the same seed, the same result."""
    _check_alpha(alpha)
    if resamples < 10:
        raise ValidationError(f"resamples={resamples} is too few", hint="use 1000 or more")
    truth = np.asarray(y_true, dtype=np.float64).ravel()
    cand = np.asarray(candidate, dtype=np.float64).ravel()
    base = np.asarray(baseline, dtype=np.float64).ravel()
    if not (truth.size == cand.size == base.size) or truth.size == 0:
        raise ValidationError(
            f"the bootstrap needs equal, non-empty arrays (got {truth.size}, {cand.size}, {base.size})",
            hint="score both models on the same holdout rows",
        )
    sign = 1.0 if metric.greater_is_better else -1.0
    cand_value, base_value = metric(truth, cand), metric(truth, base)
    rng = np.random.default_rng(seed)
    improvements = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, truth.size, truth.size)
        improvements[i] = sign * (metric(truth[idx], cand[idx]) - metric(truth[idx], base[idx]))
    finite = improvements[np.isfinite(improvements)]
    if finite.size:
        low, high = (float(q) for q in np.quantile(finite, [alpha, 1.0 - alpha]))
    else:
        low = high = float("nan")
    return BootstrapResult(
        metric=metric.name,
        candidate=cand_value,
        baseline=base_value,
        improvement=sign * (cand_value - base_value),
        ci_low=low,
        ci_high=high,
        resamples=resamples,
        resamples_used=int(finite.size),
        alpha=alpha,
        seed=seed,
    )
