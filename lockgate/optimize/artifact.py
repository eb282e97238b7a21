"""The MLflow model folder a model becomes: one description, used both to log it and to weigh it.

The trade-off's size axis is the bytes of that folder on disk (the model files, ``MLmodel`` and the
requirements), the thing that is uploaded, registered, downloaded and served, for every candidate and
for the parent: a candidate that is not registered is saved to a temporary folder and weighed there,
written exactly as it would have been logged.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.optimize.encoder import EncoderPythonModel
from lockgate.optimize.measure import folder_bytes
from lockgate.optimize.methods import ModelKind

__all__ = ["ModelArtifact", "model_artifact"]


@dataclass(frozen=True)
class ModelArtifact:
    """How a model is written as an MLflow model: the flavour module, its model argument, the options.

    ``model`` is the flavour's first argument (None for ``pyfunc``, whose model is in ``options``).
    """

    flavor: str
    model: Any
    options: Mapping[str, Any] = field(default_factory=dict)

    def _module(self) -> Any:
        return importlib.import_module(f"mlflow.{self.flavor}")

    def _args(self) -> tuple[Any, ...]:
        return () if self.model is None else (self.model,)

    def save(self, path: Path) -> Path:
        """Write the model folder at ``path`` (which must not exist yet)."""
        with _quiet():
            self._module().save_model(*self._args(), path=str(path), **self.options)
        return path

    def log(self, name: str = "model") -> None:
        """Log it as ``name`` in the active MLflow run."""
        with _quiet():
            self._module().log_model(*self._args(), name=name, **self.options)

    def size_bytes(self) -> int:
        """Bytes on disk of the saved model folder."""
        with tempfile.TemporaryDirectory(prefix="lockgate-size-") as tmp:
            return folder_bytes(self.save(Path(tmp) / "model"))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        # The signature is given; MLflow's advice to add an input example is noise here.
        warnings.filterwarnings("ignore", message=r".*input example was not provided")
        yield


def model_artifact(kind: ModelKind, obj: Any, signature: Any) -> ModelArtifact:
    """The MLflow model a candidate of ``kind`` is logged as, in a flavour ``lockgate serve`` loads.

    ``obj`` is as in :class:`~lockgate.optimize.optimizer.Candidate`: an estimator, a torch module,
    the path of an ONNX graph, a sentence-transformers model or an exported encoder's folder.
    """
    if kind in ("sklearn", "torch"):
        from lockgate.tracking.models import write_options

        extra = {"serialization_format": "pickle"} if kind == "torch" else {}
        flavor = "sklearn" if kind == "sklearn" else "pytorch"
        return ModelArtifact(flavor, obj, {**write_options(obj), "signature": signature, **extra})
    if kind == "onnx":
        import onnx

        return ModelArtifact(
            "onnx",
            onnx.load(str(obj)),
            {
                "signature": signature,
                "pip_requirements": ["onnx", "onnxruntime"],
                "save_as_external_data": False,
            },
        )
    if kind == "onnx-encoder":
        return ModelArtifact(
            "pyfunc",
            None,
            {
                "python_model": EncoderPythonModel(),
                "artifacts": {"encoder": str(obj)},
                "signature": signature,
                "pip_requirements": ["lockgate[onnx,text]", "onnxruntime", "transformers"],
            },
        )
    return ModelArtifact(
        "sentence_transformers", obj, {"pip_requirements": ["sentence-transformers", "torch"]}
    )
