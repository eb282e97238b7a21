"""Power and sample size of fixed-horizon tests of two proportions and two means.

Normal approximations, as in statsmodels and most calculators: for proportions the null uses the
pooled rate and the alternative each arm's own rate (Fleiss, "Statistical methods for rates and
proportions", 1981, ch. 3); for means the standard deviation is taken as known. ``ratio`` is
``n_candidate / n_baseline`` (0.05 / 0.95 for a 5% canary); sizes are for the baseline arm.
A sequential test needs more samples than this at the MDE in the worst case but far fewer when the
true effect is larger (``docs/statistics.md``, ``benchmarks/bench_stats.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy.stats import norm

from lockgate.errors import ValidationError
from lockgate.stats._arguments import Alternative, check_alpha, check_alternative, check_positive

__all__ = [
    "power_two_means",
    "power_two_proportions",
    "sample_size_two_means",
    "sample_size_two_proportions",
]


def _z_alpha(alpha: float, alternative: Alternative) -> float:
    return float(norm.ppf(1.0 - (alpha / 2.0 if alternative == "two-sided" else alpha)))


def _check_rates(baseline_rate: float, mde: float) -> float:
    if not 0.0 < baseline_rate < 1.0:
        raise ValidationError(f"baseline_rate={baseline_rate} is outside (0, 1)")
    if mde == 0.0 or not math.isfinite(mde):
        raise ValidationError(f"mde={mde} must be a non-zero finite difference in rate")
    candidate_rate = baseline_rate + mde
    if not 0.0 < candidate_rate < 1.0:
        raise ValidationError(
            f"baseline_rate + mde = {candidate_rate} is outside (0, 1)",
            hint="mde is an absolute difference: 0.005 is half a percentage point",
        )
    return candidate_rate


def _common(alpha: float, alternative: str, ratio: float) -> Alternative:
    check_alpha(alpha)
    check_positive(ratio, "ratio")
    return check_alternative(alternative)


def _power_from_z(shift: float, z_a: float, scale: float, alternative: Alternative) -> float:
    """P(reject) when the standardised estimate is N(shift, scale²) and the cut-off is ``z_a``."""
    if alternative == "greater":
        return float(norm.sf((z_a - shift) / scale))
    if alternative == "less":
        return float(norm.cdf((-z_a - shift) / scale))
    return float(norm.sf((z_a - shift) / scale) + norm.cdf((-z_a - shift) / scale))


def power_two_proportions(
    n_baseline: int,
    baseline_rate: float,
    mde: float,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
) -> float:
    """Power of the two-proportion z test with ``n_baseline`` and ``ratio * n_baseline`` trials."""
    alt = _common(alpha, alternative, ratio)
    p_c = _check_rates(baseline_rate, mde)
    if n_baseline < 1:
        raise ValidationError(f"n_baseline={n_baseline} must be 1 or more")
    n_b, n_c = float(n_baseline), float(n_baseline) * ratio
    pooled = (baseline_rate * n_b + p_c * n_c) / (n_b + n_c)
    se_null = math.sqrt(pooled * (1 - pooled) * (1 / n_b + 1 / n_c))
    se_alt = math.sqrt(baseline_rate * (1 - baseline_rate) / n_b + p_c * (1 - p_c) / n_c)
    return _power_from_z(mde / se_null, _z_alpha(alpha, alt), se_alt / se_null, alt)


def power_two_means(
    n_baseline: int,
    sd: float,
    mde: float,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
) -> float:
    """Power of the two-sample z test on means with common standard deviation ``sd``."""
    alt = _common(alpha, alternative, ratio)
    check_positive(sd, "sd")
    if mde == 0.0 or not math.isfinite(mde):
        raise ValidationError(f"mde={mde} must be a non-zero finite difference")
    if n_baseline < 1:
        raise ValidationError(f"n_baseline={n_baseline} must be 1 or more")
    se = sd * math.sqrt(1.0 / n_baseline + 1.0 / (n_baseline * ratio))
    return _power_from_z(mde / se, _z_alpha(alpha, alt), 1.0, alt)


def _smallest_n(first_guess: float, power_at: Callable[[int], float], power: float) -> int:
    """The smallest n whose power reaches ``power``, starting from the closed-form guess."""
    n = max(1, math.ceil(first_guess))
    while power_at(n) < power:
        n += 1
    while n > 1 and power_at(n - 1) >= power:
        n -= 1
    return n


def _check_power(power: float) -> None:
    if not 0.0 < power < 1.0:
        raise ValidationError(f"power={power} is outside (0, 1)", hint="0.8 is customary")


def sample_size_two_proportions(
    baseline_rate: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
) -> int:
    """Smallest baseline-arm size at which the two-proportion z test reaches ``power``."""
    alt = _common(alpha, alternative, ratio)
    _check_power(power)
    p_c = _check_rates(baseline_rate, mde)
    pooled = (baseline_rate + ratio * p_c) / (1.0 + ratio)
    z_a, z_b = _z_alpha(alpha, alt), float(norm.ppf(power))
    guess = (
        z_a * math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
        + z_b * math.sqrt(baseline_rate * (1 - baseline_rate) + p_c * (1 - p_c) / ratio)
    ) ** 2 / mde**2
    return _smallest_n(
        guess,
        lambda n: power_two_proportions(n, baseline_rate, mde, alpha=alpha, alternative=alt, ratio=ratio),
        power,
    )


def sample_size_two_means(
    sd: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
) -> int:
    """Smallest baseline-arm size at which the two-sample z test on means reaches ``power``."""
    alt = _common(alpha, alternative, ratio)
    _check_power(power)
    check_positive(sd, "sd")
    if mde == 0.0 or not math.isfinite(mde):
        raise ValidationError(f"mde={mde} must be a non-zero finite difference")
    z_a, z_b = _z_alpha(alpha, alt), float(norm.ppf(power))
    guess = (z_a + z_b) ** 2 * sd**2 * (1 + 1 / ratio) / mde**2
    return _smallest_n(
        guess,
        lambda n: power_two_means(n, sd, mde, alpha=alpha, alternative=alt, ratio=ratio),
        power,
    )
