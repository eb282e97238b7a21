"""Which sketch fits a model output, the reference table as model inputs, embedding cosines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lockgate.errors import UserError
from lockgate.monitor.drift import DriftThresholds, feature_drift
from lockgate.monitor.predictions import (
    model_inputs,
    output_kind,
    primary_output,
    reference_sketch,
    sketch_update,
)
from lockgate.monitor.sketch import CategoricalSketch, EmbeddingSketch, NumericSketch
from lockgate.serving.signature import FieldSpec, Signature


def test_an_output_is_sketched_by_its_form() -> None:
    assert output_kind(np.array([0, 1, 1]), "predictions") == "categorical"
    assert output_kind(np.array(["cat", "dog"], dtype=object), "predictions") == "categorical"
    assert output_kind(np.array([[True], [False]]), "label") == "categorical"
    assert output_kind(np.array([0.5, 1.5]), "predictions") == "numeric"
    assert output_kind(np.array([[0.5], [1.5]]), "predictions") == "numeric"
    assert output_kind(np.ones((3, 8), dtype=np.float32), "embeddings") == "embedding"
    assert output_kind(np.ones((3, 2)), "probabilities") is None  # no sketch for a table of floats
    assert output_kind(np.ones((3, 2, 2)), "embeddings") is None


def test_the_primary_output_is_the_named_one_or_the_first() -> None:
    outputs = {"probabilities": np.ones((2, 2)), "predictions": np.array([1, 0])}
    assert primary_output(outputs, "predictions")[0] == "predictions"  # type: ignore[index]
    assert primary_output(outputs, None)[0] == "probabilities"  # type: ignore[index]
    assert primary_output({}, None) is None


def test_reference_sketches_take_live_outputs_of_their_kind() -> None:
    labels = reference_sketch(np.array([0, 1, 1, 1]), "categorical")
    assert isinstance(labels, CategoricalSketch) and labels.categories == ("0", "1")
    live = labels.empty_like()
    sketch_update(live, np.array([0, 0, 2]))
    assert live.counts == {"0": 2, "__other__": 1}
    numbers = reference_sketch(np.linspace(0, 1, 100), "numeric")
    assert isinstance(numbers, NumericSketch)
    live_numbers = numbers.empty_like()
    sketch_update(live_numbers, np.array([["a"]], dtype=object))  # not numbers: skipped
    sketch_update(live_numbers, np.array([[0.2], [0.9]]))
    assert live_numbers.count == 2
    vectors = reference_sketch(np.eye(3), "embedding")
    assert isinstance(vectors, EmbeddingSketch) and vectors.count == 3
    live_vectors = vectors.empty_like()
    sketch_update(live_vectors, np.ones((2, 4)))  # another dimension: skipped
    assert live_vectors.count == 0


def test_embedding_drift_has_the_mean_cosine_to_the_reference_centroid() -> None:
    rng = np.random.default_rng(3)
    direction = np.array([1.0, 0.0, 0.0, 0.0])
    reference = EmbeddingSketch.from_reference(direction + 0.1 * rng.normal(size=(500, 4)))
    same = EmbeddingSketch.from_reference(direction + 0.1 * rng.normal(size=(300, 4)))
    turned = EmbeddingSketch.from_reference(np.array([0.0, 1.0, 0.0, 0.0]) + 0.1 * rng.normal(size=(300, 4)))
    limits = DriftThresholds()
    close = feature_drift("embeddings", reference, same, limits)
    far = feature_drift("embeddings", reference, turned, limits)
    assert close.status == "ok" and far.status == "drift"
    assert close.numbers["mean_cosine"] > 0.95 and abs(far.numbers["mean_cosine"]) < 0.2
    assert close.numbers["reference_mean_cosine"] == pytest.approx(close.numbers["mean_cosine"], abs=0.02)
    assert far.numbers["cosine_distance"] > 0.8


def test_a_reference_table_becomes_the_model_inputs() -> None:
    rows = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4], "label": [0, 1], "text": ["x", "y"]})
    numeric = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64")))
    array = model_inputs(rows, numeric)
    assert array.dtype == np.float64 and array.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    mixed = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("text", "object")))
    assert list(model_inputs(rows, mixed).columns) == ["a", "text"]
    text = Signature("text", (FieldSpec("text", "object"),))
    assert model_inputs(rows, text).tolist() == ["x", "y"]
    with pytest.raises(UserError, match="lacks the model's input column"):
        model_inputs(rows, Signature("columns", (FieldSpec("c", "float64"),)))
    with pytest.raises(UserError, match="tensor inputs"):
        model_inputs(rows, Signature("tensor", (FieldSpec("x", "float32", (3,)),)))
