"""The one interface every model runtime implements, and an in-memory predictor for tests.

A predictor follows the estimator contract: the constructor only stores where the model is, ``load``
does the expensive work (reading weights, building sessions), ``predict`` maps a batch (rows on axis
0) to named output arrays with the same number of rows. The server never calls ``predict`` from two
threads at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lockgate.serving.protocol import ModelInput, Outputs
from lockgate.serving.signature import FieldSpec, Signature

__all__ = ["FunctionPredictor", "Predictor"]


@runtime_checkable
class Predictor(Protocol):
    """A loaded model that scores batches.

    ``runtime`` names the engine (``onnxruntime``, ``sklearn``, ``pyfunc``, ``torch``,
    ``sentence-transformers``); ``primary_output`` is the output MLflow's ``/invocations``
    returns as ``predictions`` (``None``: all outputs; ``is_table_output``: as records).
    """

    runtime: str
    signature: Signature
    primary_output: str | None
    is_table_output: bool

    def load(self) -> None: ...

    def predict(self, inputs: ModelInput) -> Outputs: ...


class FunctionPredictor:
    """A predictor around a plain function of a numpy batch, for tests and simple models.

    ``fn`` takes the decoded batch and returns one array (named ``predictions``) or a dict of
    arrays, each with one row per input row.
    """

    runtime = "function"
    is_table_output = False

    def __init__(
        self,
        fn: Callable[[npt.NDArray[Any]], npt.NDArray[Any] | Outputs],
        signature: Signature,
        *,
        primary_output: str | None = "predictions",
    ) -> None:
        self.fn = fn
        self.signature = signature
        self.primary_output = primary_output
        self.calls: list[int] = []

    def load(self) -> None:
        """Nothing to read: the function is the model."""

    def predict(self, inputs: ModelInput) -> Outputs:
        self.calls.append(int(inputs.shape[0]))
        result = self.fn(np.asarray(inputs))
        if isinstance(result, dict):
            return result
        return {"predictions": np.asarray(result)}


def column_signature(names: list[str], dtype: str = "float64") -> Signature:
    """A signature of named scalar columns that all share ``dtype`` (a shortcut for tests)."""
    return Signature("columns", tuple(FieldSpec(name, dtype) for name in names))
