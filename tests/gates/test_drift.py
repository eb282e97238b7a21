from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from lockgate.errors import ValidationError
from lockgate.gates.drift import ks_statistic, population_stability_index, prediction_drift

samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=100, deadline=None)
@given(values=samples)
def test_psi_of_identical_samples_is_zero(values: list[float]) -> None:
    assert population_stability_index(values, values) == 0.0


@settings(max_examples=100, deadline=None)
@given(a=samples, b=samples)
def test_psi_is_never_negative(a: list[float], b: list[float]) -> None:
    assert population_stability_index(a, b) >= 0.0


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    small = population_stability_index(ref, rng.normal(0.1, 1, 5000))
    large = population_stability_index(ref, rng.normal(1.0, 1, 5000))
    assert small < 0.1 < 0.25 < large


def test_psi_on_labels_uses_two_bins() -> None:
    ref = np.array([0.0] * 50 + [1.0] * 50)
    cur = np.array([0.0] * 80 + [1.0] * 20)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert population_stability_index(ref, cur) == pytest.approx(expected)


def test_ks_is_scipys() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=200), rng.normal(0.3, 1, 300)
    expected = ks_2samp(a, b)
    assert ks_statistic(a, b) == pytest.approx((expected.statistic, expected.pvalue))


def test_drift_result_and_errors() -> None:
    result = prediction_drift([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert result.psi == 0.0 and result.ks_statistic == 0.0
    with pytest.raises(ValidationError, match="no finite values"):
        prediction_drift([np.nan], [1.0])
    with pytest.raises(ValidationError, match="bins"):
        population_stability_index([1.0], [1.0], bins=1)
