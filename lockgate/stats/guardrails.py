"""Guardrails with margins: is the candidate harmfully worse, or shown no worse than a margin?

Each check compares a ratio metric of the two arms (errors per request, mean log-latency,
conversions per outcome, mean outcome) from per-unit sums (:mod:`lockgate.stats.units`), so sticky
users are analysed as users. The interval is the normal-mixture confidence sequence of
:func:`~lockgate.stats.sequential.normal_mixture_radius` around the difference, with its variance
estimated from the data (the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy
and Ramdas, Annals of Statistics 2024): valid at every look, however often the controller looks.

Every check answers in "worse by" terms (candidate minus baseline in the harmful direction), with
two one-sided bounds, each a half-normal mixture confidence sequence at the check's level (so a
check's chance of a false harm, and separately of a false non-inferiority, is at most its alpha):

- **harm**: the interval lies above zero *and* the estimate is beyond the margin: the candidate is
  worse, by more than the team accepts. A difference that is real but inside the margin is not harm.
- **non-inferior**: the interval's upper end is below the margin: the candidate is at most the
  margin worse. This is the evidence a stage needs to advance.
- **superior** (for an A/B decision): the upper end is below zero; **futile**: the lower end is
  above ``-min_improvement``, so the improvement hoped for is ruled out.

With a relative margin ``m`` the non-inferiority statistic is ``c - (1 + m) b`` (or ``(1 - m)`` for a
metric where higher is better), a linear contrast with its own variance, so the baseline's noise
is counted. Latency is compared as the ratio of geometric means (mean log-latency): defined for
any latency distribution with a finite log-variance, heavy tails included (log of a Pareto(1) is
exponential), and every request counts, not only those past a threshold recomputed at every look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lockgate.errors import ValidationError
from lockgate.stats.sequential import normal_mixture_log_lr, one_sided_radius
from lockgate.stats.units import UnitTotals, ratio_contrast, share_variance

__all__ = ["Check", "Margin", "SrmCheck", "check_errors", "check_latency", "check_primary", "check_srm"]


@dataclass(frozen=True)
class Margin:
    """How much worse the candidate may be: ``relative`` (0.1 = 10% of the baseline's value) or
    ``absolute`` (in the metric's own unit: a fraction for rates, ms for latency)."""

    kind: Literal["relative", "absolute"]
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("relative", "absolute"):
            raise ValidationError(f"margin kind '{self.kind}' is unknown", hint="use relative or absolute")
        if not math.isfinite(self.value) or self.value < 0:
            raise ValidationError(f"margin {self.value} is not a number >= 0", hint="e.g. 0.1")

    def on(self, baseline_value: float) -> float:
        """The margin in the metric's unit, given the baseline's value."""
        return self.value * abs(baseline_value) if self.kind == "relative" else self.value

    def describe(self, unit: str = "") -> str:
        if self.kind == "relative":
            return f"{self.value:.0%}" if self.value >= 0.01 else f"{self.value:.2%}"
        return f"{self.value:g}{unit}"


@dataclass(frozen=True)
class Check:
    """One guardrail at one look, in "worse by" terms (positive: the candidate is worse)."""

    name: str
    baseline: float
    candidate: float
    worse_by: float
    ci_low: float
    ci_high: float
    margin: float
    alpha: float
    is_harm: bool
    is_noninferior: bool
    is_superior: bool = False
    is_futile: bool = False

    def numbers(self) -> dict[str, float]:
        prefix = self.name
        return {
            f"{prefix}_baseline": self.baseline,
            f"{prefix}_candidate": self.candidate,
            f"{prefix}_worse_by": self.worse_by,
            f"{prefix}_worse_ci_low": self.ci_low,
            f"{prefix}_worse_ci_high": self.ci_high,
            f"{prefix}_margin": self.margin,
        }


@dataclass(frozen=True)
class SrmCheck:
    """The candidate's share of requests against the expected share, with an always-valid p."""

    share: float
    expected: float
    p_value: float
    requests: int


def _contrast(
    y_c: np.ndarray,
    n_c: np.ndarray,
    y_b: np.ndarray,
    n_b: np.ndarray,
    factor: float,
    spread: tuple[float, float] | None,
) -> tuple[float, float]:
    """The contrast and its variance, never below the request-level variance: for a 0/1 metric
    (``spread`` None) the smoothed binomial one (no errors yet is not certainty of none), else
    ``spread`` = (candidate, baseline) variance of one observation."""
    estimate, variance = ratio_contrast(y_c, n_c, y_b, n_b, baseline_factor=factor)
    total_c, total_b = float(n_c.sum()), float(n_b.sum())
    if spread is None:
        rate_c = (float(y_c.sum()) + 0.5) / (total_c + 1.0)
        rate_b = (float(y_b.sum()) + 0.5) / (total_b + 1.0)
        spread = (rate_c * (1 - rate_c), rate_b * (1 - rate_b))
    floor = spread[0] / total_c + factor * factor * spread[1] / total_b
    return estimate, max(variance, floor)


def _check(
    name: str,
    sums: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    worse_sign: float,
    margin: Margin | float,
    alpha: float,
    scale: float,
    spread: tuple[float, float] | None,
    min_improvement: float = 0.0,
) -> Check:
    y_c, n_c, y_b, n_b = (np.asarray(a, dtype=np.float64) for a in sums)
    value_c = float(y_c.sum() / n_c.sum())
    value_b = float(y_b.sum() / n_b.sum())
    tau2 = scale * scale
    difference, variance = _contrast(y_c, n_c, y_b, n_b, 1.0, spread)
    worse = worse_sign * difference
    radius = one_sided_radius(variance, tau2, alpha)
    if isinstance(margin, Margin):
        margin_abs = margin.on(value_b)
        if margin.kind == "relative":
            factor = 1.0 + worse_sign * margin.value
            shifted, shifted_var = _contrast(y_c, n_c, y_b, n_b, factor, spread)
            noninferior = worse_sign * shifted + one_sided_radius(shifted_var, tau2, alpha) < 0
        else:
            noninferior = worse + radius < margin_abs
    else:
        margin_abs = margin
        noninferior = worse + radius < margin_abs
    return Check(
        name=name,
        baseline=value_b,
        candidate=value_c,
        worse_by=worse,
        ci_low=worse - radius,
        ci_high=worse + radius,
        margin=margin_abs,
        alpha=alpha,
        is_harm=bool(worse - radius > 0 and worse > margin_abs),
        is_noninferior=bool(noninferior),
        is_superior=bool(worse + radius < 0),
        is_futile=bool(worse - radius > -min_improvement),
    )


def check_errors(
    baseline: UnitTotals, candidate: UnitTotals, margin: Margin, *, alpha: float, scale: float = 0.005
) -> Check:
    """Error rate: worse means more errors per request. ``scale``: the difference the interval is
    tightest for (valid at any)."""
    sums = (candidate.errors, candidate.requests, baseline.errors, baseline.requests)
    return _check("errors", sums, worse_sign=1.0, margin=margin, alpha=alpha, scale=scale, spread=None)


def check_latency(
    baseline: UnitTotals,
    candidate: UnitTotals,
    margin: Margin,
    *,
    alpha: float,
    scale: float = 0.1,
    log_variances: tuple[float, float] = (0.0, 0.0),
) -> Check:
    """Typical latency: the ratio of geometric means, compared on the log scale.

    A relative margin ``m`` is ``log(1 + m)``; an absolute margin of ``x`` ms is ``log((g + x) / g)``
    at the baseline's geometric mean ``g``. ``log_variances`` (candidate, baseline): the variance of
    one request's log-latency, the floor under the per-unit variance. The numbers come back as
    ratios and milliseconds.
    """
    sums = (candidate.log_latency, candidate.requests, baseline.log_latency, baseline.requests)
    geo_b = math.exp(float(baseline.log_latency.sum() / baseline.requests.sum()))
    if margin.kind == "relative":
        log_margin = math.log1p(margin.value)
    else:
        log_margin = math.log((geo_b + margin.value) / geo_b)
    raw = _check(
        "latency", sums, worse_sign=1.0, margin=log_margin, alpha=alpha, scale=scale, spread=log_variances
    )
    return Check(
        name="latency",
        baseline=geo_b,
        candidate=math.exp(raw.candidate),
        worse_by=math.exp(raw.worse_by),
        ci_low=math.exp(raw.ci_low),
        ci_high=math.exp(raw.ci_high),
        margin=math.exp(log_margin),
        alpha=alpha,
        is_harm=raw.is_harm,
        is_noninferior=raw.is_noninferior,
    )


def check_primary(
    baseline: UnitTotals,
    candidate: UnitTotals,
    *,
    metric: Literal["conversions", "outcome_mean"],
    higher_is_better: bool,
    margin: Margin,
    min_improvement: Margin,
    alpha: float,
    scale: float,
    outcome_variances: tuple[float, float] = (0.0, 0.0),
) -> Check | None:
    """The business metric from joined feedback (None until both arms have outcomes).
    ``outcome_variances`` (candidate, baseline): one outcome's variance, for ``outcome_mean``."""
    sums: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    if metric == "conversions":
        sums = (
            candidate.conversion_successes,
            candidate.conversion_trials,
            baseline.conversion_successes,
            baseline.conversion_trials,
        )
    else:
        sums = (candidate.outcome_sum, candidate.outcome_count, baseline.outcome_sum, baseline.outcome_count)
    if sums[1].sum() < 2 or sums[3].sum() < 2:
        return None
    base_value = float(sums[2].sum() / sums[3].sum())
    return _check(
        "primary",
        sums,
        worse_sign=-1.0 if higher_is_better else 1.0,
        margin=margin,
        alpha=alpha,
        scale=scale,
        spread=None if metric == "conversions" else outcome_variances,
        min_improvement=min_improvement.on(base_value),
    )


def check_srm(baseline: UnitTotals, candidate: UnitTotals, expected_share: float) -> SrmCheck:
    """Sample-ratio check on assignment units: the candidate's share of requests, with the
    cluster-robust variance of keys hashed into units (a heavy user moves the share; that is not a
    mismatch). Always-valid p from the normal mixture, scale a tenth of the share's spread."""
    n_c = candidate.requests.astype(np.float64)
    n_b = baseline.requests.astype(np.float64)
    total = float(n_c.sum() + n_b.sum())
    if total == 0 or not 0.0 < expected_share < 1.0:
        return SrmCheck(0.0, expected_share, 1.0, int(total))
    share = float(n_c.sum()) / total
    variance = max(share_variance(n_c, n_b, expected_share), expected_share * (1 - expected_share) / total)
    tau = 0.1 * math.sqrt(expected_share * (1 - expected_share))
    log_lr = float(normal_mixture_log_lr(share - expected_share, variance, tau * tau))
    return SrmCheck(share, expected_share, math.exp(-max(log_lr, 0.0)), int(total))
