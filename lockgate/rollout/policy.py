"""The policies that judge a rollout, and the one a deployment's spec asks for.

- :class:`SequentialRolloutPolicy` (the default): lockgate's anytime-valid
  :class:`~lockgate.stats.decision.SequentialPolicy`, built per stage with that stage's split and a
  share of the error budget, so the false-rollback rate stays at ``alpha`` however often the
  controller looks.
- :class:`ThresholdPolicy`: fixed limits on point estimates: simple and explainable, but checking it
  often raises its false-rollback rate (the statistics docs show by how much).

Both implement the :class:`lockgate.stats.verdict.Policy` protocol; :func:`policy_for` reads a
spec's ``analysis`` section.
"""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.errors import ValidationError
from lockgate.rollout.spec import Analysis, DeploymentSpec
from lockgate.stats.accumulators import Proportion, VariantStats
from lockgate.stats.fixed import two_proportion_z_test
from lockgate.stats.verdict import Decision, Policy, Verdict

__all__ = ["SequentialRolloutPolicy", "ThresholdPolicy", "policy_for", "policy_for_analysis"]


@dataclass(frozen=True)
class ThresholdPolicy:
    """Roll back when the candidate breaches a limit relative to the baseline.

    - error rate: a breach needs the candidate's rate above ``max_error_rate_ratio`` times the
      baseline's *and* more than ``max_error_rate_increase`` (absolute) above it, so one error
      against a clean baseline is not a breach; ``max_error_rate`` (absolute) breaches on its own.
    - latency: the candidate's p99 above ``max_p99_latency_ratio`` times the baseline's.
    - nothing is judged until both sides have ``min_requests`` requests (until then: continue).

    ``None`` switches a check off.
    """

    max_error_rate_ratio: float | None = 1.5
    max_error_rate_increase: float = 0.01
    max_error_rate: float | None = None
    max_p99_latency_ratio: float | None = 1.5
    min_requests: int = 200

    def __post_init__(self) -> None:
        if self.max_error_rate_ratio is not None and self.max_error_rate_ratio < 1.0:
            raise ValidationError(
                f"max_error_rate_ratio {self.max_error_rate_ratio} is below 1",
                hint="a ratio below 1 rolls back a candidate as good as the baseline; use >= 1",
            )
        if self.max_p99_latency_ratio is not None and self.max_p99_latency_ratio < 1.0:
            raise ValidationError(
                f"max_p99_latency_ratio {self.max_p99_latency_ratio} is below 1",
                hint="use a ratio >= 1, e.g. 1.2 for 20% slower at most",
            )
        if not 0.0 <= self.max_error_rate_increase <= 1.0:
            raise ValidationError(
                f"max_error_rate_increase {self.max_error_rate_increase} is outside [0, 1]",
                hint="give it as a fraction, e.g. 0.01 for one percentage point",
            )
        if self.max_error_rate is not None and not 0.0 <= self.max_error_rate <= 1.0:
            raise ValidationError(
                f"max_error_rate {self.max_error_rate} is outside [0, 1]",
                hint="give it as a fraction, e.g. 0.05 for 5%",
            )
        if self.min_requests < 1:
            raise ValidationError(f"min_requests {self.min_requests} is below 1", hint="judge after e.g. 200")

    def decide(self, baseline: VariantStats, candidate: VariantStats) -> Verdict:
        base_rate, cand_rate = baseline.error_rate, candidate.error_rate
        base_p99 = baseline.latency.quantile(0.99)
        cand_p99 = candidate.latency.quantile(0.99)
        numbers = {
            "baseline_error_rate": base_rate,
            "candidate_error_rate": cand_rate,
            "baseline_p99_ms": base_p99,
            "candidate_p99_ms": cand_p99,
        }
        if baseline.requests > 0 and candidate.requests > 0:
            # the difference with its fixed-horizon 95% Wald interval (valid at one look only)
            test = two_proportion_z_test(
                Proportion(trials=baseline.requests, successes=baseline.errors),
                Proportion(trials=candidate.requests, successes=candidate.errors),
            )
            numbers.update(
                error_rate_diff=test.estimate,
                error_rate_diff_ci_low=test.ci_low,
                error_rate_diff_ci_high=test.ci_high,
            )
        if base_rate > 0:
            numbers["error_rate_ratio"] = cand_rate / base_rate
        if base_p99 > 0:
            numbers["p99_latency_ratio"] = cand_p99 / base_p99
        short = [
            f"{side} has {stats.requests} of {self.min_requests} requests"
            for side, stats in (("baseline", baseline), ("candidate", candidate))
            if stats.requests < self.min_requests
        ]
        if short:
            return Verdict(Decision.CONTINUE, ("waiting: " + ", ".join(short),), numbers)

        breaches = []
        if (
            self.max_error_rate_ratio is not None
            and cand_rate > base_rate * self.max_error_rate_ratio
            and cand_rate - base_rate > self.max_error_rate_increase
        ):
            breaches.append(
                f"error rate {cand_rate:.4f} vs baseline {base_rate:.4f} is over "
                f"{self.max_error_rate_ratio:g}x and +{self.max_error_rate_increase:g}"
            )
        if self.max_error_rate is not None and cand_rate > self.max_error_rate:
            breaches.append(f"error rate {cand_rate:.4f} is above {self.max_error_rate:g}")
        if (
            self.max_p99_latency_ratio is not None
            and base_p99 > 0
            and cand_p99 > base_p99 * self.max_p99_latency_ratio
        ):
            breaches.append(
                f"p99 latency {cand_p99:.1f} ms vs baseline {base_p99:.1f} ms is over "
                f"{self.max_p99_latency_ratio:g}x"
            )
        if breaches:
            return Verdict(Decision.ROLLBACK, tuple(breaches), numbers)
        return Verdict(Decision.PROMOTE, ("within all thresholds",), numbers)


