"""Bonferroni and Holm against hand-computed adjustments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import ValidationError
from lockgate.stats import bonferroni, holm


def test_holm_hand_computed() -> None:
    result = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert result.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert result.rejected == (True, False, False, True)


def test_bonferroni_hand_computed() -> None:
    result = bonferroni([0.01, 0.2, 0.6], alpha=0.05)
    assert result.adjusted == pytest.approx((0.03, 0.6, 1.0))
    assert result.rejected == (True, False, False)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=12))
def test_holm_rejects_at_least_what_bonferroni_rejects(p_values: list[float]) -> None:
    h, b = holm(p_values), bonferroni(p_values)
    assert all(hr or not br for hr, br in zip(h.rejected, b.rejected, strict=True))
    assert all(0.0 <= p <= 1.0 for p in h.adjusted)
    assert all(hp <= bp + 1e-12 for hp, bp in zip(h.adjusted, b.adjusted, strict=True))


def test_bad_input() -> None:
    with pytest.raises(ValidationError):
        holm([])
    with pytest.raises(ValidationError):
        bonferroni([0.5, 1.5])
    with pytest.raises(ValidationError):
        holm([0.5], alpha=0.0)
