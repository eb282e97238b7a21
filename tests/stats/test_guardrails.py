"""Guardrails with margins: harm, non-inferiority, superiority and futility, and their error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.stats.guardrails import Margin, check_errors, check_latency, check_primary, check_srm
from lockgate.stats.sequential import normal_mixture_log_lr, normal_mixture_radius, one_sided_radius
from lockgate.stats.units import UNITS, UnitTotals


def _arm(rng: np.random.Generator, n: int, error_rate: float, latency_ms: float = 10.0) -> UnitTotals:
    totals = UnitTotals()
    totals.record_many(
        rng.integers(0, UNITS, n), latency_ms * rng.lognormal(0, 0.3, n), rng.random(n) < error_rate
    )
    return totals


def test_margins_know_their_unit() -> None:
    assert Margin("relative", 0.1).on(0.02) == pytest.approx(0.002)
    assert Margin("absolute", 0.005).on(0.02) == 0.005
    with pytest.raises(ValidationError, match="margin"):
        Margin("absolute", -1.0)
    with pytest.raises(ValidationError, match="relative or absolute"):
        Margin("percent", 1.0)  # type: ignore[arg-type]


def test_the_one_sided_bound_is_tighter_and_exactly_at_its_level() -> None:
    variance, tau2, alpha = 1e-6, 2.5e-5, 0.025
    radius = one_sided_radius(variance, tau2, alpha)
    assert 0 < radius < float(normal_mixture_radius(variance, tau2, alpha))
    assert float(normal_mixture_log_lr(radius, variance, tau2, "greater")) == pytest.approx(
        math.log(1 / alpha)
    )
    assert one_sided_radius(0.0, tau2, alpha) == 0.0


def test_twice_the_errors_is_harm_and_the_same_errors_are_non_inferior() -> None:
    rng = np.random.default_rng(1)
    base = _arm(rng, 40_000, 0.01)
    worse = check_errors(base, _arm(rng, 40_000, 0.02), Margin("absolute", 0.005), alpha=0.025)
    assert worse.is_harm and not worse.is_noninferior and worse.ci_low > 0
    same = check_errors(base, _arm(rng, 40_000, 0.01), Margin("absolute", 0.005), alpha=0.025)
    assert same.is_noninferior and not same.is_harm and same.ci_high < 0.005


def test_a_relative_margin_tests_c_against_one_plus_m_times_b() -> None:
    rng = np.random.default_rng(2)
    base = _arm(rng, 200_000, 0.05)
    check = check_errors(base, _arm(rng, 200_000, 0.05), Margin("relative", 0.2), alpha=0.025)
    assert check.margin == pytest.approx(0.2 * check.baseline)
    assert check.is_noninferior
    tight = check_errors(base, _arm(rng, 200_000, 0.05), Margin("relative", 0.001), alpha=0.025)
    assert not tight.is_noninferior


def test_no_errors_yet_is_not_certainty_of_none() -> None:
    quiet = UnitTotals()
    quiet.record_many(np.arange(60) % UNITS, np.full(60, 5.0), np.zeros(60, dtype=bool))
    check = check_errors(quiet, quiet.copy(), Margin("absolute", 0.005), alpha=0.025)
    assert check.ci_high > 0.005 and not check.is_noninferior  # 60 requests cannot show 0.5 points


def test_latency_is_the_ratio_of_geometric_means_with_margins_in_ms_or_relative() -> None:
    rng = np.random.default_rng(3)
    base = _arm(rng, 20_000, 0.0, latency_ms=10.0)
    slow = check_latency(base, _arm(rng, 20_000, 0.0, latency_ms=15.0), Margin("relative", 0.1), alpha=0.025)
    assert (
        slow.worse_by == pytest.approx(1.5, rel=0.02) and slow.is_harm and slow.margin == pytest.approx(1.1)
    )
    same = check_latency(base, _arm(rng, 20_000, 0.0, latency_ms=10.0), Margin("absolute", 2.0), alpha=0.025)
    assert same.margin == pytest.approx(1.2, rel=0.02) and same.is_noninferior


def _pareto_arm(rng: np.random.Generator, n: int) -> UnitTotals:
    totals = UnitTotals()
    totals.record_many(rng.integers(0, UNITS, n), 5.0 * (1 - rng.random(n)) ** -1.0, np.zeros(n, dtype=bool))
    return totals


@pytest.mark.slow
def test_heavy_tailed_aa_latency_is_rarely_called_worse_at_any_look() -> None:
    # Pareto(1) latencies (no finite mean): 300 A/A runs, 20 looks each; harm at any look is a
    # false alarm, at most alpha (plus Monte-Carlo error)
    rng = np.random.default_rng(4)
    false_alarms = 0
    for _ in range(300):
        base, cand = UnitTotals(), UnitTotals()
        for _look in range(20):
            base.merge(_pareto_arm(rng, 500))
            cand.merge(_pareto_arm(rng, 500))
            check = check_latency(base, cand, Margin("relative", 0.0), alpha=0.05)
            if check.ci_low > 1.0:
                false_alarms += 1
                break
    assert false_alarms / 300 <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 300)


def test_the_primary_metric_goes_both_ways_and_waits_for_outcomes() -> None:
    rng = np.random.default_rng(5)

    def converting(rate: float, n: int = 50_000) -> UnitTotals:
        totals = UnitTotals()
        totals.record_outcomes(rng.integers(0, UNITS, n), (rng.random(n) < rate).astype(float))
        return totals

    zero = Margin("absolute", 0.0)
    better = check_primary(
        converting(0.10),
        converting(0.12),
        metric="conversions",
        higher_is_better=True,
        margin=zero,
        min_improvement=zero,
        alpha=0.025,
        scale=0.01,
    )
    assert better is not None and better.is_superior and better.worse_by < 0
    assert check_primary(
        UnitTotals(), UnitTotals(), metric="conversions", higher_is_better=True, margin=zero,
        min_improvement=zero, alpha=0.025, scale=0.01,
    ) is None  # fmt: skip


def test_the_sample_ratio_check_on_units_passes_heavy_sticky_users_and_catches_a_real_skew() -> None:
    rng = np.random.default_rng(6)
    users = 5000
    requests = rng.pareto(2.5, users) * 40 + 1  # heavy users: some send hundreds of requests
    unit = rng.integers(0, UNITS, users)
    in_candidate = rng.random(users) < 0.1
    base, cand = UnitTotals(), UnitTotals()
    base.requests += np.bincount(unit[~in_candidate], requests[~in_candidate], UNITS).astype(np.int64)
    cand.requests += np.bincount(unit[in_candidate], requests[in_candidate], UNITS).astype(np.int64)
    assert check_srm(base, cand, 0.1).p_value > 0.001
    dropped = cand.copy()
    dropped.requests //= 2  # the candidate loses half its requests
    assert check_srm(base, dropped, 0.1).p_value < 0.001
