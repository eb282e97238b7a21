"""Fixed-horizon tests for reports: Welch's t, the two-proportion z test, Mann-Whitney U.

These are valid once, at a sample size fixed in advance; looked at repeatedly they raise false
alarms far above alpha (see ``docs/statistics.md``), which is why live decisions use
:mod:`lockgate.stats.sequential`. Every difference is ``candidate - baseline``; ``greater`` tests
whether the candidate's value is higher. Results equal scipy's (and statsmodels' formulas).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from lockgate.errors import ValidationError
from lockgate.stats._arguments import Alternative, check_alpha, check_alternative
from lockgate.stats.accumulators import Moments, Proportion

__all__ = [
    "FixedResult",
    "mann_whitney_binary",
    "mann_whitney_u",
    "two_proportion_z_p",
    "two_proportion_z_test",
    "welch_t_test",
]


@dataclass(frozen=True)
class FixedResult:
    """A fixed-horizon test: statistic, p-value, the estimate and its ``1 - alpha`` interval.

    One-sided tests give a one-sided interval (one end infinite), as scipy does. ``df`` is the
    degrees of freedom of a t test, NaN for normal-approximation tests.
    """

    statistic: float
    p_value: float
    estimate: float
    ci_low: float
    ci_high: float
    alpha: float
    alternative: str
    df: float = math.nan

    @property
    def is_significant(self) -> bool:
        return self.p_value <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "p_value": self.p_value,
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "alpha": self.alpha,
            "alternative": self.alternative,
            "df": self.df,
        }


def _tail_p(z: float, alternative: Alternative, sf: Any) -> float:
    if alternative == "greater":
        return float(sf(z))
    if alternative == "less":
        return float(sf(-z))
    return float(min(1.0, 2.0 * sf(abs(z))))


def _interval(
    estimate: float, se: float, alpha: float, alternative: Alternative, ppf: Any
) -> tuple[float, float]:
    if alternative == "two-sided":
        half = float(ppf(1.0 - alpha / 2.0)) * se
        return estimate - half, estimate + half
    half = float(ppf(1.0 - alpha)) * se
    if alternative == "greater":
        return estimate - half, math.inf
    return -math.inf, estimate + half


def welch_t_test(
    baseline: Moments,
    candidate: Moments,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> FixedResult:
    """Welch's unequal-variance t test on ``candidate.mean - baseline.mean`` from summary stats.

    Equals ``scipy.stats.ttest_ind(candidate, baseline, equal_var=False)`` and its
    ``confidence_interval``.
    """
    check_alpha(alpha)
    check_alternative(alternative)
    if baseline.count < 2 or candidate.count < 2:
        raise ValidationError(
            f"Welch's t test needs 2 or more values per arm; got {baseline.count} (baseline) "
            f"and {candidate.count} (candidate)",
            hint="collect more outcomes before testing",
        )
    var_b = baseline.variance / baseline.count
    var_c = candidate.variance / candidate.count
    se = math.sqrt(var_b + var_c)
    estimate = candidate.mean - baseline.mean
    if se == 0.0:
        raise ValidationError("both arms have zero variance: the t statistic is undefined")
    df = (var_b + var_c) ** 2 / (var_b**2 / (baseline.count - 1) + var_c**2 / (candidate.count - 1))
    statistic = estimate / se
    dist = student_t(df)
    low, high = _interval(estimate, se, alpha, alternative, dist.ppf)
    return FixedResult(
        statistic=statistic,
        p_value=_tail_p(statistic, alternative, dist.sf),
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        alpha=alpha,
        alternative=alternative,
        df=df,
    )


def two_proportion_z_test(
    baseline: Proportion,
    candidate: Proportion,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> FixedResult:
    """z test on ``candidate.rate - baseline.rate``.

    The p-value uses the pooled standard error (statsmodels ``proportions_ztest``); the interval is
    the unpooled Wald interval (statsmodels ``confint_proportions_2indep(method="wald")``). With no
    successes or no failures in either arm the pooled error is 0 and the p-value 1.
    """
    check_alpha(alpha)
    check_alternative(alternative)
    if baseline.trials < 1 or candidate.trials < 1:
        raise ValidationError(
            f"a two-proportion test needs trials in both arms; got {baseline.trials} (baseline) "
            f"and {candidate.trials} (candidate)",
            hint="wait for traffic in both arms",
        )
    n_b, n_c = baseline.trials, candidate.trials
    p_b, p_c = baseline.rate, candidate.rate
    pooled = (baseline.successes + candidate.successes) / (n_b + n_c)
    se_pooled = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_b + 1.0 / n_c))
    estimate = p_c - p_b
    statistic = estimate / se_pooled if se_pooled > 0 else 0.0
    p_value = _tail_p(statistic, alternative, norm.sf) if se_pooled > 0 else 1.0
    se = math.sqrt(p_b * (1 - p_b) / n_b + p_c * (1 - p_c) / n_c)
    low, high = _interval(estimate, se, alpha, alternative, norm.ppf)
    return FixedResult(statistic, p_value, estimate, low, high, alpha, alternative)


def two_proportion_z_p(
    baseline_successes: npt.ArrayLike,
    baseline_trials: npt.ArrayLike,
    candidate_successes: npt.ArrayLike,
    candidate_trials: npt.ArrayLike,
    alternative: Alternative = "two-sided",
) -> npt.NDArray[np.float64]:
    """p-values of :func:`two_proportion_z_test`, vectorised (simulations); 1 where undefined."""
    x_b = np.asarray(baseline_successes, dtype=np.float64)
    n_b = np.asarray(baseline_trials, dtype=np.float64)
    x_c = np.asarray(candidate_successes, dtype=np.float64)
    n_c = np.asarray(candidate_trials, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x_b + x_c) / (n_b + n_c)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_b + 1.0 / n_c))
        z = (x_c / n_c - x_b / n_b) / se
        if alternative == "greater":
            p = norm.sf(z)
        elif alternative == "less":
            p = norm.sf(-z)
        else:
            p = np.minimum(1.0, 2.0 * norm.sf(np.abs(z)))
    out: npt.NDArray[np.float64] = np.where(np.isfinite(z) & (se > 0), p, 1.0)
    return out


def _mwu_p(
    u_candidate: npt.NDArray[np.float64],
    n_b: npt.NDArray[np.float64],
    n_c: npt.NDArray[np.float64],
    tie_term: npt.NDArray[np.float64],
    alternative: Alternative,
) -> npt.NDArray[np.float64]:
    """Normal approximation with tie and continuity corrections (scipy's ``asymptotic`` method)."""
    n = n_b + n_c
    mean = n_b * n_c / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(n_b * n_c / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0))))
        if alternative == "greater":
            u = u_candidate
        elif alternative == "less":
            u = n_b * n_c - u_candidate
        else:
            u = np.maximum(u_candidate, n_b * n_c - u_candidate)
        z = (u - mean - 0.5) / sd
        p = norm.sf(z)
    if alternative == "two-sided":
        p = 2.0 * p
    out: npt.NDArray[np.float64] = np.where(sd > 0, np.clip(p, 0.0, 1.0), 1.0)
    return out


