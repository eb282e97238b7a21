"""The policies that judge a rollout, and the one a deployment's spec asks for.

- :class:`SequentialRolloutPolicy` (the default): anytime-valid guardrails with practical margins,
  analysed per analysis unit (sticky users as users), one error budget for the whole rollout; a
  stage advances on evidence of non-inferiority, not on time.
- :class:`ThresholdPolicy`: fixed limits on point estimates: simple and explainable, but checking it
  often raises its false-rollback rate (the statistics docs show by how much).

Both implement the :class:`lockgate.stats.verdict.Policy` protocol; :func:`policy_for` reads a
spec's ``analysis`` section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lockgate.errors import ValidationError
from lockgate.rollout.analysis import DEFAULT_ERROR_MARGIN, DEFAULT_LATENCY_MARGIN, Analysis, PrimaryGoal
from lockgate.rollout.spec import DeploymentSpec
from lockgate.stats._arguments import check_alpha, check_positive
from lockgate.stats.accumulators import Proportion, VariantStats
from lockgate.stats.fixed import two_proportion_z_test
from lockgate.stats.guardrails import Check, Margin, check_errors, check_latency, check_primary, check_srm
from lockgate.stats.verdict import Decision, Policy, Verdict

__all__ = [
    "RolloutPolicy",
    "RolloutView",
    "SequentialRolloutPolicy",
    "ThresholdPolicy",
    "policy_for",
    "policy_for_analysis",
]


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
class RolloutView:
    """What the controller shows a rollout policy at one look.

    ``baseline``/``candidate``: everything each arm served since the rollout started (the evidence
    of every stage adds up); ``stage_baseline``/``stage_candidate``: since the current stage began,
    where ``expected_share`` (the candidate's share the stage's weights imply) holds, for the
    sample-ratio check. ``is_mirrored``: the candidate sees copies (shadow, warm-up), which may be
    dropped under load, so the split is no test of routing. ``is_experiment``: an A/B test, decided
    by the primary metric, not by non-inferiority.
    """

    baseline: VariantStats
    candidate: VariantStats
    stage_baseline: VariantStats
    stage_candidate: VariantStats
    expected_share: float
    is_mirrored: bool = False
    is_experiment: bool = False


@runtime_checkable
class RolloutPolicy(Protocol):
    """A policy that judges a whole rollout at each look (the controller's preferred kind)."""

    def judge(self, view: RolloutView) -> Verdict: ...


@dataclass(frozen=True)
class SequentialRolloutPolicy:
    """lockgate's default: anytime-valid guardrails with margins, on analysis units.

    At each look, in this order:

    1. **Sample ratio** of the current stage on assignment units (:func:`check_srm`); a mismatch
       at ``srm_alpha`` halts: the numbers cannot be trusted.
    2. **Minimum samples**: below ``min_samples`` requests in either arm since the rollout began,
       continue.
    3. **Harm**: a guardrail (errors, latency, the primary metric) shown worse than the baseline
       and with its estimate past the margin rolls back at once.
    4. **Evidence**: a canary stage may advance (verdict promote) once every guardrail is shown
       non-inferior within its margin; an A/B test with a primary metric promotes once it is shown
       better (and the guardrails non-inferior), and rolls back when the improvement hoped for is
       ruled out (futility); without one, an A/B test is a fixed-split canary.

    One error budget covers the whole rollout: the evidence since the rollout started is one
    confidence sequence per guardrail, valid at every look, so no stage takes a share of ``alpha``;
    it is split only across the guardrails (Bonferroni). A false rollback of an A/A candidate,
    and a promotion of a candidate exactly a margin worse, each happen at most ``alpha / k`` of the
    time for ``k`` guardrails, however often the controller looks.
    """

    alpha: float = 0.05
    min_samples: int = 200
    srm_alpha: float = 0.001
    error_margin: Margin | None = DEFAULT_ERROR_MARGIN
    latency_margin: Margin | None = DEFAULT_LATENCY_MARGIN
    primary: PrimaryGoal | None = None
    error_scale: float = 0.005
    latency_scale: float = 0.1

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        check_alpha(self.srm_alpha, "srm_alpha")
        if self.min_samples < 2:
            raise ValidationError(
                f"min_samples {self.min_samples} is below 2", hint="judge after e.g. 200 requests per arm"
            )
        check_positive(self.error_scale, "error_scale")
        check_positive(self.latency_scale, "latency_scale")

    @property
    def guardrails(self) -> int:
        return sum(x is not None for x in (self.error_margin, self.latency_margin, self.primary))

    @property
    def alpha_each(self) -> float:
        return self.alpha / max(self.guardrails, 1)

    def judge(self, view: RolloutView) -> Verdict:
        """The verdict for one look at a rollout (pure)."""
        base, cand = view.baseline, view.candidate
        numbers: dict[str, float] = {
            "alpha": self.alpha,
            "alpha_per_guardrail": self.alpha_each,
            "n_baseline": float(base.requests),
            "n_candidate": float(cand.requests),
        }
        if 0.0 < view.expected_share < 1.0 and not view.is_mirrored:
            srm = check_srm(
                view.stage_baseline.analysis_units(),
                view.stage_candidate.analysis_units(),
                view.expected_share,
            )
            numbers.update(srm_p=srm.p_value, srm_share=srm.share, srm_expected_share=srm.expected)
            if srm.p_value <= self.srm_alpha:
                return Verdict(
                    Decision.HALT,
                    (
                        f"sample-ratio mismatch: the candidate got {srm.share:.2%} of {srm.requests:,} "
                        f"requests this stage, expected {srm.expected:.2%} (always-valid p={srm.p_value:.2g}"
                        f" <= {self.srm_alpha:g}, on analysis units); assignment or logging is broken, "
                        "so no other number can be trusted",
                    ),
                    numbers,
                )
        # the intervals are shown from the first requests on; they decide from min_samples on
        checks = self._checks(base, cand) if min(base.requests, cand.requests) >= 2 else {}
        for check in checks.values():
            numbers.update(check.numbers())
        clean = {k: v for k, v in numbers.items() if math.isfinite(v)}
        if min(base.requests, cand.requests) < self.min_samples:
            return Verdict(
                Decision.CONTINUE,
                (
                    f"waiting for {self.min_samples:,} requests per arm "
                    f"(baseline {base.requests:,}, candidate {cand.requests:,})",
                ),
                clean,
            )
        lines = {name: _describe(check) for name, check in checks.items()}
        harmed = [name for name, check in checks.items() if check.is_harm]
        if harmed:
            return Verdict(
                Decision.ROLLBACK, tuple(f"{name} is worse: {lines[name]}" for name in harmed), clean
            )
        # an A/B test decides on its primary metric; without one it is a fixed-split canary
        decides = view.is_experiment and self.primary is not None
        guards = [name for name in checks if not (decides and name == "primary")]
        unproven = [name for name in guards if not checks[name].is_noninferior]
        if self.primary is not None and "primary" not in checks:
            unproven.append("primary")
            lines["primary"] = "no outcomes joined yet in both arms"
        if decides:
            return self._experiment(checks, lines, unproven, clean)
        if not unproven:
            return Verdict(
                Decision.PROMOTE,
                tuple(f"{name} non-inferior: {lines[name]}" for name in guards),
                clean,
            )
        return Verdict(
            Decision.CONTINUE,
            tuple(f"no evidence yet that {name} is within its margin: {lines[name]}" for name in unproven),
            clean,
        )

    def _experiment(
        self, checks: dict[str, Check], lines: dict[str, str], unproven: list[str], numbers: dict[str, float]
    ) -> Verdict:
        primary = checks.get("primary")
        if primary is None:
            reason = "the A/B test decides on the primary metric: waiting for outcomes in both arms"
            return Verdict(Decision.CONTINUE, (reason,), numbers)
        if primary.is_futile:
            return Verdict(
                Decision.ROLLBACK,
                (f"futility: the improvement hoped for is ruled out: {lines['primary']}",),
                numbers,
            )
        if primary.is_superior and not unproven:
            return Verdict(
                Decision.PROMOTE,
                (
                    f"primary is better: {lines['primary']}",
                    *(f"{n} non-inferior: {lines[n]}" for n in checks if n != "primary"),
                ),
                numbers,
            )
        return Verdict(
            Decision.CONTINUE,
            (
                f"no conclusion yet: {lines['primary']}",
                *(f"{n} not yet shown within its margin" for n in unproven),
            ),
            numbers,
        )

    def _checks(self, base: VariantStats, cand: VariantStats) -> dict[str, Check]:
        alpha = self.alpha_each
        units_b, units_c = base.analysis_units(), cand.analysis_units()
        out: dict[str, Check] = {}
        if self.error_margin is not None:
            out["errors"] = check_errors(
                units_b, units_c, self.error_margin, alpha=alpha, scale=self.error_scale
            )
        if self.latency_margin is not None:
            out["latency"] = check_latency(
                units_b,
                units_c,
                self.latency_margin,
                alpha=alpha,
                scale=self.latency_scale,
                log_variances=(cand.latency.log_moments()[1], base.latency.log_moments()[1]),
            )
        if self.primary is not None:
            primary = check_primary(
                units_b,
                units_c,
                metric=self.primary.metric,
                higher_is_better=self.primary.higher_is_better,
                margin=self.primary.margin,
                min_improvement=self.primary.min_improvement,
                alpha=alpha,
                scale=self.primary.mixing_scale(),
                outcome_variances=(cand.outcome.variance, base.outcome.variance),
            )
            if primary is not None:
                out["primary"] = primary
        return out

    def decide(self, baseline: VariantStats, candidate: VariantStats) -> Verdict:
        """Judge two arms as one 50/50 stage (for callers that do not step a rollout)."""
        return self.judge(RolloutView(baseline, candidate, baseline, candidate, 0.5))


def _describe(check: Check) -> str:
    """One check in words, with its interval and margin."""
    if check.name == "latency":
        return (
            f"geometric-mean latency {check.candidate:.3g} ms vs baseline {check.baseline:.3g} ms, "
            f"ratio {check.worse_by:.3f} (always-valid interval {check.ci_low:.3f}-{check.ci_high:.3f}, "
            f"margin {check.margin:.3f}, level {check.alpha:.3g})"
        )
    if check.name == "errors":
        return (
            f"error rate {check.candidate:.3%} vs baseline {check.baseline:.3%}, worse by "
            f"{check.worse_by * 100:+.3f} pp (always-valid interval {check.ci_low * 100:+.3f} to "
            f"{check.ci_high * 100:+.3f} pp, margin {check.margin * 100:.3f} pp, level {check.alpha:.3g})"
        )
    return (
        f"{check.candidate:.4g} vs baseline {check.baseline:.4g}, worse by {check.worse_by:+.4g} "
        f"(always-valid interval {check.ci_low:+.4g} to {check.ci_high:+.4g}, margin {check.margin:.4g}, "
        f"level {check.alpha:.3g})"
    )


def policy_for(spec: DeploymentSpec) -> Policy:
    """The policy a deployment's ``analysis`` section asks for (sequential by default)."""
    return policy_for_analysis(spec.analysis)


def policy_for_analysis(analysis: Analysis) -> Policy:
    options = dict(analysis.options)
    if analysis.policy == "threshold":
        return ThresholdPolicy(**options)  # type: ignore[arg-type]
    return SequentialRolloutPolicy(
        **options,  # type: ignore[arg-type]
        error_margin=analysis.error_margin,
        latency_margin=analysis.latency_margin,
        primary=analysis.primary,
    )
