"""Shadow comparison: agreement, differences and similarity, mergeable across workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import ValidationError
from lockgate.rollout.shadow import ShadowComparison


def test_labels_count_agreement_and_each_flip() -> None:
    comparison = ShadowComparison()
    comparison.update_labels(["cat", "dog", "dog", "cat"], ["cat", "cat", "dog", "dog"])
    comparison.update_labels([1, 1], [0, 1])
    assert comparison.labels_compared == 6
    assert comparison.agreement == pytest.approx(3 / 6)
    assert comparison.flip_rate == pytest.approx(3 / 6)
    assert comparison.flips == {"dog->cat": 1, "cat->dog": 1, "1->0": 1}


def test_numbers_track_mean_and_max_absolute_difference() -> None:
    comparison = ShadowComparison()
    comparison.update_numbers([0.1, 0.5, 0.9], [0.2, 0.5, 0.6])
    assert comparison.abs_difference.mean == pytest.approx(0.4 / 3)
    assert comparison.max_abs_difference == pytest.approx(0.3)


def test_embeddings_give_cosine_similarity() -> None:
    comparison = ShadowComparison()
    comparison.update_embeddings([[1, 0], [1, 1], [0, 0]], [[1, 0], [-1, -1], [1, 0]])
    assert comparison.cosine.mean == pytest.approx((1 - 1 + 0) / 3)
    assert comparison.min_cosine == pytest.approx(-1.0)
    with pytest.raises(ValidationError, match="one embedding per row"):
        comparison.update_embeddings([1.0, 2.0], [1.0, 2.0])


def test_latency_is_kept_side_by_side() -> None:
    comparison = ShadowComparison()
    comparison.record_latency(np.full(100, 5.0), np.full(100, 50.0))
    summary = comparison.summary()
    assert summary["primary_p99_ms"] < 6.0 < 45.0 < summary["shadow_p99_ms"]


def test_mismatched_pairs_are_refused() -> None:
    with pytest.raises(ValidationError, match="same requests"):
        ShadowComparison().update_numbers([1.0, 2.0], [1.0])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.floats(-5, 5), st.floats(-5, 5))),
    st.integers(0, 40),
)
def test_merging_halves_equals_one_pass(rows: list[tuple[int, int, float, float]], cut: int) -> None:
    def fed(part: list[tuple[int, int, float, float]]) -> ShadowComparison:
        comparison = ShadowComparison()
        if part:
            a, b, x, y = (list(column) for column in zip(*part, strict=True))
            comparison.update_labels(a, b)
            comparison.update_numbers(x, y)
            comparison.update_embeddings(np.c_[x, y], np.c_[y, x])
        return comparison

    whole, merged = fed(rows), fed(rows[:cut]) + fed(rows[cut:])
    assert merged.labels_compared == whole.labels_compared
    assert merged.labels_agreed == whole.labels_agreed
    assert merged.flips == whole.flips
    assert merged.max_abs_difference == whole.max_abs_difference
    assert merged.abs_difference.mean == pytest.approx(whole.abs_difference.mean, abs=1e-9)
    assert merged.cosine.mean == pytest.approx(whole.cosine.mean, abs=1e-9)
    assert merged.min_cosine == pytest.approx(whole.min_cosine)


def test_round_trips_through_json() -> None:
    comparison = ShadowComparison()
    comparison.update_labels([0, 1], [1, 1])
    comparison.update_numbers([0.0], [2.0])
    comparison.record_latency([3.0], [4.0])
    again = ShadowComparison.from_dict(json.loads(json.dumps(comparison.to_dict())))
    assert again.summary() == comparison.summary()
    assert again.flips == {"0->1": 1}


def test_generated_answers_count_exact_matches_length_and_cosine() -> None:
    comparison = ShadowComparison()
    comparison.update_answers(["Roll back.", "Use a canary", ""], [" Roll back.", "Use a canary step", "hi"])
    comparison.update_answers(["a"], ["b"], [0.5])
    assert comparison.answers_compared == 4 and comparison.exact_match_rate == pytest.approx(1 / 4)
    assert comparison.length_ratio.mean == pytest.approx((11 / 10 + 17 / 12 + 2 / 1 + 1) / 4)
    summary = comparison.summary()
    assert summary["mean_answer_cosine"] == 0.5 and summary["min_answer_cosine"] == 0.5
    again = ShadowComparison.from_dict(json.loads(json.dumps(comparison.to_dict())))
    assert again.summary() == summary and (again + again).answers_compared == 8
    with pytest.raises(ValidationError):
        comparison.update_answers(["a"], [])
    old = {k: v for k, v in ShadowComparison().to_dict().items() if "answer" not in k and k != "length_ratio"}
    assert ShadowComparison.from_dict(old).answers_compared == 0  # stored before answers were compared
