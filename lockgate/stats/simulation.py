"""Simulated canaries: many A/A or A/B request streams watched with K looks, all runs at once.

Pure and seeded: every function takes a ``numpy.random.Generator``. Each run is a stream of
requests split at random between baseline and candidate, with Bernoulli errors and, optionally,
log-normal latencies; at every look each decider sees the cumulative counts (and the counts of the
last interval) and may stop the run with a verdict. The same streams go through every decider, so
their false-alarm rates, power and samples-to-decision compare like for like. Used by the tests,
``benchmarks/bench_stats.py`` and the ``lockgate simulate-stats`` command.

Peers modelled here, for comparison:

- :class:`NaivePeeking` — a fixed-horizon two-proportion z test checked at every look.
- :class:`StaticThreshold` — Flagger-style: the candidate's error rate in each interval against a
  fixed maximum; roll back after ``failed_checks`` failing intervals.
- :class:`IntervalMannWhitney` — Kayenta-style: a Mann-Whitney U test on each interval's data.
- :class:`PolicyDecider` — lockgate's :class:`~lockgate.stats.decision.SequentialPolicy`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from lockgate.errors import ValidationError
from lockgate.stats._arguments import check_alpha
from lockgate.stats.accumulators import default_latency_bounds_ms
from lockgate.stats.decision import ArmBatch, SequentialPolicy
from lockgate.stats.fixed import mann_whitney_binary, two_proportion_z_p

__all__ = [
    "DeciderOutcome",
    "IntervalMannWhitney",
    "NaivePeeking",
    "PolicyDecider",
    "StaticThreshold",
    "StreamDecider",
    "StreamSpec",
    "peeking_false_alarm_rate",
    "simulate_streams",
]

_CONTINUE, _PROMOTE, _ROLLBACK, _HALT = range(4)
Codes = npt.NDArray[np.int8]


@dataclass(frozen=True)
class StreamSpec:
    """What the simulated traffic looks like.

    ``requests_per_look`` counts both arms; ``candidate_share`` of them go to the candidate at
    random. ``latency_median_ms=None`` records no latencies (the latency guardrail is skipped).
    """

    looks: int = 100
    requests_per_look: int = 240
    candidate_share: float = 0.5
    baseline_error_rate: float = 0.01
    candidate_error_rate: float = 0.01
    latency_median_ms: float | None = None
    latency_sigma: float = 0.5
    candidate_latency_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.looks < 1 or self.requests_per_look < 2:
            raise ValidationError("a stream needs 1 or more looks and 2 or more requests per look")
        check_alpha(self.candidate_share, "candidate_share")
        for name in ("baseline_error_rate", "candidate_error_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValidationError(f"{name}={rate} is outside [0, 1]")


@dataclass(frozen=True)
class DeciderOutcome:
    """Per run: the first verdict other than continue (code) and the mean requests per arm then."""

    name: str
    codes: Codes
    samples_per_arm: npt.NDArray[np.float64]

    def rate(self, code: int) -> float:
        return float(np.mean(self.codes == code))

    @property
    def rollback_rate(self) -> float:
        return self.rate(_ROLLBACK)

    @property
    def median_n_to_rollback(self) -> float:
        """Median requests per arm to a rollback over all runs; a run that never rolled back
        counts as infinitely late, so this is infinite when fewer than half the runs rolled back."""
        n = np.where(self.codes == _ROLLBACK, self.samples_per_arm, np.inf)
        return float(np.median(n))


class StreamDecider(Protocol):
    """Anything that looks at all runs' counts after each interval and returns decision codes."""

    name: str

    def reset(self, runs: int) -> None: ...

    def step(
        self,
        baseline: ArmBatch,
        candidate: ArmBatch,
        new_baseline: ArmBatch,
        new_candidate: ArmBatch,
    ) -> Codes: ...


@dataclass
class PolicyDecider:
    """lockgate's :class:`SequentialPolicy` on the cumulative counts."""

    policy: SequentialPolicy
    name: str = "lockgate"

    def reset(self, runs: int) -> None:
        return None

    def step(
        self,
        baseline: ArmBatch,
        candidate: ArmBatch,
        new_baseline: ArmBatch,
        new_candidate: ArmBatch,
    ) -> Codes:
        return self.policy.decide_many(baseline, candidate)


@dataclass
class NaivePeeking:
    """Roll back once a one-sided fixed-horizon z test on cumulative errors gives p <= alpha."""

    alpha: float = 0.05
    name: str = "naive"

    def reset(self, runs: int) -> None:
        return None

    def step(
        self,
        baseline: ArmBatch,
        candidate: ArmBatch,
        new_baseline: ArmBatch,
        new_candidate: ArmBatch,
    ) -> Codes:
        p = two_proportion_z_p(
            baseline.errors, baseline.requests, candidate.errors, candidate.requests, "greater"
        )
        return np.where(p <= self.alpha, _ROLLBACK, _CONTINUE).astype(np.int8)


@dataclass
class StaticThreshold:
    """Flagger-style: an interval whose candidate error rate is above ``max_error_rate`` is a
    failed check; ``failed_checks`` of them roll back."""

    max_error_rate: float
    failed_checks: int = 5
    name: str = "threshold"
    _failures: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def reset(self, runs: int) -> None:
        self._failures = np.zeros(runs, dtype=np.int64)

    def step(
        self,
        baseline: ArmBatch,
        candidate: ArmBatch,
        new_baseline: ArmBatch,
        new_candidate: ArmBatch,
    ) -> Codes:
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(
                new_candidate.requests > 0,
                new_candidate.errors / np.maximum(new_candidate.requests, 1),
                0.0,
            )
        self._failures += rate > self.max_error_rate
        return np.where(self._failures >= self.failed_checks, _ROLLBACK, _CONTINUE).astype(np.int8)


