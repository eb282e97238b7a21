"""Anytime-valid tests: p-values and confidence intervals that stay valid however often you look.

A fixed-horizon test checked after every batch of requests raises false alarms far above its alpha.
The tests here are mixture sequential probability ratio tests (mSPRT): the likelihood ratio of the
data, averaged over a prior on the effect, is a nonnegative martingale under the null hypothesis, so
by Ville's inequality ``P(exists n: LR_n >= 1/alpha) <= alpha``. ``1 / LR_n`` is therefore an
always-valid p-value and ``{theta: LR_n(theta) < 1/alpha}`` a confidence sequence, at every look,
with any stopping rule.

- :class:`MixtureSPRT` — difference of two means or two proportions, normal mixture with the mixing
  variance set from the minimum detectable effect (``tau = mde``). Johari, Pekelis & Walsh, "Always
  valid inference: continuous monitoring of A/B tests", Operations Research 70(3), 2022 (arXiv
  1512.04922). With the variance estimated from the data this is the asymptotic confidence sequence
  of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory and
  asymptotic confidence sequences", Annals of Statistics 2024 (arXiv 2103.06476); the boundary is
  the normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric,
  nonasymptotic confidence sequences", Annals of Statistics 49(2), 2021.
- :class:`BernoulliSPRT` — one rate against a fixed null (a tail-latency exceedance rate), beta
  mixture, exact for Bernoulli data.
- :class:`RateRatioSPRT` — the ratio of two event rates (errors per request). Given that an event
  happened, it came from the candidate with probability ``pi0 = n_c / (n_b + n_c)`` under equal
  rates, so the arms of successive events form a Bernoulli sequence and the beta-mixture test on it
  is exact (no normal approximation, no plug-in variance). Lindon & Malek, "Anytime-valid inference
  for multinomial count data", NeurIPS 2022, and Lindon, Sanden & Shirikian, "Rapid regression
  detection in software deployments through sequential testing", KDD 2022 (arXiv 2205.14762).

One-sided tests use the prior restricted to the alternative half (a half-normal or truncated beta
mixture), which is still a mixture of likelihood ratios and keeps the guarantee. Each ``test`` call
is pure: pass the previous result to carry the running minimum p-value and the intersection of the
intervals; without it the instantaneous values are returned, which are anytime-valid on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import betainc, betaln, log_ndtr

from lockgate.errors import ValidationError
from lockgate.stats._arguments import (
    Alternative,
    check_alpha,
    check_alternative,
    check_positive,
)
from lockgate.stats.accumulators import Moments, Proportion

__all__ = [
    "BernoulliSPRT",
    "MixtureSPRT",
    "RateRatioSPRT",
    "SequentialResult",
    "beta_mixture_log_lr",
    "normal_mixture_log_lr",
    "normal_mixture_radius",
    "one_sided_radius",
    "p_value_from_log_lr",
]

FloatArray = npt.NDArray[np.float64]


def normal_mixture_log_lr(
    estimate: npt.ArrayLike,
    variance: npt.ArrayLike,
    tau2: float,
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """Log of the normal-mixture likelihood ratio for ``estimate ~ N(theta, variance)``, H0 theta=0.

    ``tau2`` is the variance of the N(0, tau2) mixing prior on ``theta``; one-sided alternatives use
    its positive (``greater``) or negative (``less``) half. Zero variance gives 0 (no evidence).
    Vectorised over ``estimate`` and ``variance``.
    """
    est = np.asarray(estimate, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        total = var + tau2
        log_lr = 0.5 * np.log(var / total) + tau2 * est * est / (2.0 * var * total)
        if alternative != "two-sided":
            signed = est if alternative == "greater" else -est
            log_lr = log_lr + math.log(2.0) + log_ndtr(signed * math.sqrt(tau2) / np.sqrt(var * total))
        out: FloatArray = np.where(var > 0, log_lr, 0.0)
    return out


def normal_mixture_radius(variance: npt.ArrayLike, tau2: float, alpha: float) -> FloatArray:
    """Half-width of the two-sided normal-mixture confidence sequence at level ``1 - alpha``."""
    var = np.asarray(variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = var + tau2
        # log(total) - log(var), not log(total / var): the ratio overflows for a tiny variance
        radius = np.sqrt(var * total / tau2 * (2.0 * math.log(1.0 / alpha) + np.log(total) - np.log(var)))
    out: FloatArray = np.where(var > 0, radius, 0.0)
    return out


def one_sided_radius(variance: float, tau2: float, alpha: float) -> float:
    """Distance from the estimate to a one-sided confidence sequence's bound at level ``1 - alpha``.

    The bound is where the half-normal mixture likelihood ratio (the prior on the positive half)
    reaches ``1 / alpha``; by Ville's inequality the chance that the true value ever falls beyond
    it is at most ``alpha``. Tighter than the two-sided radius, which spends ``alpha`` on both ends.
    Scalar arithmetic (the controller calls it a few times a tick).
    """
    if variance <= 0:
        return 0.0
    target = math.log(1.0 / alpha)
    total = variance + tau2
    base = 0.5 * math.log(variance / total) + math.log(2.0)
    quad = tau2 / (2.0 * variance * total)
    slope = math.sqrt(tau2) / math.sqrt(variance * total)

    def excess(radius: float) -> float:
        # log LR of the half-normal mixture at ``radius``: log Phi by erfc, exact for radius >= 0
        return (
            base
            + quad * radius * radius
            + math.log(0.5 * math.erfc(-slope * radius / math.sqrt(2.0)))
            - target
        )

    high = float(normal_mixture_radius(variance, tau2, alpha))
    if excess(high) < 0:  # cannot happen for alpha < 1; keep the two-sided radius rather than fail
        return high
    return float(brentq(excess, 0.0, high, xtol=1e-12 * max(high, 1e-300), rtol=1e-10))


def beta_mixture_log_lr(
    successes: npt.ArrayLike,
    failures: npt.ArrayLike,
    null_rate: npt.ArrayLike,
    prior_a: npt.ArrayLike,
    prior_b: npt.ArrayLike,
    alternative: Alternative = "two-sided",
) -> FloatArray:
    """Log of the beta-mixture likelihood ratio of Bernoulli data against ``rate = null_rate``.

    The prior is Beta(prior_a, prior_b), restricted to ``rate > null_rate`` for ``greater`` and to
    ``rate < null_rate`` for ``less``. Vectorised over all arguments.
    """
    x = np.asarray(successes, dtype=np.float64)
    y = np.asarray(failures, dtype=np.float64)
    p0 = np.asarray(null_rate, dtype=np.float64)
    a = np.asarray(prior_a, dtype=np.float64)
    b = np.asarray(prior_b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_marginal = betaln(a + x, b + y) - betaln(a, b)
        if alternative == "greater":
            log_marginal = (
                log_marginal + np.log(betainc(b + y, a + x, 1.0 - p0)) - np.log(betainc(b, a, 1.0 - p0))
            )
        elif alternative == "less":
            log_marginal = log_marginal + np.log(betainc(a + x, b + y, p0)) - np.log(betainc(a, b, p0))
        out: FloatArray = log_marginal - x * np.log(p0) - y * np.log1p(-p0)
    return out


def p_value_from_log_lr(log_lr: npt.ArrayLike) -> FloatArray:
    """Always-valid p-value ``min(1, 1 / LR)``."""
    out: FloatArray = np.exp(-np.maximum(np.asarray(log_lr, dtype=np.float64), 0.0))
    return out


def beta_prior(null_rate: float, alternative_rate: float) -> tuple[float, float]:
    """Beta prior centred on ``null_rate`` whose spread reaches ``alternative_rate``.

    Mean ``p0`` and standard deviation ``|p1 - p0|``: the truncated half then puts its mass between
    the null and about twice the effect, where detection matters.
    """
    distance = abs(alternative_rate - null_rate)
    concentration = max(null_rate * (1.0 - null_rate) / distance**2 - 1.0, 1.0)
    return null_rate * concentration, (1.0 - null_rate) * concentration


@dataclass(frozen=True)
class SequentialResult:
    """One look of an anytime-valid test.

    ``p_value`` is always valid (running minimum when a previous result was passed); ``e_value`` the
    current mixture likelihood ratio; ``[ci_low, ci_high]`` the two-sided confidence sequence at
    level ``1 - alpha`` (for a one-sided test it is conservative on the tested side).
    """

    estimate: float
    p_value: float
    ci_low: float
    ci_high: float
    e_value: float
    n_baseline: int
    n_candidate: int
    alpha: float
    alternative: str

    @property
    def is_significant(self) -> bool:
        return self.p_value <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "p_value": self.p_value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "e_value": self.e_value,
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
            "alpha": self.alpha,
            "alternative": self.alternative,
        }

    def carry(self, previous: SequentialResult | None) -> SequentialResult:
        """This look combined with the previous one: running-minimum p, intersected interval."""
        if previous is None:
            return self
        low = max(self.ci_low, previous.ci_low)
        high = min(self.ci_high, previous.ci_high)
        if low > high:  # the sequences disagree: a miscoverage event; keep the latest interval
            low, high = self.ci_low, self.ci_high
        return replace(self, p_value=min(self.p_value, previous.p_value), ci_low=low, ci_high=high)


def _check_observations(n_baseline: int, n_candidate: int, minimum: int, what: str) -> None:
    if n_baseline < minimum or n_candidate < minimum:
        raise ValidationError(
            f"{what} needs at least {minimum} observation(s) per arm; "
            f"got {n_baseline} (baseline) and {n_candidate} (candidate)",
            hint="wait for data in both arms before testing",
        )


@dataclass(frozen=True)
class MixtureSPRT:
    """mSPRT for ``candidate - baseline`` of two means or two proportions (normal mixture).

    ``mde`` is the smallest absolute difference worth detecting; the mixing prior is N(0, mde²),
    which makes the test most efficient for effects of about that size. ``null_difference`` shifts
    the null: ``greater`` with ``null_difference=-margin`` is a non-inferiority test.
    """

    mde: float
    alpha: float = 0.05
    alternative: Alternative = "two-sided"
    null_difference: float = 0.0

    def __post_init__(self) -> None:
        check_positive(self.mde, "mde")
        check_alpha(self.alpha)
        check_alternative(self.alternative)
        if not math.isfinite(self.null_difference):
            raise ValidationError(f"null_difference={self.null_difference} is not finite")

    @property
    def tau2(self) -> float:
        return self.mde * self.mde

    def log_lr(self, difference: npt.ArrayLike, variance: npt.ArrayLike) -> FloatArray:
        """Vectorised log-likelihood ratio from estimated differences and their variances."""
        shifted = np.asarray(difference, dtype=np.float64) - self.null_difference
        return normal_mixture_log_lr(shifted, variance, self.tau2, self.alternative)

    def _result(
        self,
        difference: float,
        variance: float,
        n_b: int,
        n_c: int,
        previous: SequentialResult | None,
    ) -> SequentialResult:
        log_lr = float(self.log_lr(difference, variance))
        radius = float(normal_mixture_radius(variance, self.tau2, self.alpha))
        result = SequentialResult(
            estimate=difference,
            p_value=float(p_value_from_log_lr(log_lr)),
            ci_low=difference - radius,
            ci_high=difference + radius,
            e_value=math.exp(min(log_lr, 700.0)),
            n_baseline=n_b,
            n_candidate=n_c,
            alpha=self.alpha,
            alternative=self.alternative,
        )
        return result.carry(previous)

    def test_means(
        self, baseline: Moments, candidate: Moments, previous: SequentialResult | None = None
    ) -> SequentialResult:
        """Difference of means, each arm's variance estimated from its data (at least 2 each)."""
        _check_observations(baseline.count, candidate.count, 2, "a test of means")
        variance = baseline.variance / baseline.count + candidate.variance / candidate.count
        difference = candidate.mean - baseline.mean
        return self._result(difference, variance, baseline.count, candidate.count, previous)

    def test_proportions(
        self, baseline: Proportion, candidate: Proportion, previous: SequentialResult | None = None
    ) -> SequentialResult:
        """Difference of proportions. The variance uses (successes + 0.5) / (trials + 1) per arm so
        that an arm with no successes yet still has a variance."""
        _check_observations(baseline.trials, candidate.trials, 1, "a test of proportions")
        variance = proportion_difference_variance(
            baseline.successes, baseline.trials, candidate.successes, candidate.trials
        )
        difference = candidate.rate - baseline.rate
        return self._result(float(difference), float(variance), baseline.trials, candidate.trials, previous)


