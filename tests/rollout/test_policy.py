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
from lockgate.stats.guardrails import Margin
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


def _view(baseline: VariantStats, candidate: VariantStats, share: float = 0.5, **kwargs: Any) -> Any:
    from lockgate.rollout.policy import RolloutView

    return RolloutView(baseline, candidate, baseline, candidate, share, **kwargs)


def test_the_sequential_policy_judges_whole_rollouts_and_splits_alpha_only_over_guardrails() -> None:
    from lockgate.rollout.policy import RolloutPolicy, SequentialRolloutPolicy

    policy = SequentialRolloutPolicy(alpha=0.06)
    assert isinstance(policy, RolloutPolicy)
    assert policy.guardrails == 2 and policy.alpha_each == pytest.approx(0.03)  # errors, latency
    verdict = policy.judge(_view(_stats(20_000, 200), _stats(20_000, 200)))
    assert verdict.numbers["alpha_per_guardrail"] == pytest.approx(0.03)
    assert verdict.decision is Decision.PROMOTE  # both shown within their margins
    assert any("errors non-inferior" in reason for reason in verdict.reasons)


def test_twice_the_error_rate_rolls_back_and_an_equal_one_does_not() -> None:
    from lockgate.rollout.policy import SequentialRolloutPolicy

    policy = SequentialRolloutPolicy()
    bad = policy.judge(_view(_stats(4000, 200), _stats(4000, 400)))
    assert bad.decision is Decision.ROLLBACK
    assert bad.numbers["errors_candidate"] == pytest.approx(0.1)
    assert bad.numbers["errors_worse_ci_low"] > 0
    assert "errors is worse" in bad.reasons[0]
    same = policy.judge(_view(_stats(4000, 200), _stats(4000, 200)))
    assert same.decision is not Decision.ROLLBACK


def test_a_small_real_difference_inside_the_margin_is_no_rollback_at_high_volume() -> None:
    from lockgate.rollout.policy import SequentialRolloutPolicy

    # +2% relative on a 1% error rate with ten million requests an arm: real, but far inside 0.5 pp
    verdict = SequentialRolloutPolicy().judge(_view(_stats(10_000_000, 100_000), _stats(10_000_000, 102_000)))
    assert verdict.numbers["errors_worse_ci_low"] > 0  # shown worse than zero...
    assert verdict.decision is Decision.PROMOTE  # ...but by less than the margin: evidence to advance


def test_no_evidence_yet_is_continue_and_says_which_guardrail_waits() -> None:
    from lockgate.rollout.policy import SequentialRolloutPolicy

    verdict = SequentialRolloutPolicy().judge(_view(_stats(300, 3), _stats(300, 3)))
    assert verdict.decision is Decision.CONTINUE
    assert "no evidence yet that errors is within its margin" in verdict.reasons[0]


def test_a_sample_ratio_mismatch_halts_and_a_mirror_is_no_mismatch() -> None:
    from lockgate.rollout.policy import SequentialRolloutPolicy

    policy = SequentialRolloutPolicy()
    halted = policy.judge(_view(_stats(5000, 0), _stats(5000, 0), share=0.1))
    assert halted.decision is Decision.HALT
    assert "sample-ratio mismatch" in halted.reasons[0]
    mirrored = policy.judge(_view(_stats(5000, 0), _stats(5000, 0), share=0.1, is_mirrored=True))
    assert mirrored.decision is not Decision.HALT


def test_an_experiment_without_a_primary_metric_is_a_fixed_split_canary() -> None:
    from lockgate.rollout.policy import PrimaryGoal, SequentialRolloutPolicy

    same = (_stats(40_000, 400), _stats(40_000, 400))
    verdict = SequentialRolloutPolicy().judge(_view(*same, is_experiment=True))
    assert verdict.decision is Decision.PROMOTE and "errors non-inferior" in verdict.reasons[0]
    waiting = SequentialRolloutPolicy(primary=PrimaryGoal()).judge(_view(*same, is_experiment=True))
    assert waiting.decision is Decision.CONTINUE and "waiting for outcomes" in waiting.reasons[0]


