"""ThresholdPolicy: waits for data, then rolls back on a breach and promotes otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import ValidationError
from lockgate.rollout.policy import ThresholdPolicy
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.verdict import Decision, Policy


def served(requests: int, errors: int = 0, latency_ms: float = 10.0) -> VariantStats:
    stats = VariantStats(requests=requests, errors=errors)
    stats.latency.update(np.full(requests, latency_ms))
    return stats


def test_it_implements_the_policy_protocol() -> None:
    policy: Policy = ThresholdPolicy()
    assert policy.decide(served(1000), served(1000)).decision is Decision.PROMOTE


def test_it_waits_until_both_sides_have_enough_requests() -> None:
    verdict = ThresholdPolicy(min_requests=200).decide(served(1000), served(150, errors=150))
    assert verdict.decision is Decision.CONTINUE
    assert verdict.reasons == ("waiting: candidate has 150 of 200 requests",)
    assert verdict.numbers["candidate_error_rate"] == 1.0


def test_three_times_the_error_rate_rolls_back_with_the_numbers() -> None:
    verdict = ThresholdPolicy().decide(served(1000, errors=10), served(1000, errors=30))
    assert verdict.decision is Decision.ROLLBACK
    assert "error rate 0.0300 vs baseline 0.0100" in verdict.reasons[0]
    assert verdict.numbers["error_rate_ratio"] == pytest.approx(3.0)


def test_one_error_against_a_clean_baseline_is_not_a_breach() -> None:
    verdict = ThresholdPolicy().decide(served(1000), served(1000, errors=1))
    assert verdict.decision is Decision.PROMOTE
    assert "error_rate_ratio" not in verdict.numbers


def test_an_absolute_error_ceiling_breaches_on_its_own() -> None:
    policy = ThresholdPolicy(max_error_rate=0.02, max_error_rate_ratio=None)
    verdict = policy.decide(served(1000, errors=30), served(1000, errors=30))
    assert verdict.decision is Decision.ROLLBACK
    assert verdict.reasons == ("error rate 0.0300 is above 0.02",)


def test_a_slow_candidate_rolls_back_on_p99() -> None:
    verdict = ThresholdPolicy(max_p99_latency_ratio=1.2).decide(
        served(1000, latency_ms=10.0), served(1000, latency_ms=20.0)
    )
    assert verdict.decision is Decision.ROLLBACK
    assert "p99 latency" in verdict.reasons[0]
    assert verdict.numbers["p99_latency_ratio"] == pytest.approx(2.0, rel=0.05)


def test_checks_set_to_none_are_off() -> None:
    policy = ThresholdPolicy(max_error_rate_ratio=None, max_p99_latency_ratio=None)
    verdict = policy.decide(served(1000), served(1000, errors=500, latency_ms=999.0))
    assert verdict.decision is Decision.PROMOTE


@given(st.integers(200, 5000), st.integers(0, 100), st.floats(1.0, 100.0))
def test_a_candidate_identical_to_the_baseline_is_never_rolled_back(
    requests: int, errors_per_mille: int, latency_ms: float
) -> None:
    errors = requests * errors_per_mille // 1000
    same = served(requests, errors, latency_ms)
    assert ThresholdPolicy().decide(same, same).decision is Decision.PROMOTE


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_error_rate_ratio": 0.5}, "below 1"),
        ({"max_p99_latency_ratio": 0.9}, "below 1"),
        ({"max_error_rate_increase": 2.0}, "outside"),
        ({"max_error_rate": -0.1}, "outside"),
        ({"min_requests": 0}, "below 1"),
    ],
)
def test_bad_thresholds_are_refused_at_construction(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ThresholdPolicy(**kwargs)


# --- the sequential policy, per stage, and the spec's analysis section ------------------------


def _stats(requests: int, errors: int) -> VariantStats:
    stats = VariantStats(requests=requests, errors=errors)
    stats.latency.update(np.full(requests, 5.0))
    return stats


def test_the_sequential_policy_is_built_per_stage() -> None:
    from lockgate.rollout.controller import StagePolicy
    from lockgate.rollout.policy import SequentialRolloutPolicy
    from lockgate.stats.decision import SequentialPolicy

    policy = SequentialRolloutPolicy(alpha=0.06)
    assert isinstance(policy, StagePolicy)
    stage = policy.for_stage(0.1, 3, is_mirrored=False)
    assert isinstance(stage, SequentialPolicy)
    assert stage.expected_split == 0.1 and stage.alpha == pytest.approx(0.02)  # Bonferroni
    assert policy.for_stage(0.5, 1, is_mirrored=True).srm_alpha < 1e-9  # dropped copies are no SRM
    idle = policy.for_stage(1.0, 2, is_mirrored=False)
    assert idle.decide(_stats(500, 0), _stats(500, 400)).decision is Decision.CONTINUE


def test_twice_the_error_rate_rolls_back_and_an_equal_one_does_not() -> None:
    from lockgate.rollout.policy import SequentialRolloutPolicy

    stage = SequentialRolloutPolicy().for_stage(0.5, 1, is_mirrored=False)
    bad = stage.decide(_stats(4000, 200), _stats(4000, 400))
    assert bad.decision is Decision.ROLLBACK
    assert bad.numbers["error_rate_candidate"] == pytest.approx(0.1)
    same = stage.decide(_stats(4000, 200), _stats(4000, 200))
    assert same.decision is not Decision.ROLLBACK


def test_a_sample_ratio_mismatch_halts() -> None:
    from lockgate.rollout.policy import SequentialRolloutPolicy

    stage = SequentialRolloutPolicy().for_stage(0.1, 1, is_mirrored=False)
    assert stage.decide(_stats(5000, 0), _stats(5000, 0)).decision is Decision.HALT


def test_the_spec_chooses_the_policy_and_names_bad_keys() -> None:
    from lockgate.rollout.policy import SequentialRolloutPolicy, policy_for
    from lockgate.rollout.spec import parse_spec

    base = {
        "name": "fraud",
        "variants": {"a": "models:/f/1", "b": "models:/f/2"},
        "baseline": "a",
        "candidate": "b",
        "strategy": {"type": "direct"},
    }
    assert isinstance(policy_for(parse_spec(base)), SequentialRolloutPolicy)  # the default
    threshold = parse_spec({**base, "analysis": {"policy": "threshold", "min_requests": 50}})
    assert policy_for(threshold) == ThresholdPolicy(min_requests=50)
    assert parse_spec(threshold.to_dict()) == threshold
    sequential = parse_spec({**base, "analysis": {"alpha": 0.01, "max_samples": None}})
    assert policy_for(sequential) == SequentialRolloutPolicy(alpha=0.01, max_samples=None)
    for analysis, words in (
        ({"policy": "bayes"}, "analysis.policy: unknown policy 'bayes'"),
        ({"policy": "threshold", "alpha": 0.1}, "analysis.alpha: is not a known key"),
        ({"alpha": 2.0}, "analysis: alpha"),
        ({"min_samples": 1.5}, "analysis.min_samples: must be a whole number"),
    ):
        with pytest.raises(ValidationError, match=words):
            parse_spec({**base, "analysis": analysis})


def test_the_threshold_verdict_has_the_error_rate_difference_with_its_fixed_interval() -> None:
    baseline, candidate = VariantStats(), VariantStats()
    for i in range(1000):
        baseline.record(5.0, is_error=i % 100 == 0)
        candidate.record(5.0, is_error=i % 20 == 0)
    numbers = ThresholdPolicy().decide(baseline, candidate).numbers
    assert numbers["error_rate_diff"] == pytest.approx(0.04)
    assert 0 < numbers["error_rate_diff_ci_low"] < 0.04 < numbers["error_rate_diff_ci_high"]
