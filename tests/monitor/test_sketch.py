from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import ValidationError
from lockgate.monitor.sketch import (
    OTHER,
    CategoricalSketch,
    EmbeddingSketch,
    NumericSketch,
    sketch_from_dict,
)

floats = st.floats(-1e6, 1e6, allow_nan=False)


@given(
    st.lists(floats, min_size=5, max_size=60), st.lists(floats, max_size=40), st.lists(floats, max_size=40)
)
def test_numeric_merge_equals_one_pass(reference: list[float], a: list[float], b: list[float]) -> None:
    ref = NumericSketch.from_reference(reference, bins=8)
    one, two, both = ref.empty_like(), ref.empty_like(), ref.empty_like()
    one.update(a)
    two.update(b)
    both.update(a + b)
    one.merge(two)
    assert one.counts.tolist() == both.counts.tolist()
    assert one.count == len(a) + len(b)


def test_numeric_sketch_counts_nulls_and_round_trips() -> None:
    sketch = NumericSketch.from_reference(np.arange(100.0), bins=4)
    assert len(sketch.edges) == 3
    assert sketch.count == 100
    sketch.update([np.nan, np.inf, 5.0])
    assert sketch.nulls == 2
    again = sketch_from_dict(sketch.to_dict())
    assert isinstance(again, NumericSketch)
    assert again.counts.tolist() == sketch.counts.tolist() and again.nulls == 2


def test_constant_reference_gives_one_edge() -> None:
    sketch = NumericSketch.from_reference([3.0] * 50, bins=10)
    assert sketch.edges == (3.0,)


def test_categorical_caps_and_other() -> None:
    sketch = CategoricalSketch.from_reference(["a"] * 5 + ["b"] * 3 + ["c"], max_categories=2)
    assert sketch.categories == ("a", "b")
    assert sketch.counts == {"a": 5, "b": 3, OTHER: 1}
    sketch.update(["z", None, float("nan"), "a"])
    assert sketch.counts[OTHER] == 2 and sketch.nulls == 2
    assert sketch.vector().tolist() == [6, 3, 2]


def test_embedding_centroid_of_unit_vectors() -> None:
    sketch = EmbeddingSketch.from_reference([[2.0, 0.0], [0.0, 3.0]])
    assert np.allclose(sketch.centroid(), [0.5, 0.5])
    with pytest.raises(ValidationError, match="dim 3"):
        sketch.update([[1.0, 2.0, 3.0]])


def test_merging_mismatched_sketches_is_refused() -> None:
    with pytest.raises(ValidationError):
        NumericSketch((1.0,)).merge(NumericSketch((2.0,)))
    with pytest.raises(ValidationError):
        CategoricalSketch(("a",)).merge(CategoricalSketch(("b",)))
    with pytest.raises(ValidationError, match="strictly increasing"):
        NumericSketch((2.0, 1.0))
    with pytest.raises(ValidationError, match="unknown sketch kind"):
        sketch_from_dict({"kind": "audio"})