def proportion_difference_variance(
    baseline_successes: npt.ArrayLike,
    baseline_trials: npt.ArrayLike,
    candidate_successes: npt.ArrayLike,
    candidate_trials: npt.ArrayLike,
) -> FloatArray:
    """Variance of ``p_c - p_b`` with half-count smoothed rates (vectorised)."""
    x_b = np.asarray(baseline_successes, dtype=np.float64)
    n_b = np.asarray(baseline_trials, dtype=np.float64)
    x_c = np.asarray(candidate_successes, dtype=np.float64)
    n_c = np.asarray(candidate_trials, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_b = (x_b + 0.5) / (n_b + 1.0)
        p_c = (x_c + 0.5) / (n_c + 1.0)
        out: FloatArray = p_b * (1 - p_b) / n_b + p_c * (1 - p_c) / n_c
    return np.where((n_b > 0) & (n_c > 0), out, 0.0)


def _beta_interval(
    successes: float, failures: float, a: float, b: float, alpha: float
) -> tuple[float, float]:
    """Confidence sequence for a Bernoulli rate: ``{p: beta-mixture LR(p) < 1/alpha}``.

    The log-LR is convex in ``p`` with its minimum at the MLE, so each end is one root search.
    """
    x, y = successes, failures
    log_marginal = float(betaln(a + x, b + y) - betaln(a, b))
    threshold = math.log(1.0 / alpha)

    def excess(p: float) -> float:
        """``log(1/alpha) - log LR(p)``: positive inside the confidence set."""
        log_likelihood = (x * math.log(p) if x else 0.0) + (y * math.log1p(-p) if y else 0.0)
        return -log_marginal + log_likelihood + threshold

    tiny = 1e-15
    mle = min(max(x / (x + y), tiny), 1 - tiny) if x + y > 0 else 0.5
    if excess(mle) <= 0:  # cannot happen for alpha < 1; keep the whole range rather than fail
        return 0.0, 1.0
    low = 0.0 if x == 0 or excess(tiny) > 0 else float(brentq(excess, tiny, mle))
    high = 1.0 if y == 0 or excess(1 - tiny) > 0 else float(brentq(excess, mle, 1 - tiny))
    return low, high


@dataclass(frozen=True)
class BernoulliSPRT:
    """Sequential test of one Bernoulli rate against ``null_rate`` (beta mixture, exact).

    ``mde`` is the absolute change in rate worth detecting; it sets the prior's spread.
    """

    null_rate: float
    mde: float
    alpha: float = 0.05
    alternative: Alternative = "greater"

    def __post_init__(self) -> None:
        if not 0.0 < self.null_rate < 1.0:
            raise ValidationError(f"null_rate={self.null_rate} is outside (0, 1)")
        check_positive(self.mde, "mde")
        check_alpha(self.alpha)
        check_alternative(self.alternative)

    @property
    def prior(self) -> tuple[float, float]:
        return beta_prior(self.null_rate, min(self.null_rate + self.mde, 1.0 - 1e-9))

    def log_lr(self, successes: npt.ArrayLike, trials: npt.ArrayLike) -> FloatArray:
        x = np.asarray(successes, dtype=np.float64)
        a, b = self.prior
        return beta_mixture_log_lr(x, np.asarray(trials) - x, self.null_rate, a, b, self.alternative)

    def test(self, successes: int, trials: int, previous: SequentialResult | None = None) -> SequentialResult:
        if trials < 1 or not 0 <= successes <= trials:
            raise ValidationError(
                f"{successes} successes in {trials} trials cannot be tested",
                hint="pass counts with 0 <= successes <= trials and trials >= 1",
            )
        log_lr = float(self.log_lr(successes, trials))
        a, b = self.prior
        low, high = _beta_interval(successes, trials - successes, a, b, self.alpha)
        result = SequentialResult(
            estimate=successes / trials,
            p_value=float(p_value_from_log_lr(log_lr)),
            ci_low=low,
            ci_high=high,
            e_value=math.exp(min(log_lr, 700.0)),
            n_baseline=0,
            n_candidate=trials,
            alpha=self.alpha,
            alternative=self.alternative,
        )
        return result.carry(previous)


@dataclass(frozen=True)
class RateRatioSPRT:
    """Sequential test of ``candidate rate / baseline rate`` of events per unit of exposure.

    Events are errors (or any count), exposure is requests. ``mde`` is the relative increase worth
    detecting (0.5 = +50%); ``null_ratio`` the ratio under the null (1 = equal rates). The default
    ``greater`` asks "is the candidate worse?". Conditional binomial beta mixture: exact for Poisson
    counts, and for Bernoulli requests assigned at random.
    """

    mde: float = 0.5
    alpha: float = 0.05
    alternative: Alternative = "greater"
    null_ratio: float = 1.0

    def __post_init__(self) -> None:
        check_positive(self.mde, "mde")
        check_alpha(self.alpha)
        check_alternative(self.alternative)
        check_positive(self.null_ratio, "null_ratio")

    def null_share(self, baseline_exposure: npt.ArrayLike, candidate_exposure: npt.ArrayLike) -> FloatArray:
        """Probability that an event is the candidate's under the null (vectorised)."""
        n_b = np.asarray(baseline_exposure, dtype=np.float64)
        n_c = np.asarray(candidate_exposure, dtype=np.float64) * self.null_ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            out: FloatArray = n_c / (n_b + n_c)
        return out

    def log_lr(
        self,
        baseline_events: npt.ArrayLike,
        baseline_exposure: npt.ArrayLike,
        candidate_events: npt.ArrayLike,
        candidate_exposure: npt.ArrayLike,
    ) -> FloatArray:
        """Vectorised log-likelihood ratio; 0 where either arm has no exposure yet."""
        p0 = self.null_share(baseline_exposure, candidate_exposure)
        valid = (p0 > 0) & (p0 < 1)
        p0 = np.where(valid, p0, 0.5)
        factor = 1.0 + self.mde if self.alternative != "less" else 1.0 / (1.0 + self.mde)
        p1 = p0 * factor / (1.0 - p0 + p0 * factor)
        distance = np.abs(p1 - p0)
        concentration = np.maximum(p0 * (1.0 - p0) / distance**2 - 1.0, 1.0)
        log_lr = beta_mixture_log_lr(
            candidate_events,
            baseline_events,
            p0,
            p0 * concentration,
            (1.0 - p0) * concentration,
            self.alternative,
        )
        out: FloatArray = np.where(valid, log_lr, 0.0)
        return out

    def test(
        self,
        baseline_events: int,
        baseline_exposure: int,
        candidate_events: int,
        candidate_exposure: int,
        previous: SequentialResult | None = None,
    ) -> SequentialResult:
        """The rate ratio, an always-valid p-value and a confidence sequence for the ratio."""
        for name, events, exposure in (
            ("baseline", baseline_events, baseline_exposure),
            ("candidate", candidate_events, candidate_exposure),
        ):
            if exposure < 1 or events < 0:
                raise ValidationError(
                    f"{name} has {events} events in {exposure} exposure",
                    hint="wait for traffic in both arms; counts cannot be negative",
                )
        log_lr = float(self.log_lr(baseline_events, baseline_exposure, candidate_events, candidate_exposure))
        p0 = float(self.null_share(baseline_exposure, candidate_exposure))
        # two-sided prior centred on the null share, spread to the MDE, for the interval
        p1 = p0 * (1.0 + self.mde) / (1.0 - p0 + p0 * (1.0 + self.mde))
        a, b = beta_prior(p0, p1)
        low_share, high_share = _beta_interval(candidate_events, baseline_events, a, b, self.alpha)
        scale = baseline_exposure / candidate_exposure

        def ratio(share: float) -> float:
            return math.inf if share >= 1.0 else share / (1.0 - share) * scale

        total = baseline_events + candidate_events
        estimate = math.nan if total == 0 else ratio(candidate_events / total)
        result = SequentialResult(
            estimate=estimate,
            p_value=float(p_value_from_log_lr(log_lr)),
            ci_low=ratio(low_share),
            ci_high=ratio(high_share),
            e_value=math.exp(min(log_lr, 700.0)),
            n_baseline=baseline_exposure,
            n_candidate=candidate_exposure,
            alpha=self.alpha,
            alternative=self.alternative,
        )
        return result.carry(previous)
