"""The policy that turns two variants' counts into continue, promote, roll back or halt.

:class:`SequentialPolicy` checks, in this order:

1. **Sample-ratio mismatch** (:class:`~lockgate.stats.srm.SequentialSRM` at ``srm_alpha``): the
   candidate's share of requests against ``expected_split``. A mismatch halts: the other numbers
   cannot be trusted.
2. **Minimum samples**: below ``min_samples`` requests in either arm the verdict is continue.
3. **Harm → roll back**, each an anytime-valid one-sided test, Bonferroni across them so that the
   chance of any false rollback, however often ``decide`` is called, stays at or below ``alpha``:
   the error rate (:class:`~lockgate.stats.sequential.RateRatioSPRT`, candidate rate above the
   baseline's); tail latency (the share of candidate requests slower than ``(1 +
   latency_tolerance) × baseline p99`` above the 1% a p99 allows,
   :class:`~lockgate.stats.sequential.BernoulliSPRT`); and, if configured, the primary metric
   significantly worse than ``-primary_margin``.
4. **Promote** when the primary metric is significantly better than ``-primary_margin``
   (superiority at margin 0, non-inferiority above), at ``alpha``, and no guardrail shows harm.
5. **Horizon**: at ``max_samples`` requests per arm, a policy without a primary metric promotes (no
   harm was found where an MDE-sized harm would very likely have been found); with one, a primary
   metric still inconclusive rolls back (it was not shown non-inferior).

``decide`` is pure and stateless: the accumulators are cumulative and the instantaneous
always-valid p-values are valid at every look, so no history is needed. ``decide_many`` is the same
logic over arrays of many runs at once, used by :mod:`lockgate.stats.simulation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError
from lockgate.stats._arguments import check_alpha, check_positive
from lockgate.stats.accumulators import VariantStats, default_latency_bounds_ms
from lockgate.stats.sequential import (
    BernoulliSPRT,
    MixtureSPRT,
    RateRatioSPRT,
    normal_mixture_radius,
    p_value_from_log_lr,
    proportion_difference_variance,
)
from lockgate.stats.srm import SequentialSRM
from lockgate.stats.verdict import Decision, Verdict

__all__ = ["DECISION_CODES", "ArmBatch", "PrimaryMetric", "SequentialPolicy"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DECISION_CODES: tuple[Decision, ...] = (
    Decision.CONTINUE,
    Decision.PROMOTE,
    Decision.ROLLBACK,
    Decision.HALT,
)
"""``decide_many`` returns indexes into this tuple."""

_CONTINUE, _PROMOTE, _ROLLBACK, _HALT = range(4)

_ERROR_DIFFERENCE_SCALE = 0.01
"""The mixing scale of the error-rate difference's confidence sequence (one percentage point): the
interval is valid at every look whatever the scale; it is tightest for differences near it."""


class PrimaryMetric(StrEnum):
    """What the candidate should improve (or not worsen): none, 0/1 conversions, or a mean."""

    NONE = "none"
    CONVERSIONS = "conversions"
    OUTCOME_MEAN = "outcome_mean"


@dataclass(frozen=True)
class ArmBatch:
    """One arm's counts for many runs at once: every field is an array over runs.

    ``latency_counts`` has shape (runs, buckets) with the buckets of ``latency_bounds_ms``; leave it
    None to skip the latency guardrail. Outcome fields may stay None when no primary metric is used.
    """

    requests: IntArray
    errors: IntArray
    latency_counts: IntArray | None = None
    latency_bounds_ms: tuple[float, ...] = field(default_factory=default_latency_bounds_ms)
    conversion_trials: IntArray | None = None
    conversion_successes: IntArray | None = None
    outcome_count: IntArray | None = None
    outcome_mean: FloatArray | None = None
    outcome_m2: FloatArray | None = None

    @classmethod
    def from_stats(cls, stats: Sequence[VariantStats]) -> ArmBatch:
        if not stats:
            raise ValidationError("no variant stats given", hint="pass one VariantStats per run")
        bounds = stats[0].latency.bounds_ms
        if any(s.latency.bounds_ms != bounds for s in stats):
            raise ValidationError("latency histograms use different bucket bounds")
        return cls(
            requests=np.array([s.requests for s in stats], dtype=np.int64),
            errors=np.array([s.errors for s in stats], dtype=np.int64),
            latency_counts=np.stack([s.latency.counts for s in stats]).astype(np.int64),
            latency_bounds_ms=bounds,
            conversion_trials=np.array([s.conversions.trials for s in stats], dtype=np.int64),
            conversion_successes=np.array([s.conversions.successes for s in stats], dtype=np.int64),
            outcome_count=np.array([s.outcome.count for s in stats], dtype=np.int64),
            outcome_mean=np.array([s.outcome.mean for s in stats], dtype=np.float64),
            outcome_m2=np.array([s.outcome.m2 for s in stats], dtype=np.float64),
        )

    @classmethod
    def from_counts(cls, requests: npt.ArrayLike, errors: npt.ArrayLike) -> ArmBatch:
        """Requests and errors only (no latency, no outcomes)."""
        req: IntArray = np.atleast_1d(np.asarray(requests, dtype=np.int64))
        err: IntArray = np.atleast_1d(np.asarray(errors, dtype=np.int64))
        if req.shape != err.shape or (req < 0).any() or (err < 0).any() or (err > req).any():
            raise ValidationError(
                "requests and errors must be arrays of the same shape with 0 <= errors <= requests"
            )
        return cls(requests=req, errors=err)


@dataclass(frozen=True)
class _Evaluation:
    """Every number the policy computed, as arrays over runs."""

    codes: npt.NDArray[np.int8]
    n_baseline: FloatArray
    n_candidate: FloatArray
    srm_p: FloatArray
    error_p: FloatArray
    latency_p: FloatArray | None
    latency_baseline_ms: FloatArray | None
    latency_threshold_ms: FloatArray | None
    latency_slow_share: FloatArray | None
    primary_difference: FloatArray | None
    primary_variance: FloatArray | None
    primary_p_harm: FloatArray | None
    primary_p_promote: FloatArray | None
    alpha_each: float


@dataclass(frozen=True)
class SequentialPolicy:
    """Anytime-valid canary policy; see the module docstring for the order of the checks.

    Parameters:
        alpha: chance of a false rollback across all guardrails, however often decided; also the
            chance of promoting on a primary metric that is not in fact better (non-inferior).
        expected_split: the candidate's intended share of the two arms' traffic (0.05 for a 5%
            canary). Build a new policy when the controller changes the weights, with fresh counts.
        min_samples: requests per arm before any verdict other than halt.
        max_samples: requests per arm at which the horizon rule applies; None for no horizon.
        error_rate_mde: relative error-rate increase worth catching (0.5 = +50%).
        latency_quantile, latency_tolerance: the candidate's ``latency_quantile`` may exceed the
            baseline's by ``latency_tolerance`` (0.2 = 20%) before it counts as harm.
        primary, primary_mde, primary_margin, higher_is_better: the metric to promote on, the
            absolute effect worth detecting, the non-inferiority margin (0 = superiority).
        srm_alpha: level of the sequential sample-ratio-mismatch test.
    """

    alpha: float = 0.05
    expected_split: float = 0.5
    min_samples: int = 200
    max_samples: int | None = 10_000
    error_rate_mde: float = 0.5
    latency_quantile: float = 0.99
    latency_tolerance: float = 0.2
    primary: PrimaryMetric = PrimaryMetric.NONE
    primary_mde: float | None = None
    primary_margin: float = 0.0
    higher_is_better: bool = True
    srm_alpha: float = 0.001

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        check_alpha(self.srm_alpha, "srm_alpha")
        check_alpha(self.latency_quantile, "latency_quantile")
        check_alpha(self.expected_split, "expected_split")
        check_positive(self.error_rate_mde, "error_rate_mde")
        if self.min_samples < 2:
            raise ValidationError(f"min_samples={self.min_samples} must be 2 or more")
        if self.max_samples is not None and self.max_samples < self.min_samples:
            raise ValidationError(f"max_samples={self.max_samples} is below min_samples={self.min_samples}")
        if not (math.isfinite(self.latency_tolerance) and self.latency_tolerance >= 0):
            raise ValidationError(f"latency_tolerance={self.latency_tolerance} must be >= 0")
        if not (math.isfinite(self.primary_margin) and self.primary_margin >= 0):
            raise ValidationError(
                f"primary_margin={self.primary_margin} must be >= 0",
                hint="0 asks for superiority; a margin > 0 for non-inferiority",
            )
        if self.primary not in tuple(PrimaryMetric):
            names = ", ".join(m.value for m in PrimaryMetric)
            raise ValidationError(f"primary={self.primary!r} is not one of {names}")
        primary = PrimaryMetric(self.primary)
        if primary is not PrimaryMetric.NONE:
            if self.primary_mde is None:
                raise ValidationError(
                    f"primary metric {primary.value!r} needs primary_mde",
                    hint="the smallest absolute difference worth detecting, e.g. 0.01",
                )
            check_positive(self.primary_mde, "primary_mde")

    # -- tests, shared by decide and decide_many -------------------------------------------

    @property
    def _error_test(self) -> RateRatioSPRT:
        return RateRatioSPRT(mde=self.error_rate_mde, alpha=self.alpha, alternative="greater")

    @property
    def _latency_test(self) -> BernoulliSPRT:
        tail = 1.0 - self.latency_quantile
        return BernoulliSPRT(null_rate=tail, mde=tail, alpha=self.alpha, alternative="greater")

    def _primary_tests(self) -> tuple[MixtureSPRT, MixtureSPRT]:
        mde = float(self.primary_mde or 1.0)
        null = -self.primary_margin
        harm = MixtureSPRT(mde=mde, alpha=self.alpha, alternative="less", null_difference=null)
        better = MixtureSPRT(mde=mde, alpha=self.alpha, alternative="greater", null_difference=null)
        return harm, better

    def _latency(
        self, baseline: ArmBatch, candidate: ArmBatch
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None:
        if baseline.latency_counts is None or candidate.latency_counts is None:
            return None
        if baseline.latency_bounds_ms != candidate.latency_bounds_ms:
            raise ValidationError("baseline and candidate latency histograms use different bounds")
        bounds = np.asarray(baseline.latency_bounds_ms, dtype=np.float64)
        cum_b = np.cumsum(baseline.latency_counts, axis=1)
        cum_c = np.cumsum(candidate.latency_counts, axis=1)
        n_b, n_c = cum_b[:, -1], cum_c[:, -1]
        rank = np.maximum(1, np.ceil(self.latency_quantile * n_b)).astype(np.int64)
        idx = (cum_b < rank[:, None]).sum(axis=1)
        baseline_q = bounds[np.minimum(idx, bounds.size - 1)]
        threshold = baseline_q * (1.0 + self.latency_tolerance)
        # buckets whose lower bound is at or above the threshold are surely slower than it
        first_slow = np.searchsorted(bounds, threshold, side="left") + 1
        below = np.take_along_axis(cum_c, (first_slow - 1)[:, None], axis=1)[:, 0]
        slow = n_c - below
        log_lr = self._latency_test.log_lr(slow, n_c)
        p = np.where((n_b > 0) & (n_c > 0), p_value_from_log_lr(log_lr), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(n_c > 0, slow / np.maximum(n_c, 1), 0.0)
        return p, baseline_q, threshold, share

    def _primary(self, baseline: ArmBatch, candidate: ArmBatch) -> tuple[FloatArray, FloatArray] | None:
        primary = PrimaryMetric(self.primary)
        if primary is PrimaryMetric.NONE:
            return None
        if primary is PrimaryMetric.CONVERSIONS:
            if baseline.conversion_trials is None or candidate.conversion_trials is None:
                raise ValidationError("the primary metric 'conversions' needs conversion counts")
            assert baseline.conversion_successes is not None
            assert candidate.conversion_successes is not None
            n_b = baseline.conversion_trials.astype(np.float64)
            n_c = candidate.conversion_trials.astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                rate_b = np.where(n_b > 0, baseline.conversion_successes / np.maximum(n_b, 1), 0.0)
                rate_c = np.where(n_c > 0, candidate.conversion_successes / np.maximum(n_c, 1), 0.0)
            difference = rate_c - rate_b
            variance = proportion_difference_variance(
                baseline.conversion_successes, n_b, candidate.conversion_successes, n_c
            )
        else:
            if baseline.outcome_count is None or candidate.outcome_count is None:
                raise ValidationError("the primary metric 'outcome_mean' needs outcome moments")
            assert baseline.outcome_mean is not None
            assert baseline.outcome_m2 is not None
            assert candidate.outcome_mean is not None
            assert candidate.outcome_m2 is not None
            n_b = baseline.outcome_count.astype(np.float64)
            n_c = candidate.outcome_count.astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                var_b = np.where(n_b > 1, baseline.outcome_m2 / (n_b - 1) / n_b, np.nan)
                var_c = np.where(n_c > 1, candidate.outcome_m2 / (n_c - 1) / n_c, np.nan)
            variance = np.where(np.isfinite(var_b + var_c), var_b + var_c, 0.0)
            difference = candidate.outcome_mean - baseline.outcome_mean
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * difference, variance

    def _evaluate(self, baseline: ArmBatch, candidate: ArmBatch) -> _Evaluation:
        if baseline.requests.shape != candidate.requests.shape:
            raise ValidationError("baseline and candidate batches have different numbers of runs")
        n_b = baseline.requests.astype(np.float64)
        n_c = candidate.requests.astype(np.float64)
        srm = SequentialSRM((1.0 - self.expected_split, self.expected_split), alpha=self.srm_alpha)
        srm_p = p_value_from_log_lr(srm.log_lr(np.stack([n_b, n_c], axis=-1)))
        error_p = p_value_from_log_lr(self._error_test.log_lr(baseline.errors, n_b, candidate.errors, n_c))
        latency = self._latency(baseline, candidate)
        primary = self._primary(baseline, candidate)
        p_harm = p_promote = None
        if primary is not None:
            harm, better = self._primary_tests()
            p_harm = p_value_from_log_lr(harm.log_lr(*primary))
            p_promote = p_value_from_log_lr(better.log_lr(*primary))
        rollback_ps = [error_p]
        if latency is not None:
            rollback_ps.append(latency[0])
        if p_harm is not None:
            rollback_ps.append(p_harm)
        alpha_each = self.alpha / len(rollback_ps)
        harmful = np.any(np.stack(rollback_ps) <= alpha_each, axis=0)
        enough = np.minimum(n_b, n_c) >= self.min_samples
        at_horizon = (
            np.minimum(n_b, n_c) >= self.max_samples
            if self.max_samples is not None
            else np.zeros(n_b.shape, dtype=bool)
        )
        codes = np.full(n_b.shape, _CONTINUE, dtype=np.int8)
        if p_promote is not None:
            codes[at_horizon] = _ROLLBACK
            codes[p_promote <= self.alpha] = _PROMOTE
        else:
            codes[at_horizon] = _PROMOTE
        codes[harmful] = _ROLLBACK
        codes[~enough] = _CONTINUE
        codes[srm_p <= self.srm_alpha] = _HALT
        return _Evaluation(
            codes=codes,
            n_baseline=n_b,
            n_candidate=n_c,
            srm_p=srm_p,
            error_p=error_p,
            latency_p=None if latency is None else latency[0],
            latency_baseline_ms=None if latency is None else latency[1],
            latency_threshold_ms=None if latency is None else latency[2],
            latency_slow_share=None if latency is None else latency[3],
            primary_difference=None if primary is None else primary[0],
            primary_variance=None if primary is None else primary[1],
            primary_p_harm=p_harm,
            primary_p_promote=p_promote,
            alpha_each=alpha_each,
        )

    # -- public ----------------------------------------------------------------------------

    def decide_many(self, baseline: ArmBatch, candidate: ArmBatch) -> npt.NDArray[np.int8]:
        """Decision codes (indexes into :data:`DECISION_CODES`) for many runs at once."""
        return self._evaluate(baseline, candidate).codes

    def decide(self, baseline: VariantStats, candidate: VariantStats) -> Verdict:
        """The verdict for one snapshot, with reasons in words and the numbers behind them."""
        ev = self._evaluate(ArmBatch.from_stats([baseline]), ArmBatch.from_stats([candidate]))
        decision = DECISION_CODES[int(ev.codes[0])]
        numbers: dict[str, float] = {
            "n_baseline": float(baseline.requests),
            "n_candidate": float(candidate.requests),
            "expected_split": self.expected_split,
            "candidate_share": candidate.requests / max(baseline.requests + candidate.requests, 1),
            "srm_p": float(ev.srm_p[0]),
            "error_rate_baseline": baseline.error_rate,
            "error_rate_candidate": candidate.error_rate,
            "error_p": float(ev.error_p[0]),
            "alpha": self.alpha,
            "alpha_per_guardrail": ev.alpha_each,
        }
        if baseline.requests > 0 and candidate.requests > 0:
            # the guardrail's difference, candidate minus baseline, with its confidence sequence at
            # the guardrail's level (normal mixture over the smoothed proportions' variance)
            difference = candidate.error_rate - baseline.error_rate
            variance = proportion_difference_variance(
                baseline.errors, baseline.requests, candidate.errors, candidate.requests
            )
            radius = float(normal_mixture_radius(variance, _ERROR_DIFFERENCE_SCALE**2, ev.alpha_each))
            numbers.update(
                error_rate_diff=difference,
                error_rate_diff_ci_low=difference - radius,
                error_rate_diff_ci_high=difference + radius,
            )
            ratio = self._error_test.test(
                baseline.errors, baseline.requests, candidate.errors, candidate.requests
            )
            numbers.update(
                error_ratio=ratio.estimate,
                error_ratio_ci_low=ratio.ci_low,
                error_ratio_ci_high=ratio.ci_high,
            )
        if ev.latency_p is not None:
            assert ev.latency_baseline_ms is not None
            assert ev.latency_threshold_ms is not None
            assert ev.latency_slow_share is not None
            allowed = 1.0 - self.latency_quantile
            share = float(ev.latency_slow_share[0])
            numbers["latency_slow_excess"] = share - allowed
            if candidate.requests > 0:
                slow = round(share * candidate.requests)
                tail = BernoulliSPRT(
                    null_rate=allowed, mde=allowed, alpha=ev.alpha_each, alternative="greater"
                )
                interval = tail.test(slow, candidate.requests)
                numbers.update(
                    latency_slow_excess_ci_low=interval.ci_low - allowed,
                    latency_slow_excess_ci_high=interval.ci_high - allowed,
                )
            numbers.update(
                latency_p=float(ev.latency_p[0]),
                latency_quantile=self.latency_quantile,
                latency_baseline_ms=float(ev.latency_baseline_ms[0]),
                latency_candidate_ms=candidate.latency.quantile(self.latency_quantile),
                latency_threshold_ms=float(ev.latency_threshold_ms[0]),
                latency_slow_share=float(ev.latency_slow_share[0]),
            )
        if ev.primary_difference is not None:
            assert ev.primary_variance is not None
            assert ev.primary_p_harm is not None
            assert ev.primary_p_promote is not None
            sign = 1.0 if self.higher_is_better else -1.0
            difference = sign * float(ev.primary_difference[0])
            radius = float(
                normal_mixture_radius(ev.primary_variance[0], self._primary_tests()[0].tau2, self.alpha)
            )
            numbers.update(
                primary_difference=difference,
                primary_ci_low=difference - radius,
                primary_ci_high=difference + radius,
                primary_p_harm=float(ev.primary_p_harm[0]),
                primary_p_promote=float(ev.primary_p_promote[0]),
                primary_margin=self.primary_margin,
            )
        clean = {k: v for k, v in numbers.items() if math.isfinite(v)}
        return Verdict(decision, tuple(self._reasons(decision, ev, baseline, candidate)), clean)

    # -- words -----------------------------------------------------------------------------

    def _reasons(
        self,
        decision: Decision,
        ev: _Evaluation,
        baseline: VariantStats,
        candidate: VariantStats,
    ) -> list[str]:
        n_b, n_c = baseline.requests, candidate.requests
        if decision is Decision.HALT:
            share = n_c / max(n_b + n_c, 1)
            return [
                f"sample-ratio mismatch: the candidate got {share:.1%} of {n_b + n_c:,} requests, "
                f"expected {self.expected_split:.1%} (always-valid p={ev.srm_p[0]:.2g} <= "
                f"{self.srm_alpha:g}); assignment or logging is broken, so no other number can "
                "be trusted"
            ]
        if min(n_b, n_c) < self.min_samples:
            return [
                f"waiting for {self.min_samples:,} requests per arm (baseline {n_b:,}, candidate {n_c:,})"
            ]
        level = ev.alpha_each
        reasons: list[str] = []
        error_line = (
            f"error rate {candidate.error_rate:.2%} vs baseline {baseline.error_rate:.2%} "
            f"(always-valid p={ev.error_p[0]:.2g}, level {level:.3g})"
        )
        latency_line = ""
        if ev.latency_p is not None:
            assert ev.latency_threshold_ms is not None
            assert ev.latency_slow_share is not None
            q = f"p{self.latency_quantile * 100:g}"
            latency_line = (
                f"{ev.latency_slow_share[0]:.2%} of candidate requests slower than "
                f"{ev.latency_threshold_ms[0]:.3g} ms ({1 + self.latency_tolerance:g} x baseline "
                f"{q}), {1 - self.latency_quantile:.0%} allowed "
                f"(always-valid p={ev.latency_p[0]:.2g}, level {level:.3g})"
            )
        primary_line = ""
        if ev.primary_difference is not None:
            assert ev.primary_p_harm is not None
            assert ev.primary_p_promote is not None
            kind = "superiority" if self.primary_margin == 0 else "non-inferiority"
            primary_line = (
                f"{PrimaryMetric(self.primary).value} difference "
                f"{float(ev.primary_difference[0]):+.4g} in the better direction "
                f"({kind}, margin {self.primary_margin:g}; p better={ev.primary_p_promote[0]:.2g}, "
                f"p worse={ev.primary_p_harm[0]:.2g})"
            )
        if decision is Decision.ROLLBACK:
            if ev.error_p[0] <= level:
                reasons.append("error rate is higher: " + error_line)
            if ev.latency_p is not None and ev.latency_p[0] <= level:
                reasons.append("tail latency is worse: " + latency_line)
            if ev.primary_p_harm is not None and ev.primary_p_harm[0] <= level:
                reasons.append("primary metric is worse: " + primary_line)
            if not reasons:
                reasons.append(
                    f"reached {self.max_samples:,} requests per arm and the primary metric was "
                    "not shown better: " + primary_line
                )
            return reasons
        if decision is Decision.PROMOTE:
            if ev.primary_p_promote is not None:
                reasons.append("primary metric is better: " + primary_line)
            else:
                reasons.append(f"reached {self.max_samples:,} requests per arm and no guardrail showed harm")
            reasons.append("no guardrail shows harm: " + error_line)
            if latency_line:
                reasons.append("latency: " + latency_line)
            return reasons
        reasons.append("no conclusion yet: " + error_line)
        if latency_line:
            reasons.append("latency: " + latency_line)
        if primary_line:
            reasons.append("primary: " + primary_line)
        return reasons
