"""Drift of a model's outputs: which sketch fits an output, and the model inputs of a reference table.

An output is sketched by its form, the way the shadow comparison reads it: labels (integers,
booleans, strings) as category counts, numbers (one per row) as quantile bins, and embeddings (a
2-D float output whose name starts with ``embedding``) as the centroid of their unit vectors, so
:func:`lockgate.monitor.drift.feature_drift` gives PSI and Jensen-Shannon for the first two and the
centroid's cosine distance, plus the mean cosine of live embeddings to the reference centroid, for
the third. The reference is the baseline model's outputs on rows of the training data (the drift
reference), computed once when a deployment is loaded: see :mod:`lockgate.serving.deployment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError
from lockgate.monitor.sketch import CategoricalSketch, EmbeddingSketch, NumericSketch, Sketch

if TYPE_CHECKING:
    import pandas as pd

    from lockgate.serving.signature import Signature

__all__ = ["OutputKind", "model_inputs", "output_kind", "primary_output", "reference_sketch", "sketch_update"]

OutputKind = Literal["categorical", "numeric", "embedding"]


def primary_output(outputs: Mapping[str, Any], name: str | None) -> tuple[str, npt.NDArray[Any]] | None:
    """The output that is "the prediction": the named one, else the first; None when there is none."""
    if name is not None and name in outputs:
        return name, np.asarray(outputs[name])
    for key, value in outputs.items():
        return str(key), np.asarray(value)
    return None


def output_kind(values: npt.NDArray[Any], name: str) -> OutputKind | None:
    """How to sketch ``values`` (rows on axis 0); None for a form with no sketch (an image, a tensor)."""
    if values.dtype.kind in "biuOUS" and (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        return "categorical"
    if values.dtype.kind == "f":
        if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
            return "numeric"
        if values.ndim == 2 and name.startswith("embedding"):
            return "embedding"
    return None


def reference_sketch(values: npt.NDArray[Any], kind: OutputKind, *, bins: int = 20) -> Sketch:
    """The reference sketch of the baseline's outputs on the training rows."""
    if kind == "categorical":
        return CategoricalSketch.from_reference(values.ravel().tolist())
    if kind == "numeric":
        return NumericSketch.from_reference(values.ravel(), bins)
    return EmbeddingSketch.from_reference(values)


def sketch_update(sketch: Sketch, values: npt.NDArray[Any]) -> None:
    """Fold one request's outputs into a live sketch of the reference's kind (other forms: skipped)."""
    if isinstance(sketch, CategoricalSketch):
        sketch.update(values.ravel().tolist())
    elif isinstance(sketch, NumericSketch):
        if values.dtype.kind in "biuf":
            sketch.update(values.ravel())
    elif values.ndim == 2 and values.shape[1] == sketch.dim:
        sketch.update(values)


def model_inputs(rows: pd.DataFrame, signature: Signature) -> Any:
    """The rows of a reference table as the model takes them (what the request decoder would give).

    Raises :class:`UserError` when the table lacks the model's inputs or the model takes tensors.
    """
    if signature.kind == "columns":
        names = list(signature.column_names)
        missing = [n for n in names if n not in rows.columns]
        if missing:
            raise UserError(
                f"the drift reference lacks the model's input column(s) {', '.join(missing)}",
                hint="use a dataset version of the table the model was trained on",
            )
        if signature.is_all_numeric:
            return rows[names].to_numpy(dtype=signature.numeric_dtype)
        return rows[names].reset_index(drop=True)
    if signature.kind == "text":
        name = signature.inputs[0].name if signature.inputs else ""
        texts = [c for c in rows.columns if rows[c].dtype == object]
        column = name if name in rows.columns else (texts[0] if len(texts) == 1 else None)
        if column is None:
            raise UserError(
                f"the drift reference has no text column '{name}' for the model",
                hint="the reference of a text model needs one column of its input texts",
            )
        return np.asarray(rows[column].astype(str).tolist(), dtype=object)
    raise UserError(
        f"a model that takes {signature.kind} inputs cannot be run on a table's rows",
        hint="prediction drift needs a model with a columns or text signature",
    )
