"""Per-variant analysis of a deployment's counters: what ``lockgate analyze`` prints.

For each variant against the baseline: the metric's count and mean, the lift (difference of means
or rates) with its always-valid confidence sequence and p-value from
:class:`~lockgate.stats.sequential.MixtureSPRT`, the error rate with the one-sided error guardrail
of :class:`~lockgate.stats.sequential.RateRatioSPRT`, and a verdict. Both tests are anytime-valid,
so the analysis may be rerun at any moment during a rollout without inflating false alarms; the
two tests per candidate share ``alpha`` by Bonferroni (:func:`~lockgate.stats.multiple.bonferroni`).

The metric is the conversions (0/1 feedback), the outcome mean (numeric feedback) or, without any
feedback, the error rate itself (lower is better). The mixing scale ``mde`` only tunes which effect
sizes are found fastest; the guarantees hold for any value. By default it is 10% of the baseline's
rate (at least 0.001) or of the baseline's standard deviation.

Pure: counters in, a frozen :class:`Analysis` out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from lockgate.errors import ValidationError
from lockgate.stats._arguments import check_alpha, check_positive
from lockgate.stats.accumulators import Moments, Proportion, VariantStats
from lockgate.stats.multiple import bonferroni
from lockgate.stats.sequential import MixtureSPRT, RateRatioSPRT

__all__ = ["METRICS", "Analysis", "Metric", "VariantAnalysis", "analyze_variants"]

Metric = Literal["auto", "conversions", "outcome", "errors"]
METRICS: tuple[str, ...] = ("auto", "conversions", "outcome", "errors")

_ERROR_RATE_MDE = 0.5


@dataclass(frozen=True)
class VariantAnalysis:
    """One variant's numbers. ``lift`` is ``mean - baseline mean``; ``[ci_low, ci_high]`` its
    always-valid confidence sequence at ``1 - alpha``; ``p_value`` the always-valid two-sided
    p-value of no difference; ``error_p`` that of "the error rate is not higher" (guardrail)."""

    variant: str
    is_baseline: bool
    requests: int
    errors: int
    error_rate: float
    n: int
    mean: float | None
    lift: float | None = None
    relative_lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    error_ratio: float | None = None
    error_p: float | None = None
    verdict: str = "baseline"

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class Analysis:
    """The analysis of every variant; ``metric`` is the one chosen (never ``auto``)."""

    baseline: str
    metric: str
    higher_is_better: bool
    alpha: float
    mde: float
    variants: tuple[VariantAnalysis, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "alpha": self.alpha,
            "mde": self.mde,
            "variants": [v.to_dict() for v in self.variants],
        }


def _choose_metric(stats: Mapping[str, VariantStats], metric: str) -> str:
    if metric not in METRICS:
        raise ValidationError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    if metric != "auto":
        return metric
    if any(s.conversions.trials for s in stats.values()):
        return "conversions"
    if any(s.outcome.count for s in stats.values()):
        return "outcome"
    return "errors"


def _observations(stats: VariantStats, metric: str) -> Moments | Proportion:
    if metric == "outcome":
        return stats.outcome
    if metric == "conversions":
        return stats.conversions
    return Proportion(stats.requests, stats.errors)


def _count(observed: Moments | Proportion) -> int:
    return observed.count if isinstance(observed, Moments) else observed.trials


def _mean(observed: Moments | Proportion) -> float | None:
    if _count(observed) == 0:
        return None
    return observed.mean if isinstance(observed, Moments) else observed.rate


def _default_mde(baseline: Moments | Proportion) -> float:
    if isinstance(baseline, Proportion):
        return max(0.1 * baseline.rate, 0.001)
    scale = baseline.std or abs(baseline.mean)
    return 0.1 * scale if scale > 0 else 1.0


def analyze_variants(
    stats: Mapping[str, VariantStats],
    baseline: str,
    *,
    metric: str = "auto",
    alpha: float = 0.05,
    mde: float | None = None,
    higher_is_better: bool | None = None,
) -> Analysis:
    """Compare every variant in ``stats`` with ``baseline``; see the module docstring."""
    check_alpha(alpha)
    if baseline not in stats:
        raise ValidationError(
            f"baseline '{baseline}' is not among the variants {sorted(stats)}",
            hint="name one of the deployment's variants",
        )
    chosen = _choose_metric(stats, metric)
    better_up = (chosen != "errors") if higher_is_better is None else higher_is_better
    base = _observations(stats[baseline], chosen)
    scale = _default_mde(base) if mde is None else check_positive(mde, "mde")
    test = MixtureSPRT(mde=scale, alpha=alpha)
    guardrail = RateRatioSPRT(mde=_ERROR_RATE_MDE, alpha=alpha, alternative="greater")
    base_stats = stats[baseline]
    rows = []
    for name, variant_stats in stats.items():
        observed = _observations(variant_stats, chosen)
        row = VariantAnalysis(
            variant=name,
            is_baseline=name == baseline,
            requests=variant_stats.requests,
            errors=variant_stats.errors,
            error_rate=variant_stats.error_rate,
            n=_count(observed),
            mean=_mean(observed),
        )
        if name != baseline:
            # on the error rate itself the guardrail asks the same question: test it once
            check = guardrail if chosen != "errors" else None
            row = _compare(row, base, observed, base_stats, variant_stats, test, check, better_up)
        rows.append(row)
    rows.sort(key=lambda r: (not r.is_baseline, r.variant))
    return Analysis(baseline, chosen, better_up, alpha, scale, tuple(rows))


def _compare(
    row: VariantAnalysis,
    base: Moments | Proportion,
    observed: Moments | Proportion,
    base_stats: VariantStats,
    variant_stats: VariantStats,
    test: MixtureSPRT,
    guardrail: RateRatioSPRT | None,
    better_up: bool,
) -> VariantAnalysis:
    error_ratio = error_p = None
    p_values = []
    if guardrail is not None and base_stats.requests and variant_stats.requests:
        errors = guardrail.test(
            base_stats.errors, base_stats.requests, variant_stats.errors, variant_stats.requests
        )
        error_ratio, error_p = errors.estimate, errors.p_value
    minimum = 2 if isinstance(observed, Moments) else 1
    if min(_count(base), _count(observed)) < minimum:
        return replace(row, error_ratio=error_ratio, error_p=error_p, verdict="waiting for data")
    if isinstance(base, Moments) and isinstance(observed, Moments):
        result = test.test_means(base, observed)
    else:
        assert isinstance(base, Proportion) and isinstance(observed, Proportion)
        result = test.test_proportions(base, observed)
    base_mean = _mean(base)
    relative = result.estimate / base_mean if base_mean else None
    p_values.append(result.p_value)
    if error_p is not None:
        p_values.append(error_p)
    rejected = bonferroni(p_values, alpha=test.alpha).rejected
    if error_p is not None and rejected[-1] and row.error_rate > base_stats.error_rate:
        verdict = "worse: error rate"
    elif rejected[0]:
        verdict = "better" if (result.estimate > 0) == better_up else "worse"
    else:
        verdict = "inconclusive"
    return replace(
        row,
        lift=result.estimate,
        relative_lift=relative,
        ci_low=result.ci_low,
        ci_high=result.ci_high,
        p_value=result.p_value,
        error_ratio=error_ratio,
        error_p=error_p,
        verdict=verdict,
    )
