"""Accumulators: merged workers equal one pass over all data; bad counts are named errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import UserError, ValidationError
from lockgate.stats import LatencyHistogram, Moments, Proportion, VariantStats

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
latency = st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, max_size=60), st.lists(finite, max_size=60))
def test_moments_merge_equals_one_pass(left: list[float], right: list[float]) -> None:
    a, b, whole = Moments(), Moments(), Moments()
    for value in left:
        a.add(value)
    b.update(right)
    whole.update(left + right)
    merged = a + b
    assert merged.count == whole.count == len(left) + len(right)
    assert merged.mean == pytest.approx(whole.mean, rel=1e-9, abs=1e-6)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-7, abs=1e-3)
    if merged.count > 1:
        expected = float(np.var(left + right, ddof=1))
        assert merged.variance == pytest.approx(expected, rel=1e-7, abs=1e-3)


@given(st.lists(st.booleans(), max_size=80), st.lists(st.booleans(), max_size=80))
def test_proportion_merge_equals_one_pass(left: list[bool], right: list[bool]) -> None:
    a, b = Proportion(), Proportion()
    for outcome in left:
        a.add(outcome)
    b.update(right)
    whole = Proportion()
    whole.update(left + right)
    assert a + b == whole
    assert (a + b).successes == sum(left) + sum(right)


@settings(max_examples=50)
@given(
    st.lists(st.tuples(latency, st.booleans()), max_size=60),
    st.lists(st.tuples(latency, st.booleans()), max_size=60),
)
def test_variant_stats_merge_equals_one_pass(
    left: list[tuple[float, bool]], right: list[tuple[float, bool]]
) -> None:
    a, b, whole = VariantStats(), VariantStats(), VariantStats()
    for value, is_error in left:
        a.record(value, is_error=is_error)
    if right:
        b.record_many([v for v, _ in right], [e for _, e in right])
    for value, is_error in left + right:
        whole.record(value, is_error=is_error)
    merged = a + b
    assert merged.requests == whole.requests
    assert merged.errors == whole.errors
    assert np.array_equal(merged.latency.counts, whole.latency.counts)
    assert merged.latency.sum_ms == pytest.approx(whole.latency.sum_ms)
    assert VariantStats.from_dict(merged.to_dict()).to_dict() == merged.to_dict()


def test_merge_leaves_operands_unchanged() -> None:
    a, b = VariantStats(), VariantStats()
    a.record(3.0, is_error=True)
    b.record(5.0)
    _ = a + b
    assert (a.requests, a.errors, b.requests, b.errors) == (1, 1, 1, 0)


def test_record_outcomes_counts_binary_values_as_conversions() -> None:
    stats = VariantStats()
    stats.record_outcomes([0.0, 1.0, 1.0, 2.5])
    assert stats.outcome.count == 4
    assert stats.conversions == Proportion(3, 2)


def test_histogram_quantile_is_bucket_upper_bound() -> None:
    hist = LatencyHistogram()
    hist.update(np.full(99, 1.0))
    hist.add(1000.0)
    assert hist.quantile(0.5) >= 1.0
    assert hist.quantile(0.5) < 1.05
    assert hist.quantile(1.0) >= 1000.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: Moments(count=-1),
        lambda: Moments(count=2, mean=0.0, m2=-1.0),
        lambda: Moments(count=2, mean=float("nan"), m2=0.0),
        lambda: Proportion(trials=-1),
        lambda: Proportion(trials=3, successes=4),
        lambda: Proportion(trials=3, successes=-1),
        lambda: VariantStats(requests=-5),
        lambda: VariantStats(requests=2, errors=3),
        lambda: LatencyHistogram(bounds_ms=(1.0, 2.0), counts=np.array([1, -1, 0])),
        lambda: LatencyHistogram(bounds_ms=(1.0, 2.0), counts=np.array([1, 1])),
        lambda: LatencyHistogram(bounds_ms=(2.0, 1.0)),
        lambda: VariantStats.from_dict({**VariantStats().to_dict(), "errors": 1}),
    ],
)
def test_impossible_counts_raise_validation_error(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]


def test_bad_values_on_update_raise_validation_error() -> None:
    with pytest.raises(ValidationError):
        Moments().add(float("nan"))
    with pytest.raises(ValidationError):
        Moments().update([1.0, float("inf")])
    with pytest.raises(ValidationError):
        LatencyHistogram().add(-1.0)
    with pytest.raises(ValidationError):
        LatencyHistogram().update([1.0, float("nan")])
    with pytest.raises(ValidationError):
        VariantStats().record_many([1.0, 2.0], [True])
    with pytest.raises(UserError):
        LatencyHistogram().quantile(1.5)


def test_merging_histograms_with_different_bounds_is_refused() -> None:
    with pytest.raises(UserError, match="bucket bounds"):
        LatencyHistogram((1.0, 2.0)).merge(LatencyHistogram((1.0, 3.0)))


def test_histograms_and_stats_compare_by_value() -> None:
    from lockgate.stats.accumulators import LatencyHistogram, VariantStats

    left, right = LatencyHistogram(), LatencyHistogram()
    left.update([1.0, 2.0, 50.0])
    right.update([1.0, 2.0, 50.0])
    assert left == right and LatencyHistogram.from_dict(left.to_dict()) == left
    right.add(3.0)
    assert left != right
    a, b = VariantStats(requests=3), VariantStats(requests=3)
    a.latency.update([1.0, 2.0, 3.0])
    b.latency.update([1.0, 2.0, 3.0])
    assert a == b and VariantStats.from_dict(a.to_dict()) == a