@dataclass(frozen=True)
class _Continue:
    """The stage's numbers cannot be compared (one arm has all the traffic): decide nothing."""

    reason: str

    def decide(self, baseline: VariantStats, candidate: VariantStats) -> Verdict:
        return Verdict(
            Decision.CONTINUE,
            (self.reason,),
            {"n_baseline": float(baseline.requests), "n_candidate": float(candidate.requests)},
        )


@dataclass(frozen=True)
class SequentialRolloutPolicy:
    """The anytime-valid :class:`~lockgate.stats.decision.SequentialPolicy`, one per stage.

    Each stage is judged on its own requests with the split its weights imply (so the sample-ratio
    check knows what to expect), at ``alpha / stages``: the chance of a false rollback over the
    whole rollout, however often the controller looks, stays at or below ``alpha`` (Bonferroni
    over stages). Mirrored stages (shadow, blue-green warm-up) skip the sample-ratio check in
    effect, since copies dropped under load are not a routing fault. A stage where one arm has all
    the traffic (blue-green's bake) has nothing to compare: it continues until its own limits.
    """

    alpha: float = 0.05
    min_samples: int = 200
    max_samples: int | None = 10_000
    error_rate_mde: float = 0.5
    latency_tolerance: float = 0.2
    srm_alpha: float = 0.001

    def __post_init__(self) -> None:
        self.for_stage(0.5, 1, is_mirrored=False)  # validates every parameter at construction

    def for_stage(self, share: float, stages: int, *, is_mirrored: bool) -> Policy:
        from lockgate.stats.decision import SequentialPolicy

        if not 0.0 < share < 1.0:
            return _Continue(f"one arm has all the traffic (candidate share {share:g}): nothing to compare")
        return SequentialPolicy(
            alpha=self.alpha / max(stages, 1),
            expected_split=share,
            min_samples=self.min_samples,
            max_samples=self.max_samples,
            error_rate_mde=self.error_rate_mde,
            latency_tolerance=self.latency_tolerance,
            srm_alpha=1e-12 if is_mirrored else self.srm_alpha,
        )

    def decide(self, baseline: VariantStats, candidate: VariantStats) -> Verdict:
        """Judge as one stage at a 50/50 split (for callers that do not step stages)."""
        return self.for_stage(0.5, 1, is_mirrored=False).decide(baseline, candidate)


def policy_for(spec: DeploymentSpec) -> Policy:
    """The policy a deployment's ``analysis`` section asks for (sequential by default)."""
    return policy_for_analysis(spec.analysis)


def policy_for_analysis(analysis: Analysis) -> Policy:
    options = dict(analysis.options)
    if analysis.policy == "threshold":
        return ThresholdPolicy(**options)  # type: ignore[arg-type]
    return SequentialRolloutPolicy(**options)  # type: ignore[arg-type]
