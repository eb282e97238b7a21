"""The gateway-overhead measure's arithmetic (its HTTP side runs in tests/llm/test_upstream.py)."""

from __future__ import annotations

import pytest

from lockgate.llm.overhead import overhead_from


def test_the_overhead_is_the_difference_of_the_medians() -> None:
    result = overhead_from([10.0, 11.0, 50.0], [10.5, 11.6, 12.0])
    assert (result.direct_p50_ms, result.gateway_p50_ms, result.pairs) == (11.0, 11.6, 3)
    assert result.overhead_ms_p50 == pytest.approx(0.6)
    assert result.to_dict()["overhead_ms_p50"] == pytest.approx(0.6)


def test_unpaired_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="one timing"):
        overhead_from([1.0], [])
