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