def mann_whitney_u(
    baseline_values: npt.ArrayLike,
    candidate_values: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
) -> FixedResult:
    """Mann-Whitney U (asymptotic, tie- and continuity-corrected), equal to
    ``scipy.stats.mannwhitneyu(candidate, baseline, method="asymptotic")``.

    ``statistic`` is the candidate's U; ``estimate`` is U / (n_b n_c), the probability that a
    candidate value exceeds a baseline value (ties count half). No interval is given (NaN).
    """
    check_alpha(alpha)
    check_alternative(alternative)
    base = np.asarray(baseline_values, dtype=np.float64).ravel()
    cand = np.asarray(candidate_values, dtype=np.float64).ravel()
    if base.size == 0 or cand.size == 0:
        raise ValidationError(
            f"Mann-Whitney needs values in both arms; got {base.size} and {cand.size}",
            hint="wait for data in both arms",
        )
    ranks = rankdata(np.concatenate([cand, base]))
    u_candidate = float(ranks[: cand.size].sum()) - cand.size * (cand.size + 1) / 2.0
    _, tie_counts = np.unique(ranks, return_counts=True)
    tie_term = float((tie_counts.astype(np.float64) ** 3 - tie_counts).sum())
    p = _mwu_p(
        np.array(u_candidate),
        np.array(float(base.size)),
        np.array(float(cand.size)),
        np.array(tie_term),
        alternative,
    )
    return FixedResult(
        statistic=u_candidate,
        p_value=float(p),
        estimate=u_candidate / (base.size * cand.size),
        ci_low=math.nan,
        ci_high=math.nan,
        alpha=alpha,
        alternative=alternative,
    )


def mann_whitney_binary(
    baseline_successes: npt.ArrayLike,
    baseline_trials: npt.ArrayLike,
    candidate_successes: npt.ArrayLike,
    candidate_trials: npt.ArrayLike,
    alternative: Alternative = "two-sided",
) -> npt.NDArray[np.float64]:
    """Mann-Whitney p-values for 0/1 data given as counts, vectorised (for simulations).

    Equals :func:`mann_whitney_u` on the expanded 0/1 arrays; 1 where an arm is empty.
    """
    x_b = np.asarray(baseline_successes, dtype=np.float64)
    n_b = np.asarray(baseline_trials, dtype=np.float64)
    x_c = np.asarray(candidate_successes, dtype=np.float64)
    n_c = np.asarray(candidate_trials, dtype=np.float64)
    ones = x_b + x_c
    zeros = n_b + n_c - ones
    # zeros share rank (zeros + 1) / 2, ones share zeros + (ones + 1) / 2
    rank_sum = (n_c - x_c) * (zeros + 1.0) / 2.0 + x_c * (zeros + (ones + 1.0) / 2.0)
    u_candidate = rank_sum - n_c * (n_c + 1.0) / 2.0
    tie_term = (zeros**3 - zeros) + (ones**3 - ones)
    p = _mwu_p(u_candidate, n_b, n_c, tie_term, alternative)
    out: npt.NDArray[np.float64] = np.where((n_b > 0) & (n_c > 0), p, 1.0)
    return out
