from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.optimize.tradeoff import (
    Latency,
    TradeOff,
    cosine_rows,
    latency_summary,
    max_abs_diff,
    pareto_optimal,
)


def record(label: str, quality: float, p50_ms: float, size: int, *, is_verified: bool = True) -> TradeOff:
    return TradeOff(
        label,
        "onnx",
        {},
        size,
        Latency(1, p50_ms, p50_ms * 1.5),
        Latency(32, p50_ms * 4, p50_ms * 5),
        "accuracy",
        quality,
        is_verified=is_verified,
    )


def test_latency_summary_and_throughput() -> None:
    latency = latency_summary([1.0, 2.0, 3.0, 4.0, 100.0], 32)
    assert latency.p50_ms == 3.0
    assert 4.0 < latency.p95_ms <= 100.0
    assert latency.rows_per_s == pytest.approx(32 * 1000 / 3.0)
    with pytest.raises(ValueError, match="at least one sample"):
        latency_summary([], 1)


def test_differences_and_cosines() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert max_abs_diff(a, a + 0.25) == 0.25
    assert max_abs_diff(a, a[:1]) == float("inf")
    assert cosine_rows(a, np.array([[2.0, 0.0], [1.0, 0.0]])).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="shapes"):
        cosine_rows(a, a[:1])


def test_pareto_marks_the_front_and_never_a_failed_candidate() -> None:
    records = [
        record("parent", 0.98, 1.0, 1000),
        record("faster", 0.97, 0.1, 1000),
        record("worse", 0.96, 0.5, 2000),  # dominated by "faster"
        record("tiny-but-failed", 0.99, 0.01, 10, is_verified=False),
    ]
    assert pareto_optimal(records) == [True, True, False, False]


def test_metrics_are_flat_floats() -> None:
    metrics = record("a", 0.9, 2.0, 10).metrics()
    assert metrics["accuracy"] == 0.9 and metrics["latency_b1_p50_ms"] == 2.0
    assert metrics["throughput_per_s"] == pytest.approx(32 * 1000 / 8.0)


points = st.lists(
    st.tuples(st.floats(0, 1), st.floats(0.01, 100), st.integers(1, 10_000), st.booleans()),
    min_size=1,
    max_size=12,
)


@given(points)
def test_pareto_front_is_undominated_and_nonempty(rows: list[tuple[float, float, int, bool]]) -> None:
    records = [record(str(i), q, p, s, is_verified=v) for i, (q, p, s, v) in enumerate(rows)]
    flags = pareto_optimal(records)
    if any(r.is_verified for r in records):
        assert any(flags)
    for i, is_optimal in enumerate(flags):
        if not is_optimal:
            continue
        mine = records[i]
        for other in records:
            if other is mine or not other.is_verified:
                continue
            better_or_equal = (
                other.quality >= mine.quality
                and other.latency_b1.p50_ms <= mine.latency_b1.p50_ms
                and other.size_bytes <= mine.size_bytes
            )
            strictly = (
                other.quality > mine.quality
                or other.latency_b1.p50_ms < mine.latency_b1.p50_ms
                or other.size_bytes < mine.size_bytes
            )
            assert not (better_or_equal and strictly)
