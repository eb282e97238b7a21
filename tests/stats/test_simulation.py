"""Simulated canaries: lockgate holds its false-rollback rate over 100 looks; peeking does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.stats import (
    IntervalMannWhitney,
    NaivePeeking,
    PolicyDecider,
    SequentialPolicy,
    StaticThreshold,
    StreamSpec,
    peeking_false_alarm_rate,
    simulate_streams,
)

ALPHA = 0.05


def _mc_bound(runs: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)


def test_aa_false_rollbacks_within_alpha_2000_canaries_100_looks() -> None:
    spec = StreamSpec(looks=100, requests_per_look=240)
    out = simulate_streams(
        np.random.default_rng(42),
        spec,
        [PolicyDecider(SequentialPolicy(max_samples=None)), NaivePeeking()],
        runs=2000,
    )
    assert out["lockgate"].rollback_rate <= _mc_bound(2000)
    assert out["lockgate"].rate(3) <= 0.01  # false sample-ratio halts at srm_alpha=0.001
    # the same streams, peeked at with a fixed-horizon test, raise far more false alarms
    assert out["naive"].rollback_rate > 0.15


def test_aa_with_latency_guardrail_within_alpha() -> None:
    spec = StreamSpec(looks=100, requests_per_look=100, latency_median_ms=20.0)
    out = simulate_streams(np.random.default_rng(43), spec, [PolicyDecider(SequentialPolicy())], runs=400)
    assert out["lockgate"].rollback_rate <= _mc_bound(400)


def test_ab_doubled_error_rate_is_caught_before_the_fixed_horizon() -> None:
    spec = StreamSpec(looks=50, requests_per_look=240, candidate_error_rate=0.02)
    out = simulate_streams(
        np.random.default_rng(44),
        spec,
        [PolicyDecider(SequentialPolicy(max_samples=None))],
        runs=500,
    )
    assert out["lockgate"].rollback_rate >= 0.9
    assert out["lockgate"].median_n_to_rollback <= 3000


def test_peer_deciders_run_on_the_same_streams() -> None:
    spec = StreamSpec(looks=20, requests_per_look=200, candidate_error_rate=0.05)
    deciders = [StaticThreshold(max_error_rate=0.015), IntervalMannWhitney(), NaivePeeking()]
    out = simulate_streams(np.random.default_rng(45), spec, deciders, runs=300)
    assert set(out) == {"threshold", "mann_whitney", "naive"}
    for outcome in out.values():
        assert outcome.rollback_rate > 0.9
        assert outcome.codes.shape == (300,)


def test_peeking_reproduces_armitage() -> None:
    rng = np.random.default_rng(46)
    # Armitage, McPherson & Rowe (1969): 5 looks 14.2%, 20 looks 24.8%, 100 looks 37.4%
    assert peeking_false_alarm_rate(rng, looks=1, runs=20_000) == pytest.approx(0.05, abs=0.006)
    assert peeking_false_alarm_rate(rng, looks=5, runs=20_000) == pytest.approx(0.142, abs=0.012)
    assert peeking_false_alarm_rate(rng, looks=100, runs=20_000) == pytest.approx(0.374, abs=0.015)


def test_same_seed_same_result() -> None:
    spec = StreamSpec(looks=10, requests_per_look=100, candidate_error_rate=0.03)

    def run() -> np.ndarray:
        out = simulate_streams(np.random.default_rng(9), spec, [PolicyDecider(SequentialPolicy())], runs=50)
        return out["lockgate"].codes

    assert np.array_equal(run(), run())


def test_bad_input() -> None:
    with pytest.raises(ValidationError):
        StreamSpec(looks=0)
    with pytest.raises(ValidationError):
        StreamSpec(candidate_error_rate=1.5)
    with pytest.raises(ValidationError):
        simulate_streams(np.random.default_rng(0), StreamSpec(), [NaivePeeking(), NaivePeeking()])
    with pytest.raises(ValidationError):
        peeking_false_alarm_rate(np.random.default_rng(0), looks=5, alpha=0.0)
