"""A variant's metadata names what inference returns, not what the signature guessed."""

from __future__ import annotations

import numpy as np

from lockgate.serving.predictor import FunctionPredictor
from lockgate.serving.signature import FieldSpec, Signature
from lockgate.serving.variant import Variant


def _classifier(rows: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "predictions": (rows[:, 0] > 0).astype(np.int64),
        "probabilities": np.tile(np.array([0.25, 0.75], dtype=np.float32), (len(rows), 1)),
    }


def test_metadata_lists_the_outputs_the_warm_up_saw() -> None:
    # what MLflow's infer_signature writes for an unnamed output: one tensor called input-0
    signature = Signature(
        "columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64")), (FieldSpec("input-0", "int64"),)
    )
    variant = Variant("clf", "1", FunctionPredictor(_classifier, signature, primary_output=None))
    assert [o["name"] for o in variant.metadata()["outputs"]] == ["input-0"]  # nothing seen yet
    variant.warm_up(rounds=1)
    assert variant.metadata()["outputs"] == [
        {"name": "predictions", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
