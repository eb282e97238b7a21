"""SequentialPolicy: the verdicts that rollouts depend on, with their reasons and numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.stats import (
    ArmBatch,
    Decision,
    Policy,
    PrimaryMetric,
    Proportion,
    SequentialPolicy,
    VariantStats,
)


def _traffic(
    rng: np.random.Generator,
    requests: int,
    error_rate: float,
    *,
    latency_ms: float = 20.0,
    conversion_rate: float | None = None,
) -> VariantStats:
    stats = VariantStats()
    stats.record_many(
        latency_ms * np.exp(0.4 * rng.standard_normal(requests)), rng.random(requests) < error_rate
    )
    if conversion_rate is not None:
        stats.record_outcomes((rng.random(requests) < conversion_rate).astype(float))
    return stats


def test_policy_satisfies_the_protocol() -> None:
    policy: Policy = SequentialPolicy()
    verdict = policy.decide(VariantStats(), VariantStats())
    assert verdict.decision is Decision.CONTINUE
    assert "waiting for 200 requests" in verdict.reasons[0]


def test_doubled_error_rate_rolls_back_within_a_few_thousand_requests() -> None:
    policy = SequentialPolicy()
    rng = np.random.default_rng(1)
    rolled_back_at = []
    for _ in range(20):
        baseline, candidate = VariantStats(), VariantStats()
        for look in range(1, 61):  # a look every 100 requests per arm, up to 6,000
            baseline.merge(_traffic(rng, 100, 0.01))
            candidate.merge(_traffic(rng, 100, 0.02))
            verdict = policy.decide(baseline, candidate)
            if verdict.decision is not Decision.CONTINUE:
                assert verdict.decision is Decision.ROLLBACK, verdict.reasons
                rolled_back_at.append(look * 100)
                last = verdict
                break
    assert len(rolled_back_at) >= 18
    assert float(np.median(rolled_back_at)) <= 3000
    verdict = last
    candidate_n = rolled_back_at[-1]
    assert any("error rate is higher" in r for r in verdict.reasons)
    numbers = verdict.numbers
    assert numbers["error_p"] <= numbers["alpha_per_guardrail"]
    assert numbers["error_ratio_ci_low"] > 1.0
    assert numbers["n_candidate"] == candidate_n
    assert all(math.isfinite(v) for v in numbers.values())


def test_slower_tail_rolls_back_and_a_small_slowdown_does_not() -> None:
    rng = np.random.default_rng(2)
    policy = SequentialPolicy(max_samples=None)
    baseline = _traffic(rng, 3000, 0.0)
    slow = _traffic(rng, 3000, 0.0, latency_ms=40.0)
    verdict = policy.decide(baseline, slow)
    assert verdict.decision is Decision.ROLLBACK
    assert "tail latency is worse" in verdict.reasons[0]
    assert verdict.numbers["latency_candidate_ms"] > verdict.numbers["latency_threshold_ms"]
    within_tolerance = _traffic(rng, 3000, 0.0, latency_ms=21.0)
    assert policy.decide(baseline, within_tolerance).decision is Decision.CONTINUE


def test_sample_ratio_mismatch_halts() -> None:
    rng = np.random.default_rng(3)
    verdict = SequentialPolicy(expected_split=0.5).decide(
        _traffic(rng, 5000, 0.01), _traffic(rng, 4000, 0.01)
    )
    assert verdict.decision is Decision.HALT
    assert "sample-ratio mismatch" in verdict.reasons[0]
    assert verdict.numbers["srm_p"] <= 0.001
    canary = SequentialPolicy(expected_split=0.05).decide(_traffic(rng, 9500, 0.01), _traffic(rng, 500, 0.01))
    assert canary.decision is not Decision.HALT


def test_no_primary_promotes_at_the_horizon_without_harm() -> None:
    rng = np.random.default_rng(4)
    policy = SequentialPolicy(max_samples=5000)
    early = policy.decide(_traffic(rng, 4000, 0.01), _traffic(rng, 4000, 0.01))
    assert early.decision is Decision.CONTINUE
    verdict = policy.decide(_traffic(rng, 5000, 0.01), _traffic(rng, 5000, 0.01))
    assert verdict.decision is Decision.PROMOTE
    assert "no guardrail showed harm" in verdict.reasons[0]


def test_primary_conversions_promote_roll_back_and_inconclusive() -> None:
    rng = np.random.default_rng(5)
    policy = SequentialPolicy(primary=PrimaryMetric.CONVERSIONS, primary_mde=0.02, max_samples=20_000)
    better = policy.decide(
        _traffic(rng, 5000, 0.01, conversion_rate=0.10),
        _traffic(rng, 5000, 0.01, conversion_rate=0.14),
    )
    assert better.decision is Decision.PROMOTE
    assert better.numbers["primary_ci_low"] > 0
    worse = policy.decide(
        _traffic(rng, 5000, 0.01, conversion_rate=0.14),
        _traffic(rng, 5000, 0.01, conversion_rate=0.10),
    )
    assert worse.decision is Decision.ROLLBACK
    assert "primary metric is worse" in worse.reasons[0]
    same = policy.decide(
        _traffic(rng, 20_000, 0.01, conversion_rate=0.10),
        _traffic(rng, 20_000, 0.01, conversion_rate=0.10),
    )
    assert same.decision is Decision.ROLLBACK
    assert "not shown better" in same.reasons[0]


def test_non_inferiority_promotes_an_equal_candidate_on_lower_is_better_outcome() -> None:
    rng = np.random.default_rng(6)
    policy = SequentialPolicy(
        primary=PrimaryMetric.OUTCOME_MEAN,
        primary_mde=0.5,
        primary_margin=0.5,
        higher_is_better=False,
    )
    baseline, candidate = _traffic(rng, 3000, 0.0), _traffic(rng, 3000, 0.0)
    baseline.record_outcomes(rng.normal(10.0, 2.0, 3000))
    candidate.record_outcomes(rng.normal(10.0, 2.0, 3000))
    verdict = policy.decide(baseline, candidate)
    assert verdict.decision is Decision.PROMOTE
    assert "non-inferiority" in verdict.reasons[0]


def test_decide_many_equals_decide() -> None:
    rng = np.random.default_rng(7)
    policy = SequentialPolicy(max_samples=3000)
    pairs = [
        (_traffic(rng, n, 0.01), _traffic(rng, m, rate))
        for n, m, rate in [
            (100, 100, 0.01),
            (2000, 2000, 0.03),
            (3000, 3000, 0.01),
            (900, 400, 0.01),
        ]
    ]
    codes = policy.decide_many(
        ArmBatch.from_stats([b for b, _ in pairs]), ArmBatch.from_stats([c for _, c in pairs])
    )
    from lockgate.stats import DECISION_CODES

    assert [DECISION_CODES[c] for c in codes] == [policy.decide(b, c).decision for b, c in pairs]
    assert [DECISION_CODES[c] for c in codes] == [
        Decision.CONTINUE,
        Decision.ROLLBACK,
        Decision.PROMOTE,
        Decision.HALT,
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0.0},
        {"alpha": 1.2},
        {"expected_split": 1.0},
        {"min_samples": 1},
        {"min_samples": 500, "max_samples": 100},
        {"error_rate_mde": 0.0},
        {"latency_tolerance": -0.1},
        {"primary": PrimaryMetric.CONVERSIONS},
        {"primary": "outcome_mean", "primary_mde": 1.0, "primary_margin": -1.0},
        {"primary": "revenue", "primary_mde": 1.0},
    ],
)
def test_bad_parameters_raise_named_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SequentialPolicy(**kwargs)  # type: ignore[arg-type]


def test_bad_batches_raise_named_errors() -> None:
    with pytest.raises(ValidationError):
        ArmBatch.from_counts([10, 5], [11, 0])
    with pytest.raises(ValidationError):
        ArmBatch.from_counts([-1], [0])
    with pytest.raises(ValidationError):
        SequentialPolicy().decide_many(ArmBatch.from_counts([10, 5], [0, 0]), ArmBatch.from_counts([10], [0]))


def _arms(base_error: float, cand_error: float, n: int = 3000) -> tuple[VariantStats, VariantStats]:
    rng = np.random.default_rng(4)
    baseline, candidate = VariantStats(), VariantStats()
    for _ in range(n):
        baseline.record(float(rng.exponential(5.0)), is_error=bool(rng.random() < base_error))
        candidate.record(float(rng.exponential(5.0)), is_error=bool(rng.random() < cand_error))
    return baseline, candidate


def test_the_verdict_has_each_guardrails_difference_with_an_always_valid_interval() -> None:
    from lockgate.stats.fixed import two_proportion_z_test

    baseline, candidate = _arms(0.01, 0.04)
    n = SequentialPolicy().decide(baseline, candidate).numbers
    difference = candidate.error_rate - baseline.error_rate
    assert n["error_rate_diff"] == pytest.approx(difference)
    assert n["error_rate_diff_ci_low"] < difference < n["error_rate_diff_ci_high"]
    assert n["error_rate_diff_ci_low"] > 0  # the harm is clear: the interval excludes 0
    fixed = two_proportion_z_test(
        Proportion(trials=baseline.requests, successes=baseline.errors),
        Proportion(trials=candidate.requests, successes=candidate.errors),
    )
    # valid at every look, so wider than the one-look interval
    assert n["error_rate_diff_ci_high"] - n["error_rate_diff_ci_low"] > fixed.ci_high - fixed.ci_low
    assert n["latency_slow_excess_ci_low"] <= n["latency_slow_excess"] <= n["latency_slow_excess_ci_high"]
    same = SequentialPolicy().decide(*_arms(0.02, 0.02)).numbers
    assert same["error_rate_diff_ci_low"] < 0 < same["error_rate_diff_ci_high"]
