"""Analysis units: per-unit sums that merge exactly, and a variance that counts users as users."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import ValidationError
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.units import UNITS, UnitTotals, ratio_contrast, share_variance


def _filled(rng: np.random.Generator, n: int) -> UnitTotals:
    totals = UnitTotals()
    totals.record_many(rng.integers(0, UNITS, n), rng.lognormal(3, 0.5, n), rng.random(n) < 0.1)
    totals.record_outcomes(rng.integers(0, UNITS, n // 2), (rng.random(n // 2) < 0.3).astype(float))
    return totals


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 2000), st.integers(0, 10**6))
def test_two_workers_merge_to_what_one_would_have_counted(a: int, b: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    units = rng.integers(0, UNITS, a + b)
    latencies = rng.lognormal(2, 1, a + b)
    errors = rng.random(a + b) < 0.05
    one, left, right = UnitTotals(), UnitTotals(), UnitTotals()
    one.record_many(units, latencies, errors)
    left.record_many(units[:a], latencies[:a], errors[:a])
    right.record_many(units[a:], latencies[a:], errors[a:])
    merged = left + right
    assert np.array_equal(merged.requests, one.requests) and np.array_equal(merged.errors, one.errors)
    assert np.allclose(merged.log_latency, one.log_latency)
    assert np.array_equal(merged.since(left).requests, right.requests)


def test_the_snapshot_round_trips_and_old_snapshots_read_back_empty() -> None:
    totals = _filled(np.random.default_rng(1), 5000)
    assert UnitTotals.from_dict(totals.to_dict()) == totals
    assert UnitTotals.from_dict({}) == UnitTotals()
    stats = VariantStats()
    stats.record_many(np.full(10, 5.0), np.zeros(10, dtype=bool), np.arange(10))
    data = stats.to_dict()
    assert VariantStats.from_dict(data) == stats
    del data["units"]  # a snapshot stored before units existed
    assert VariantStats.from_dict(data).units == UnitTotals()


def test_bad_units_and_shapes_are_refused_with_the_fix() -> None:
    with pytest.raises(ValidationError, match="analysis units must be in"):
        UnitTotals().record_many([UNITS], [1.0])
    with pytest.raises(ValidationError, match="one per request"):
        UnitTotals().record_many([0, 1], [1.0])
    with pytest.raises(ValidationError, match="shape"):
        UnitTotals(requests=np.zeros(3, dtype=np.int64))


def test_stats_without_units_are_spread_so_the_analysis_is_request_level() -> None:
    stats = VariantStats(requests=1000, errors=10)
    stats.latency.update(np.full(1000, 8.0))
    units = stats.analysis_units()
    assert units.requests.sum() == 1000 and units.errors.sum() == 10
    assert units.log_latency.sum() == pytest.approx(1000 * stats.latency.log_moments()[0])
    recorded = VariantStats()
    recorded.record(5.0, is_error=True, unit=3)
    assert recorded.analysis_units() is recorded.units  # counted with units: used as they are


def test_ratio_contrast_is_the_delta_method_over_paired_units() -> None:
    rng = np.random.default_rng(2)
    n_c, n_b = rng.integers(1, 20, UNITS).astype(float), rng.integers(1, 20, UNITS).astype(float)
    y_c, y_b = (
        rng.binomial(n_c.astype(int), 0.1).astype(float),
        rng.binomial(n_b.astype(int), 0.1).astype(float),
    )
    estimate, variance = ratio_contrast(y_c, n_c, y_b, n_b, baseline_factor=1.2)
    r_c, r_b = y_c.sum() / n_c.sum(), y_b.sum() / n_b.sum()
    assert estimate == pytest.approx(r_c - 1.2 * r_b)
    psi = (y_c - r_c * n_c) / n_c.sum() - 1.2 * (y_b - r_b * n_b) / n_b.sum()
    assert variance == pytest.approx((psi**2).sum() * UNITS / (UNITS - 1))
    assert ratio_contrast(y_c, np.zeros(UNITS), y_b, n_b)[1] == 0.0


def _clustered_arms(rng: np.random.Generator, users: int = 4000) -> tuple[UnitTotals, UnitTotals]:
    """Sticky users with very different error propensities, each in one arm and one unit."""
    propensity = rng.beta(0.5, 24.5, users)  # mean 2%, heavy users of errors
    requests = rng.poisson(30, users)
    arm = rng.random(users) < 0.5
    unit = rng.integers(0, UNITS, users)
    errors = rng.binomial(requests, propensity)
    arms = []
    for side in (False, True):
        totals = UnitTotals()
        mask = arm == side
        totals.requests += np.bincount(unit[mask], weights=requests[mask], minlength=UNITS).astype(np.int64)
        totals.errors += np.bincount(unit[mask], weights=errors[mask], minlength=UNITS).astype(np.int64)
        arms.append(totals)
    return arms[0], arms[1]


@pytest.mark.slow
def test_the_unit_variance_is_calibrated_for_clustered_users_and_the_request_one_is_not() -> None:
    rng = np.random.default_rng(3)
    estimates, unit_variances, request_variances = [], [], []
    for _ in range(400):
        base, cand = _clustered_arms(rng)
        estimate, variance = ratio_contrast(cand.errors, cand.requests, base.errors, base.requests)
        estimates.append(estimate)
        unit_variances.append(variance)
        p = (base.errors.sum() + cand.errors.sum()) / (base.requests.sum() + cand.requests.sum())
        request_variances.append(p * (1 - p) * (1 / base.requests.sum() + 1 / cand.requests.sum()))
    truth = float(np.var(estimates))
    assert 0.8 < float(np.mean(unit_variances)) / truth < 1.25
    assert float(np.mean(request_variances)) / truth < 0.6  # requests as if independent: overconfident


def test_the_share_variance_counts_heavy_users() -> None:
    rng = np.random.default_rng(4)
    heavy = rng.pareto(1.5, UNITS) * 100
    n_c = np.where(rng.random(UNITS) < 0.1, heavy, 0.0)
    n_b = np.where(n_c == 0, heavy, 0.0)
    total = n_c.sum() + n_b.sum()
    assert share_variance(n_c, n_b, 0.1) > 5 * 0.1 * 0.9 / total
