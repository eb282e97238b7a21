"""Anytime-valid tests: closed forms, invariants, and the false-alarm rate under 100 looks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps

from lockgate.errors import ValidationError
from lockgate.stats import (
    BernoulliSPRT,
    MixtureSPRT,
    Moments,
    Proportion,
    RateRatioSPRT,
)
from lockgate.stats.sequential import beta_mixture_log_lr, normal_mixture_log_lr

MC_3SIGMA = 3 * math.sqrt(0.05 * 0.95 / 2000)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_normal_mixture_equals_numerical_integral(alternative: str) -> None:
    estimate, variance, tau2 = 0.7, 0.09, 0.25
    lo, hi = {"two-sided": (-np.inf, np.inf), "greater": (0, np.inf), "less": (-np.inf, 0)}[alternative]
    weight = 1.0 if alternative == "two-sided" else 2.0

    def integrand(theta: float) -> float:
        lr = math.exp((theta * estimate - theta * theta / 2) / variance)
        return lr * weight * sps.norm.pdf(theta, scale=math.sqrt(tau2))

    expected = integrate.quad(integrand, lo, hi)[0]
    ours = float(np.exp(normal_mixture_log_lr(estimate, variance, tau2, alternative)))  # type: ignore[arg-type]
    assert ours == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_beta_mixture_equals_numerical_integral(alternative: str) -> None:
    x, y, p0, a, b = 14, 20, 0.3, 3.0, 7.0
    lo, hi = {"two-sided": (0, 1), "greater": (p0, 1), "less": (0, p0)}[alternative]
    mass = sps.beta.cdf(hi, a, b) - sps.beta.cdf(lo, a, b)

    def integrand(p: float) -> float:
        return p**x * (1 - p) ** y * sps.beta.pdf(p, a, b) / mass

    expected = integrate.quad(integrand, lo, hi)[0] / (p0**x * (1 - p0) ** y)
    ours = float(np.exp(beta_mixture_log_lr(x, y, p0, a, b, alternative)))  # type: ignore[arg-type]
    assert ours == pytest.approx(expected, rel=1e-7)


def _aa_false_alarms(log_lr: np.ndarray, alpha: float = 0.05) -> float:
    return float(np.mean((log_lr >= math.log(1 / alpha)).any(axis=1)))


def test_rate_ratio_aa_false_alarms_within_alpha_over_100_looks() -> None:
    rng = np.random.default_rng(2024)
    runs, looks = 2000, 100
    n_c = np.cumsum(rng.binomial(240, 0.5, size=(runs, looks)), axis=1)
    n_b = np.arange(1, looks + 1) * 240 - n_c
    e_c = np.cumsum(rng.binomial(np.diff(n_c, prepend=0, axis=1), 0.01), axis=1)
    e_b = np.cumsum(rng.binomial(np.diff(n_b, prepend=0, axis=1), 0.01), axis=1)
    rate = _aa_false_alarms(RateRatioSPRT(mde=0.5).log_lr(e_b, n_b, e_c, n_c))
    assert rate <= 0.05 + MC_3SIGMA
    two_sided = RateRatioSPRT(mde=0.5, alternative="two-sided").log_lr(e_b, n_b, e_c, n_c)
    assert _aa_false_alarms(two_sided) <= 0.05 + MC_3SIGMA


@pytest.mark.parametrize("metric", ["proportion", "mean"])
def test_mixture_aa_false_alarms_within_alpha_over_100_looks(metric: str) -> None:
    rng = np.random.default_rng(5)
    runs, looks, per_look = 2000, 100, 50
    if metric == "proportion":
        x_b = np.cumsum(rng.binomial(per_look, 0.1, size=(runs, looks)), axis=1)
        x_c = np.cumsum(rng.binomial(per_look, 0.1, size=(runs, looks)), axis=1)
        n = np.arange(1, looks + 1) * per_look
        diff = x_c / n - x_b / n
        var = (x_b / n * (1 - x_b / n) + x_c / n * (1 - x_c / n)) / n
        mde = 0.02
    else:
        # sums of per-look batches: mean and variance of a batch mean with sd 1 per observation
        walk_b = np.cumsum(rng.normal(0, math.sqrt(per_look), size=(runs, looks)), axis=1)
        walk_c = np.cumsum(rng.normal(0, math.sqrt(per_look), size=(runs, looks)), axis=1)
        n = np.arange(1, looks + 1) * per_look
        diff = (walk_c - walk_b) / n
        var = 2.0 / n
        mde = 0.1
    for alternative in ("two-sided", "greater"):
        test = MixtureSPRT(mde=mde, alternative=alternative)  # type: ignore[arg-type]
        assert _aa_false_alarms(test.log_lr(diff, var)) <= 0.05 + MC_3SIGMA
    # the same data with a fixed-horizon z test at every look: the false alarms that peeking makes
    z = np.abs(diff) / np.sqrt(var)
    assert float(np.mean((z > 1.96).any(axis=1))) > 0.2


def test_rate_ratio_detects_a_doubled_error_rate() -> None:
    result = RateRatioSPRT(mde=0.5).test(30, 3000, 62, 3000)
    assert result.is_significant
    assert result.estimate == pytest.approx(62 / 30)
    assert result.ci_low < result.estimate < result.ci_high
    assert result.ci_low > 1.0


def test_bernoulli_sprt_detects_a_heavier_tail() -> None:
    test = BernoulliSPRT(null_rate=0.01, mde=0.01)
    assert test.test(10, 1000).p_value > 0.05
    assert test.test(40, 1000).is_significant


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(1, 400), st.integers(0, 40), st.integers(1, 400)),
        min_size=1,
        max_size=8,
    )
)
def test_rate_ratio_invariants(batches: list[tuple[int, int, int, int]]) -> None:
    test = RateRatioSPRT(mde=0.5, alternative="two-sided")
    e_b = n_b = e_c = n_c = 0
    previous = None
    for db, nb, dc, nc in batches:
        n_b, n_c = n_b + nb, n_c + nc
        e_b, e_c = min(e_b + db, n_b), min(e_c + dc, n_c)
        result = test.test(e_b, n_b, e_c, n_c, previous)
        fresh = test.test(e_b, n_b, e_c, n_c)
        assert 0.0 <= result.p_value <= 1.0
        if previous is not None:
            assert result.p_value <= previous.p_value
        if not math.isnan(fresh.estimate):
            assert fresh.ci_low <= fresh.estimate <= fresh.ci_high
        previous = result


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(-50, 50), min_size=2, max_size=20),
            st.lists(st.floats(-50, 50), min_size=2, max_size=20),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["two-sided", "greater", "less"]),
)
def test_mixture_invariants(batches: list[tuple[list[float], list[float]]], alternative: str) -> None:
    test = MixtureSPRT(mde=1.0, alternative=alternative)  # type: ignore[arg-type]
    base, cand = Moments(), Moments()
    prop_b, prop_c = Proportion(), Proportion()
    previous = previous_prop = None
    for b, c in batches:
        base.update(b)
        cand.update(c)
        prop_b.update([v > 0 for v in b])
        prop_c.update([v > 0 for v in c])
        result = test.test_means(base, cand, previous)
        fresh = test.test_means(base, cand)
        prop = test.test_proportions(prop_b, prop_c, previous_prop)
        for r in (result, prop):
            assert 0.0 <= r.p_value <= 1.0
        assert fresh.ci_low <= fresh.estimate <= fresh.ci_high
        assert test.test_proportions(prop_b, prop_c).ci_low <= prop.estimate
        if previous is not None and previous_prop is not None:
            assert result.p_value <= previous.p_value
            assert prop.p_value <= previous_prop.p_value
            assert result.ci_high - result.ci_low <= previous.ci_high - previous.ci_low + 1e-9
        previous, previous_prop = result, prop


def test_bad_input_raises_named_errors() -> None:
    with pytest.raises(ValidationError, match="alpha"):
        MixtureSPRT(mde=0.1, alpha=0.0)
    with pytest.raises(ValidationError, match="alpha"):
        RateRatioSPRT(alpha=1.0)
    with pytest.raises(ValidationError, match="mde"):
        MixtureSPRT(mde=-1.0)
    with pytest.raises(ValidationError, match="at least 2"):
        MixtureSPRT(mde=0.1).test_means(Moments(), Moments(3, 1.0, 1.0))
    with pytest.raises(ValidationError, match="at least 1"):
        MixtureSPRT(mde=0.1).test_proportions(Proportion(), Proportion(3, 1))
    with pytest.raises(ValidationError, match="baseline"):
        RateRatioSPRT().test(0, 0, 1, 10)
    with pytest.raises(ValidationError):
        RateRatioSPRT().test(-1, 10, 1, 10)
    with pytest.raises(ValidationError):
        BernoulliSPRT(null_rate=0.01, mde=0.01).test(5, 3)
    with pytest.raises(ValidationError):
        BernoulliSPRT(null_rate=1.5, mde=0.01)


def test_a_tiny_variance_gives_a_tiny_finite_radius() -> None:
    """Found by hypothesis: log(total / var) overflowed for a variance of 5e-159."""
    from lockgate.stats.sequential import normal_mixture_radius

    radius = normal_mixture_radius([4.824654288684171e-159], 0.5, 0.05)
    assert np.isfinite(radius).all() and 0 < radius[0] < 1e-70