def _converting(requests: int, rate: float) -> VariantStats:
    stats = _stats(requests, 0)
    stats.record_outcomes((np.arange(requests) < rate * requests).astype(float))
    return stats


def test_an_experiment_promotes_a_better_primary_and_stops_a_futile_one() -> None:
    from lockgate.rollout.policy import PrimaryGoal, SequentialRolloutPolicy

    policy = SequentialRolloutPolicy(primary=PrimaryGoal("conversions"))
    better = policy.judge(_view(_converting(40_000, 0.10), _converting(40_000, 0.12), is_experiment=True))
    assert better.decision is Decision.PROMOTE and "primary is better" in better.reasons[0]
    worse = policy.judge(_view(_converting(40_000, 0.12), _converting(40_000, 0.10), is_experiment=True))
    assert worse.decision is Decision.ROLLBACK  # shown worse: as a canary guardrail, harm
    futile = SequentialRolloutPolicy(
        primary=PrimaryGoal("conversions", min_improvement=Margin("absolute", 0.02))
    )
    same = futile.judge(_view(_converting(40_000, 0.10), _converting(40_000, 0.10), is_experiment=True))
    assert same.decision is Decision.ROLLBACK and "futility" in same.reasons[0]


def test_the_spec_chooses_the_policy_and_names_bad_keys() -> None:
    from lockgate.rollout.policy import PrimaryGoal, SequentialRolloutPolicy, policy_for
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
    sequential = parse_spec({**base, "analysis": {"alpha": 0.01}})
    assert policy_for(sequential) == SequentialRolloutPolicy(alpha=0.01)
    assert parse_spec(sequential.to_dict()) == sequential
    margins = {
        "guardrails": {"errors": {"max_increase": {"relative": 0.1}}, "latency": None},
        "primary": {"metric": "outcome_mean", "direction": "decrease", "margin": {"relative": 0.05}},
        "on_inconclusive": "hold",
    }
    custom = parse_spec({**base, "analysis": margins})
    assert custom.analysis.error_margin == Margin("relative", 0.1)
    assert custom.analysis.latency_margin is None
    assert custom.analysis.on_inconclusive == "hold"
    assert policy_for(custom) == SequentialRolloutPolicy(
        error_margin=Margin("relative", 0.1),
        latency_margin=None,
        primary=PrimaryGoal("outcome_mean", False, Margin("relative", 0.05)),
    )
    assert parse_spec(custom.to_dict()) == custom
    pp = parse_spec({**base, "analysis": {"guardrails": {"errors": {"max_increase": {"absolute_pp": 0.5}}}}})
    assert pp.analysis.error_margin == Margin("absolute", 0.005)
    for analysis, words in (
        ({"policy": "bayes"}, "analysis.policy: unknown policy 'bayes'"),
        ({"policy": "threshold", "alpha": 0.1}, "analysis.alpha: is not a known key"),
        ({"alpha": 2.0}, "analysis: alpha"),
        ({"min_samples": 1.5}, "analysis.min_samples: must be a whole number"),
        ({"latency_tolerance": 2.0}, "analysis.latency_tolerance: is no longer an option"),
        ({"max_samples": 100}, "analysis.max_samples: is no longer an option"),
        (
            {"guardrails": {"errors": {"max_increase": {"relative": 0.1, "absolute_pp": 1}}}},
            "analysis.guardrails.errors.max_increase: must give exactly one of absolute_pp, relative",
        ),
        (
            {"guardrails": {"latency": {"max_increase": {"seconds": 1}}}},
            "analysis.guardrails.latency.max_increase.seconds: is not a known key",
        ),
        ({"guardrails": {"errors": {"max_increase": {"relative": -1}}}}, "must be at least 0"),
        ({"guardrails": {"cost": {}}}, "analysis.guardrails.cost: is not a known key"),
        (
            {"primary": {"metric": "revenue"}},
            "analysis.primary.metric: must be one of conversions, outcome_mean",
        ),
        ({"primary": {"direction": "up"}}, "analysis.primary.direction: must be one of increase, decrease"),
        ({"on_inconclusive": "wait"}, "analysis.on_inconclusive: must be one of rollback, hold"),
        ({"policy": "threshold", "primary": {}}, "analysis.primary: is not a known key"),
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