@dataclass
class IntervalMannWhitney:
    """Kayenta-style: a one-sided Mann-Whitney U test on each interval's 0/1 error outcomes."""

    alpha: float = 0.05
    name: str = "mann_whitney"

    def reset(self, runs: int) -> None:
        return None

    def step(
        self,
        baseline: ArmBatch,
        candidate: ArmBatch,
        new_baseline: ArmBatch,
        new_candidate: ArmBatch,
    ) -> Codes:
        p = mann_whitney_binary(
            new_baseline.errors,
            new_baseline.requests,
            new_candidate.errors,
            new_candidate.requests,
            "greater",
        )
        return np.where(p <= self.alpha, _ROLLBACK, _CONTINUE).astype(np.int8)


def _latency_counts(
    rng: np.random.Generator,
    requests: npt.NDArray[np.int64],
    median_ms: float,
    sigma: float,
    bounds: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """Histogram counts (runs, buckets) of ``requests[i]`` log-normal latencies per run."""
    runs = requests.size
    total = int(requests.sum())
    latencies = median_ms * np.exp(sigma * rng.standard_normal(total))
    bucket = np.searchsorted(bounds, latencies, side="left")
    run = np.repeat(np.arange(runs), requests)
    width = bounds.size + 1
    counts = np.bincount(run * width + bucket, minlength=runs * width)
    return counts.reshape(runs, width).astype(np.int64)


def simulate_streams(
    rng: np.random.Generator,
    spec: StreamSpec,
    deciders: Sequence[StreamDecider],
    *,
    runs: int = 2000,
) -> dict[str, DeciderOutcome]:
    """Run ``runs`` simulated canaries through every decider; a run stops for a decider at its
    first verdict other than continue."""
    if runs < 1:
        raise ValidationError(f"runs={runs} must be 1 or more")
    names = [d.name for d in deciders]
    if len(set(names)) != len(names):
        raise ValidationError(f"decider names {names} are not unique")
    bounds_tuple = default_latency_bounds_ms()
    bounds = np.asarray(bounds_tuple)
    with_latency = spec.latency_median_ms is not None
    width = bounds.size + 1
    zeros = np.zeros(runs, dtype=np.int64)
    cum = {
        "req_b": zeros.copy(),
        "req_c": zeros.copy(),
        "err_b": zeros.copy(),
        "err_c": zeros.copy(),
    }
    lat_b = np.zeros((runs, width), dtype=np.int64) if with_latency else None
    lat_c = np.zeros((runs, width), dtype=np.int64) if with_latency else None
    codes = {name: np.zeros(runs, dtype=np.int8) for name in names}
    samples = {name: np.full(runs, np.nan) for name in names}
    for decider in deciders:
        decider.reset(runs)
    for _ in range(spec.looks):
        new_c = rng.binomial(spec.requests_per_look, spec.candidate_share, size=runs)
        new_b = spec.requests_per_look - new_c
        new_err_b = rng.binomial(new_b, spec.baseline_error_rate)
        new_err_c = rng.binomial(new_c, spec.candidate_error_rate)
        new_lat_b = new_lat_c = None
        if with_latency:
            assert spec.latency_median_ms is not None
            assert lat_b is not None
            assert lat_c is not None
            median = spec.latency_median_ms
            new_lat_b = _latency_counts(rng, new_b, median, spec.latency_sigma, bounds)
            new_lat_c = _latency_counts(
                rng, new_c, median * spec.candidate_latency_scale, spec.latency_sigma, bounds
            )
            lat_b += new_lat_b
            lat_c += new_lat_c
        cum["req_b"] += new_b
        cum["req_c"] += new_c
        cum["err_b"] += new_err_b
        cum["err_c"] += new_err_c
        baseline = ArmBatch(cum["req_b"], cum["err_b"], lat_b, bounds_tuple)
        candidate = ArmBatch(cum["req_c"], cum["err_c"], lat_c, bounds_tuple)
        interval_b = ArmBatch(new_b.astype(np.int64), new_err_b.astype(np.int64), new_lat_b, bounds_tuple)
        interval_c = ArmBatch(new_c.astype(np.int64), new_err_c.astype(np.int64), new_lat_c, bounds_tuple)
        per_arm = (cum["req_b"] + cum["req_c"]) / 2.0
        for decider in deciders:
            step = decider.step(baseline, candidate, interval_b, interval_c)
            fresh = (codes[decider.name] == _CONTINUE) & (step != _CONTINUE)
            codes[decider.name][fresh] = step[fresh]
            samples[decider.name][fresh] = per_arm[fresh]
    return {name: DeciderOutcome(name, codes[name], samples[name]) for name in names}


def peeking_false_alarm_rate(
    rng: np.random.Generator, *, looks: int, runs: int = 20_000, alpha: float = 0.05
) -> float:
    """Share of A/A tests that a two-sided fixed-horizon z test calls significant at some look,
    with ``looks`` equally spaced looks (the classic result of Armitage, McPherson & Rowe, 1969)."""
    check_alpha(alpha)
    if looks < 1 or runs < 1:
        raise ValidationError("looks and runs must be 1 or more")
    walk = np.cumsum(rng.standard_normal((runs, looks)), axis=1)
    z = np.abs(walk) / np.sqrt(np.arange(1, looks + 1))
    critical = float(norm.isf(alpha / 2.0))
    return float(np.mean((z > critical).any(axis=1)))


def median_or_none(value: float) -> float | None:
    """JSON-friendly: None for an infinite or undefined median."""
    return value if math.isfinite(value) else None
