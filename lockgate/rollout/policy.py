"""A guardrail policy with fixed thresholds: the simple, explainable default.

:class:`ThresholdPolicy` implements the :class:`lockgate.stats.verdict.Policy` protocol: it waits
for enough requests on both sides, then rolls back when the candidate's error rate or p99 latency is
worse than the baseline's by more than the thresholds, and says promote otherwise. It judges point
estimates, so checking it often raises its false-rollback rate; ``lockgate.stats`` has the
anytime-valid sequential policy for when that matters.
"""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.errors import ValidationError
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.verdict import Decision, Verdict

__all__ = ["ThresholdPolicy"]


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
