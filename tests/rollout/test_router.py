"""The router: deterministic buckets, splits within tolerance, and users never move back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import ValidationError
from lockgate.rollout.router import (
    BUCKETS,
    RoutingTable,
    assign,
    bucket,
    random_bucket,
    should_shadow,
)


def canary(weight_bp: int) -> RoutingTable:
    return RoutingTable.from_weights([("stable", BUCKETS - weight_bp), ("canary", weight_bp)])


@given(st.text(max_size=20), st.text(max_size=40))
def test_bucket_is_deterministic_and_in_range(salt: str, key: str) -> None:
    first = bucket(salt, key)
    assert 0 <= first < BUCKETS
    assert bucket(salt, key) == first


def test_bucket_is_stable_across_releases() -> None:
    # Pinned values: a change here would move every user of every running rollout.
    assert [bucket("fraud", f"user-{i}") for i in range(3)] == [5756, 2048, 6432]


def test_salt_changes_the_assignment() -> None:
    keys = [f"user-{i}" for i in range(200)]
    same = sum(bucket("a", k) == bucket("b", k) for k in keys)
    assert same < 5
    assert bucket("ab", "c") != bucket("a", "bc")


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=BUCKETS), st.text(min_size=1, max_size=8))
def test_split_is_within_tolerance_over_many_keys(weight_bp: int, salt: str) -> None:
    table = canary(weight_bp)
    keys = 10_000
    hits = sum(assign(table, bucket(salt, str(i))) == "canary" for i in range(keys))
    expected = keys * weight_bp / BUCKETS
    # Five standard deviations of a binomial count, plus one for rounding.
    tolerance = 5 * (keys * (weight_bp / BUCKETS) * (1 - weight_bp / BUCKETS)) ** 0.5 + 1
    assert abs(hits - expected) <= tolerance


@given(
    st.lists(st.integers(min_value=0, max_value=BUCKETS), min_size=2, max_size=6),
    st.integers(min_value=0, max_value=BUCKETS - 1),
)
def test_growing_the_candidate_never_moves_a_user_back(weights: list[int], index: int) -> None:
    seen_candidate = False
    for weight in sorted(weights):
        on_candidate = assign(canary(weight), index) == "canary"
        assert on_candidate or not seen_candidate
        seen_candidate = seen_candidate or on_candidate


@given(st.integers(min_value=0, max_value=BUCKETS - 1))
def test_assign_matches_the_cumulative_ranges(index: int) -> None:
    table = RoutingTable.from_weights({"a": 2000, "empty": 0, "b": 3000, "c": 5000})
    expected = "a" if index < 2000 else "b" if index < 5000 else "c"
    assert assign(table, index) == expected


def test_zero_weight_variants_never_serve() -> None:
    table = RoutingTable.from_weights({"stable": BUCKETS, "canary": 0})
    assert {assign(table, i) for i in range(BUCKETS)} == {"stable"}
    assert table.weight_of("canary") == 0
    assert table.weight_of("absent") == 0


def test_single_sends_everything_to_one_variant() -> None:
    table = RoutingTable.single("stable")
    assert assign(table, 0) == assign(table, BUCKETS - 1) == "stable"
    assert table.to_dict() == {
        "weights_bp": {"stable": BUCKETS},
        "shadow_variant": None,
        "shadow_fraction": 0.0,
    }


@given(st.floats(min_value=0.0, max_value=1.0))
def test_shadow_mirrors_the_top_buckets_in_proportion(fraction: float) -> None:
    table = RoutingTable.from_weights({"stable": BUCKETS}, shadow_variant="canary", shadow_fraction=fraction)
    mirrored = [i for i in range(BUCKETS) if should_shadow(table, i)]
    assert len(mirrored) == round(fraction * BUCKETS)
    assert mirrored == list(range(BUCKETS - len(mirrored), BUCKETS))


def test_no_shadow_without_a_shadow_variant() -> None:
    table = canary(500)
    assert not any(should_shadow(table, i) for i in range(BUCKETS))


@given(st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_random_bucket_covers_the_range(draw: float) -> None:
    assert 0 <= random_bucket(draw) < BUCKETS


@pytest.mark.parametrize("draw", [-0.1, 1.0, 2.0])
def test_random_bucket_rejects_draws_outside_the_unit_interval(draw: float) -> None:
    with pytest.raises(ValidationError, match="outside"):
        random_bucket(draw)


@pytest.mark.parametrize(
    ("weights", "kwargs", "words"),
    [
        ({}, {}, "at least one"),
        ({"a": 5000, "b": 4000}, {}, "sum to 9000"),
        ({"a": 11000, "b": -1000}, {}, "basis points >= 0"),
        ({"a": 5000.0, "b": 5000}, {}, "whole number"),
        ([("a", 5000), ("a", 5000)], {}, "more than once"),
        ({"a": BUCKETS}, {"shadow_fraction": 0.5}, "without a shadow variant"),
        ({"a": BUCKETS}, {"shadow_variant": "b", "shadow_fraction": 1.5}, "outside"),
    ],
)
def test_invalid_tables_are_refused(weights: object, kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        RoutingTable.from_weights(weights, **kwargs)  # type: ignore[arg-type]
    assert words in str(info.value)


def test_tables_are_immutable() -> None:
    table = canary(500)
    with pytest.raises(AttributeError):
        table.weights_bp = (0, BUCKETS)  # type: ignore[misc]
