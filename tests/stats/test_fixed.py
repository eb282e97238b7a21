"""Fixed-horizon tests equal scipy (and statsmodels' formulas) to 1e-6."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from lockgate.errors import UserError, ValidationError
from lockgate.stats import (
    Moments,
    Proportion,
    mann_whitney_binary,
    mann_whitney_u,
    two_proportion_z_p,
    two_proportion_z_test,
    welch_t_test,
)

ALTERNATIVES = ["two-sided", "greater", "less"]


def _moments(values: np.ndarray) -> Moments:
    m = Moments()
    m.update(values)
    return m


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_equals_scipy(alternative: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.normal(10.0, 2.0, size=40 + seed * 17)
    cand = rng.normal(10.6, 3.5, size=55)
    ours = welch_t_test(_moments(base), _moments(cand), alpha=0.1, alternative=alternative)  # type: ignore[arg-type]
    ref = sps.ttest_ind(cand, base, equal_var=False, alternative=alternative)
    ci = ref.confidence_interval(0.9)
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-6)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-6)
    assert ours.df == pytest.approx(ref.df, abs=1e-6)
    assert ours.ci_low == pytest.approx(ci.low, abs=1e-6)
    assert ours.ci_high == pytest.approx(ci.high, abs=1e-6)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_two_proportion_z_equals_closed_form(alternative: str) -> None:
    base, cand = Proportion(4000, 212), Proportion(3900, 251)
    ours = two_proportion_z_test(base, cand, alpha=0.05, alternative=alternative)  # type: ignore[arg-type]
    p_b, p_c = 212 / 4000, 251 / 3900
    pooled = (212 + 251) / 7900
    z = (p_c - p_b) / math.sqrt(pooled * (1 - pooled) * (1 / 4000 + 1 / 3900))
    expected_p = {
        "two-sided": 2 * sps.norm.sf(abs(z)),
        "greater": sps.norm.sf(z),
        "less": sps.norm.cdf(z),
    }[alternative]
    se = math.sqrt(p_b * (1 - p_b) / 4000 + p_c * (1 - p_c) / 3900)
    assert ours.statistic == pytest.approx(z, abs=1e-9)
    assert ours.p_value == pytest.approx(expected_p, abs=1e-9)
    if alternative == "two-sided":
        half = sps.norm.ppf(0.975) * se
        assert (ours.ci_low, ours.ci_high) == pytest.approx((p_c - p_b - half, p_c - p_b + half))
    # the squared z statistic is Pearson's chi-square on the 2x2 table (no continuity correction)
    table = [[212, 4000 - 212], [251, 3900 - 251]]
    chi2 = sps.chi2_contingency(table, correction=False)
    assert z * z == pytest.approx(chi2.statistic, rel=1e-9)
    vectorised = two_proportion_z_p([212], [4000], [251], [3900], alternative)  # type: ignore[arg-type]
    assert float(vectorised[0]) == pytest.approx(ours.p_value, abs=1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("seed", [0, 1])
def test_mann_whitney_equals_scipy(alternative: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = np.round(rng.exponential(3.0, size=70), 1)  # rounding makes ties
    cand = np.round(rng.exponential(3.6, size=64), 1)
    ours = mann_whitney_u(base, cand, alternative=alternative)  # type: ignore[arg-type]
    ref = sps.mannwhitneyu(cand, base, alternative=alternative, method="asymptotic")
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-6)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-6)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_mann_whitney_on_counts_equals_scipy(alternative: str) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n_b, n_c = rng.integers(5, 300, size=2)
        base = (rng.random(n_b) < 0.1).astype(float)
        cand = (rng.random(n_c) < 0.15).astype(float)
        p = mann_whitney_binary(base.sum(), n_b, cand.sum(), n_c, alternative)  # type: ignore[arg-type]
        if base.sum() + cand.sum() in (0, n_b + n_c):
            assert float(p) == 1.0
            continue
        ref = sps.mannwhitneyu(cand, base, alternative=alternative, method="asymptotic")
        assert float(p) == pytest.approx(ref.pvalue, abs=1e-6)


def test_bad_input_raises_named_errors() -> None:
    with pytest.raises(ValidationError, match="2 or more"):
        welch_t_test(Moments(), _moments(np.arange(5.0)))
    with pytest.raises(ValidationError, match="alpha"):
        welch_t_test(_moments(np.arange(5.0)), _moments(np.arange(5.0)), alpha=1.5)
    with pytest.raises(ValidationError, match="alternative"):
        two_proportion_z_test(Proportion(10, 1), Proportion(10, 2), alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="both arms"):
        two_proportion_z_test(Proportion(0, 0), Proportion(10, 2))
    with pytest.raises(UserError):
        mann_whitney_u([], [1.0, 2.0])


def test_no_variation_in_proportions_gives_p_one() -> None:
    assert two_proportion_z_test(Proportion(50, 0), Proportion(60, 0)).p_value == 1.0
