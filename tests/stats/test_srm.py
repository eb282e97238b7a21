"""Sample-ratio mismatch: chi-square equals scipy; the sequential test holds its level."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from lockgate.errors import ValidationError
from lockgate.stats import SequentialSRM, srm_chi2


def test_chi2_equals_scipy() -> None:
    counts, shares = [9_450, 550], [0.95, 0.05]
    ours = srm_chi2(counts, shares)
    ref = sps.chisquare(counts, f_exp=np.array(shares) * sum(counts))
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-6)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-6)
    assert not ours.is_mismatch
    assert srm_chi2([5_300, 4_700], [1, 1]).is_mismatch


def test_sequential_detects_a_broken_split() -> None:
    test = SequentialSRM((0.5, 0.5))
    assert test.test([5_000, 5_050]).p_value > 0.5
    result = test.test([4_600, 5_400])
    assert result.is_mismatch
    assert result.observed_shares == pytest.approx((0.46, 0.54))


def test_sequential_srm_level_over_many_looks() -> None:
    rng = np.random.default_rng(11)
    runs, looks = 4000, 100
    test = SequentialSRM((0.9, 0.1), alpha=0.05)
    cand = np.cumsum(rng.binomial(200, 0.1, size=(runs, looks)), axis=1)
    base = np.arange(1, looks + 1) * 200 - cand
    log_lr = test.log_lr(np.stack([base, cand], axis=-1))
    false_alarms = float(np.mean((log_lr >= np.log(1 / 0.05)).any(axis=1)))
    assert false_alarms <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / runs)


def test_running_p_never_increases() -> None:
    test = SequentialSRM((0.5, 0.5))
    previous = None
    for counts in ([100, 130], [200, 215], [300, 301]):
        result = test.test(counts, previous)
        if previous is not None:
            assert result.p_value <= previous.p_value
        previous = result


def test_bad_input() -> None:
    with pytest.raises(ValidationError):
        srm_chi2([-1, 5], [0.5, 0.5])
    with pytest.raises(ValidationError):
        srm_chi2([0, 0], [0.5, 0.5])
    with pytest.raises(ValidationError):
        srm_chi2([1, 2, 3], [0.5, 0.5])
    with pytest.raises(ValidationError):
        SequentialSRM((0.5, 0.0))
    with pytest.raises(ValidationError):
        SequentialSRM((0.5, 0.5), alpha=2.0)
