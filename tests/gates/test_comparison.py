from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from lockgate.errors import ValidationError
from lockgate.gates.comparison import mcnemar_exact, paired_bootstrap
from lockgate.gates.metrics import METRICS

outcomes = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200)


@settings(max_examples=80, deadline=None)
@given(pairs=outcomes)
def test_mcnemar_p_value_is_scipys_binomtest_on_discordant_pairs(pairs: list[tuple[bool, bool]]) -> None:
    cand = np.array([c for c, _ in pairs])
    base = np.array([b for _, b in pairs])
    result = mcnemar_exact(cand, base)
    c_only, b_only = int(np.sum(cand & ~base)), int(np.sum(base & ~cand))
    assert (result.candidate_only, result.baseline_only) == (c_only, b_only)
    assert result.difference == pytest.approx(cand.mean() - base.mean())
    if c_only + b_only:
        expected = binomtest(c_only, c_only + b_only, 0.5, alternative="less").pvalue
        assert result.p_value == pytest.approx(expected)
        assert result.p_value_two_sided == pytest.approx(binomtest(c_only, c_only + b_only, 0.5).pvalue)
    else:
        assert result.p_value == 1.0
    assert result.ci_low <= result.difference + 1e-12 <= result.ci_high + 2e-12


def test_mcnemar_identical_models_are_non_inferior_at_zero_margin() -> None:
    same = np.array([True, False, True, True])
    result = mcnemar_exact(same, same)
    assert result.ci_low == result.ci_high == 0.0
    assert result.is_non_inferior(0.0)


def test_mcnemar_flags_a_clearly_worse_model() -> None:
    base = np.ones(500, dtype=bool)
    cand = base.copy()
    cand[:40] = False  # 40 rows lost, none gained: 8 points worse
    result = mcnemar_exact(cand, base)
    assert result.p_value < 1e-10
    assert result.ci_high < 0
    assert not result.is_non_inferior(0.02)


def test_mcnemar_refuses_unequal_arrays() -> None:
    with pytest.raises(ValidationError, match="equal, non-empty"):
        mcnemar_exact([True], [True, False])


def _scored(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, n), 0, 1)
    noisy = np.clip(y * 0.2 + rng.normal(0.4, 0.3, n), 0, 1)
    return y, good, noisy


def test_bootstrap_same_seed_same_interval_other_seed_differs() -> None:
    y, good, noisy = _scored(1)
    metric = METRICS["roc_auc"]
    a = paired_bootstrap(metric, y, good, noisy, resamples=300, seed=7)
    b = paired_bootstrap(metric, y, good, noisy, resamples=300, seed=7)
    c = paired_bootstrap(metric, y, good, noisy, resamples=300, seed=8)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_bootstrap_orients_improvement_for_lower_is_better() -> None:
    y, good, noisy = _scored(2)
    better = paired_bootstrap(METRICS["log_loss"], y, good, noisy, resamples=200, seed=0)
    assert better.improvement > 0 and better.ci_low > 0
    worse = paired_bootstrap(METRICS["log_loss"], y, noisy, good, resamples=200, seed=0)
    assert worse.improvement < 0 and not worse.is_non_inferior(0.01)


def test_bootstrap_of_identical_predictions_is_zero() -> None:
    y, good, _ = _scored(3)
    result = paired_bootstrap(METRICS["accuracy"], y, good > 0.5, good > 0.5, resamples=100, seed=0)
    assert result.ci_low == result.ci_high == result.improvement == 0.0
    assert result.is_non_inferior(0.0)


def test_bootstrap_checks_its_arguments() -> None:
    with pytest.raises(ValidationError, match="too few"):
        paired_bootstrap(METRICS["accuracy"], [1.0], [1.0], [1.0], resamples=5)
    with pytest.raises(ValidationError, match="alpha"):
        paired_bootstrap(METRICS["accuracy"], [1.0], [1.0], [1.0], alpha=0.7)
