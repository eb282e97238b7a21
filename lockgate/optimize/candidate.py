"""A model in hand for ``lockgate optimize``: a parent as loaded from its MLflow folder, or a
candidate as made, with one ``predict`` for every kind (scikit-learn, torch, ONNX, encoders)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError
from lockgate.optimize.artifact import ModelArtifact, model_artifact
from lockgate.optimize.encoder import ENCODER_FILE, OnnxSentenceEncoder
from lockgate.optimize.methods import ModelKind

__all__ = ["Candidate", "Framing", "framed", "load_candidate", "text_signature"]


# -- models of each kind --------------------------------------------------------------------------
@dataclass
class Candidate:
    """A model in hand of one kind: a parent as loaded, or a candidate as made.

    ``obj`` is a scikit-learn estimator, a torch module, the path of an ONNX graph, a
    sentence-transformers model, or the folder of an exported encoder.
    """

    kind: ModelKind
    obj: Any
    threads: int = 2
    notes: tuple[str, ...] = ()
    extra: dict[str, float] = field(default_factory=dict)
    _session: Any = None

    @property
    def is_text(self) -> bool:
        return self.kind in ("encoder", "onnx-encoder")

    def _ort(self) -> Any:
        if self._session is None:
            if self.kind == "onnx-encoder":
                self._session = OnnxSentenceEncoder(Path(self.obj), threads=self.threads).load()
            else:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._session = ort.InferenceSession(
                    str(self.obj), options, providers=["CPUExecutionProvider"]
                )
        return self._session

    def predict(self, batch: Any) -> npt.NDArray[Any]:
        """Class probabilities (or the raw output) for rows; embeddings for sentences."""
        if self.kind == "sklearn":
            batch = framed(self.obj, batch)
            if hasattr(self.obj, "predict_proba"):
                return np.asarray(self.obj.predict_proba(batch))
            return np.asarray(self.obj.predict(batch)).reshape(len(batch), -1)
        if self.kind == "torch":
            import torch

            with torch.inference_mode():
                out = self.obj(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
            return np.asarray(out.detach().numpy())
        if self.kind == "onnx":
            session = self._ort()
            graph_input = session.get_inputs()[0]
            dtype = np.float64 if graph_input.type == "tensor(double)" else np.float32
            outputs = session.run(None, {graph_input.name: np.asarray(batch, dtype=dtype)})
            return _primary_output(outputs)
        if self.kind == "encoder":
            return np.asarray(
                self.obj.encode(list(batch), batch_size=max(1, len(batch)), convert_to_numpy=True)
            )
        return np.asarray(self._ort().encode(list(batch), batch_size=max(1, len(batch))))

    def artifact(self, signature: Any) -> ModelArtifact:
        """The MLflow model this becomes when logged (an exported encoder carries its text signature)."""
        if self.kind == "onnx-encoder":
            signature = text_signature(int(self.predict(["x"]).shape[1]))
        return model_artifact(self.kind, self.obj, signature)

    def size_bytes(self, signature: Any = None) -> int:
        """Bytes on disk of the MLflow model folder it is logged as (model files, MLmodel, requirements)."""
        return self.artifact(signature).size_bytes()

    def log(self, signature: Any) -> None:
        """Log the model as ``model`` in the active MLflow run, in a flavour ``lockgate serve`` loads."""
        self.artifact(signature).log()


def framed(estimator: Any, rows: Any) -> Any:
    """Rows as a DataFrame with the feature names an estimator fitted on a DataFrame expects."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return rows
    import pandas as pd

    return pd.DataFrame(np.asarray(rows), columns=list(names))


def _primary_output(outputs: Sequence[Any]) -> npt.NDArray[Any]:
    """The probability matrix of a classifier graph (label, probabilities), else the first output."""
    arrays = [np.asarray(o) for o in outputs]
    for array in arrays:
        if array.ndim == 2 and array.dtype.kind == "f":
            return array
    return arrays[0]


def text_signature(dim: int) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim), "embeddings")]),
    )


def load_candidate(folder: Path, threads: int) -> tuple[Candidate, Any]:
    """The model in an MLflow model folder, and its MLflow signature."""
    from mlflow.models import Model

    meta = Model.load(str(folder / "MLmodel"))
    flavors = meta.flavors
    if "onnx" in flavors:
        data = flavors["onnx"].get("data", "model.onnx")
        return Candidate("onnx", folder / data, threads), meta.signature
    if "sklearn" in flavors:
        import mlflow.sklearn

        return Candidate("sklearn", mlflow.sklearn.load_model(str(folder)), threads), meta.signature
    if "pytorch" in flavors:
        import mlflow.pytorch

        module = mlflow.pytorch.load_model(str(folder), map_location="cpu")
        return Candidate("torch", module, threads), meta.signature
    if "sentence_transformers" in flavors:
        import mlflow.sentence_transformers

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        model = mlflow.sentence_transformers.load_model(str(folder))
        return Candidate("encoder", model, threads), meta.signature
    encoders = list(folder.rglob(ENCODER_FILE))
    if encoders:
        return Candidate("onnx-encoder", encoders[0].parent, threads), meta.signature
    raise UserError(
        f"lockgate cannot optimize a model with flavours {', '.join(sorted(flavors))}",
        hint="optimize scikit-learn, PyTorch, ONNX or sentence-transformers models",
    )


class Framing:
    """A classifier that takes plain arrays for one fitted on a DataFrame (so it gets its column names)."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.classes_ = estimator.classes_

    def predict_proba(self, rows: Any) -> Any:
        return self.estimator.predict_proba(framed(self.estimator, rows))
