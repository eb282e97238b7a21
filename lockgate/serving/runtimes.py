"""Model runtimes behind the :class:`~lockgate.serving.predictor.Predictor` protocol.

- :class:`OnnxPredictor`: ONNX Runtime directly (no pandas).
- :class:`SklearnPredictor`: an MLflow scikit-learn model on numpy arrays in signature order; with
  ``fast_path="auto"`` it is converted to ONNX (skl2onnx, double precision) at load time and
  served by ONNX Runtime when the converted graph reproduces the native predictions on a probe
  batch, because scikit-learn's fixed per-call cost (about 0.5 ms) dominates small models.
- :class:`PyfuncPredictor`: any MLflow pyfunc flavour (one DataFrame per batch, never per request).
- :class:`TorchPredictor`: a TorchScript file or an MLflow pytorch ``nn.Module``.
- :class:`SentenceEncoderPredictor`: a sentence-transformers encoder (text in, embeddings out).

:func:`load_predictor` picks one from what a model folder holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError
from lockgate.serving.protocol import ModelInput, Outputs
from lockgate.serving.signature import FieldSpec, Signature, signature_from_mlflow

__all__ = [
    "FastPath",
    "OnnxPredictor",
    "PyfuncPredictor",
    "SentenceEncoderPredictor",
    "SklearnPredictor",
    "TorchPredictor",
    "load_predictor",
]

FastPath = Literal["auto", "onnx", "native", "pyfunc"]
_log = logging.getLogger("lockgate.serving")

_ONNX_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(float16)": "float16",
}


def _not_loaded(kind: str) -> UserError:
    return UserError(f"the {kind} model is not loaded", hint="call load() before predict()")


def _mlflow_model(path: Path) -> Any:
    from mlflow.models import Model

    return Model.load(str(path / "MLmodel"))


class OnnxPredictor:
    """An ONNX graph run by ONNX Runtime on the CPU.

    ``path`` is a ``.onnx`` file or an MLflow model folder with the ``onnx`` flavour; ``signature``
    overrides the one read from the graph (an MLflow column signature feeds its columns, in order,
    to the graph's single input). ``threads`` bounds ONNX Runtime's intra-op threads.
    """

    runtime = "onnxruntime"
    is_table_output = False

    def __init__(
        self,
        path: Path | bytes,
        *,
        signature: Signature | None = None,
        threads: int = 1,
        primary_output: str | None = None,
        output_names: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.signature = signature or Signature("any")
        self.threads = threads
        self.primary_output = primary_output
        self.output_names = output_names or {}
        self._session: Any = None
        self._input_name = ""
        self._input_dtype = "float32"

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        source: Any = self.path if isinstance(self.path, bytes) else str(self.path)
        self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise UserError(
                f"the ONNX graph has {len(inputs)} inputs; lockgate serves graphs with one input",
                hint="export the model with a single input tensor",
            )
        graph_input = inputs[0]
        self._input_name = graph_input.name
        self._input_dtype = _ONNX_DTYPES.get(graph_input.type, "float32")
        graph_outputs = [o.name for o in self._session.get_outputs()]
        if self.signature.kind == "any":
            shape = tuple(d if isinstance(d, int) else -1 for d in graph_input.shape)
            spec = FieldSpec(graph_input.name, self._input_dtype, shape[1:])
            kind: Literal["text", "tensor"] = "text" if self._input_dtype == "object" else "tensor"
            self.signature = Signature(
                kind,
                (spec,),
                tuple(
                    FieldSpec(
                        self.output_names.get(o.name, o.name),
                        _ONNX_DTYPES.get(o.type, "float32"),
                        tuple(d if isinstance(d, int) else -1 for d in o.shape)[1:],
                    )
                    for o in self._session.get_outputs()
                ),
            )
        if self.primary_output is None and len(graph_outputs) == 1:
            self.primary_output = self.output_names.get(graph_outputs[0], graph_outputs[0])
        self._graph_outputs = graph_outputs

    def predict(self, inputs: ModelInput) -> Outputs:
        if self._session is None:
            raise _not_loaded("ONNX")
        batch = np.asarray(inputs)
        if batch.dtype != self._input_dtype:
            batch = batch.astype(self._input_dtype)
        results = self._session.run(None, {self._input_name: batch})
        return {
            self.output_names.get(name, name): np.asarray(value)
            for name, value in zip(self._graph_outputs, results, strict=True)
        }


class SklearnPredictor:
    """An MLflow scikit-learn model scored on numpy arrays in the signature's column order."""

    is_table_output = False
    primary_output: str | None = "predictions"

    def __init__(self, path: Path, *, fast_path: FastPath = "auto", threads: int = 1) -> None:
        self.path = path
        self.fast_path = fast_path
        self.threads = threads
        self.signature = Signature("any")
        self.runtime = "sklearn"
        self._model: Any = None
        self._onnx: OnnxPredictor | None = None
        self._has_proba = False
        self._needs_frame = False

    def load(self) -> None:
        import mlflow.sklearn

        self.signature = signature_from_mlflow(_mlflow_model(self.path).signature)
        self._model = mlflow.sklearn.load_model(str(self.path))
        self._has_proba = hasattr(self._model, "predict_proba")
        self._needs_frame = hasattr(self._model, "feature_names_in_")
        is_numeric = self.signature.kind == "tensor" or (
            self.signature.kind == "columns" and self.signature.is_all_numeric
        )
        if self.fast_path in ("auto", "onnx") and is_numeric:
            self._onnx = self._convert()
            if self._onnx is None and self.fast_path == "onnx":
                raise UserError(
                    "this scikit-learn model cannot be served through ONNX Runtime",
                    hint="serve it with fast_path='native' (--fast-path native)",
                )
        self.runtime = "sklearn+onnxruntime" if self._onnx is not None else "sklearn"

    def _width(self) -> int:
        if self.signature.kind == "tensor":
            return int(np.prod([d for d in self.signature.tensor.shape if d > 0] or [1]))
        return len(self.signature.inputs)

    def _probe(self) -> npt.NDArray[np.float64]:
        """Rows to compare the converted graph with the native model: seeded, several scales."""
        rng = np.random.default_rng(0)
        width = self._width()
        example = self._input_example()
        rows = [rng.normal(0.0, scale, size=(16, width)) for scale in (1.0, 10.0, 1000.0)]
        if example is not None:
            rows.append(example)
            picks = example[rng.integers(0, len(example), size=64)]
            rows.append(picks * rng.uniform(0.8, 1.2, size=picks.shape))
        return np.vstack(rows)

    def _input_example(self) -> npt.NDArray[np.float64] | None:
        candidate = self.path / "input_example.json"
        if not candidate.is_file():
            return None
        try:
            data = json.loads(candidate.read_text())
            values = data.get("data") if isinstance(data, dict) else data
            array = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError, AttributeError):
            return None
        return array if array.ndim == 2 and array.shape[1] == self._width() else None

    def _convert(self) -> OnnxPredictor | None:
        try:
            from skl2onnx import to_onnx
        except ImportError:
            return None
        probe = self._probe()
        try:
            graph = to_onnx(self._model, probe[:1], options={"zipmap": False})
            onnx = OnnxPredictor(
                graph.SerializeToString(),
                signature=self.signature,
                threads=self.threads,
                output_names={"label": "predictions", "variable": "predictions"},
            )
            onnx.load()
            converted = onnx.predict(probe)
        # skl2onnx and ONNX Runtime raise many unrelated types for unsupported estimators
        except Exception as exc:  # noqa: BLE001
            _log.info("no ONNX fast path for this model (%s); serving with scikit-learn", exc)
            return None
        native = self._native(probe)
        for name, expected in native.items():
            got = converted.get(name)
            if got is None or got.shape != expected.shape:
                return None
            if expected.dtype.kind in "fc":
                if not np.allclose(got, expected, rtol=1e-6, atol=1e-9):
                    return None
            elif not np.array_equal(got, expected):
                return None
        onnx.primary_output = "predictions"
        return onnx

    def _native(self, batch: npt.NDArray[Any]) -> Outputs:
        features: Any = batch
        if self._needs_frame:
            import pandas as pd

            features = pd.DataFrame(batch, columns=list(self._model.feature_names_in_))
        outputs: Outputs = {"predictions": np.asarray(self._model.predict(features))}
        if self._has_proba:
            outputs["probabilities"] = np.asarray(self._model.predict_proba(features))
        return outputs

    def predict(self, inputs: ModelInput) -> Outputs:
        if self._model is None:
            raise _not_loaded("scikit-learn")
        if self._onnx is not None:
            outputs = self._onnx.predict(inputs)
            return {k: v for k, v in outputs.items() if k in ("predictions", "probabilities")}
        batch = np.asarray(inputs)
        if self.signature.kind == "columns" and not self.signature.is_all_numeric:
            return self._native_frame(batch)
        return self._native(batch)

    def _native_frame(self, batch: npt.NDArray[Any]) -> Outputs:
        import pandas as pd

        frame = pd.DataFrame(batch, columns=list(self.signature.column_names))
        outputs: Outputs = {"predictions": np.asarray(self._model.predict(frame))}
        if self._has_proba:
            outputs["probabilities"] = np.asarray(self._model.predict_proba(frame))
        return outputs


def _outputs_from(result: Any) -> tuple[Outputs, bool]:
    """Named arrays from whatever a model returned; ``True`` when it was a table."""
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return {str(c): result[c].to_numpy() for c in result.columns}, True
    if isinstance(result, pd.Series):
        return {"predictions": result.to_numpy()}, False
    if isinstance(result, dict):
        return {str(k): np.asarray(v) for k, v in result.items()}, False
    if isinstance(result, tuple):
        return {f"output-{i}": np.asarray(v) for i, v in enumerate(result)}, False
    return {"predictions": np.asarray(result)}, False


class PyfuncPredictor:
    """Any MLflow model through ``mlflow.pyfunc``: MLflow's semantics, one DataFrame per batch."""

    runtime = "pyfunc"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.signature = Signature("any")
        self.primary_output: str | None = None
        self.is_table_output = False
        self._model: Any = None

    def load(self) -> None:
        import mlflow.pyfunc

        self.signature = signature_from_mlflow(_mlflow_model(self.path).signature)
        self._model = mlflow.pyfunc.load_model(str(self.path))

    def predict(self, inputs: ModelInput) -> Outputs:
        if self._model is None:
            raise _not_loaded("pyfunc")
        import pandas as pd

        data: Any = inputs
        if self.signature.kind == "columns":
            frame = pd.DataFrame(np.asarray(inputs), columns=list(self.signature.column_names))
            for spec in self.signature.inputs:
                if spec.dtype != "object":
                    frame[spec.name] = frame[spec.name].astype(np.dtype(spec.dtype))
            data = frame
        elif self.signature.kind == "text":
            data = [str(text) for text in np.asarray(inputs).tolist()]
        outputs, is_table = _outputs_from(self._model.predict(data))
        self.is_table_output = is_table
        self.primary_output = "predictions" if list(outputs) == ["predictions"] else None
        return outputs


class TorchPredictor:
    """A PyTorch model: a TorchScript file, or an ``nn.Module`` from MLflow's pytorch flavour."""

    runtime = "torch"
    is_table_output = False

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        self.path = path
        self.threads = threads
        self.signature = Signature("any")
        self.primary_output: str | None = "predictions"
        self._module: Any = None
        self._dtype = "float32"

    def load(self) -> None:
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        if self.path.is_file() and self.path.suffix == ".pt2":
            self._module = torch.export.load(str(self.path)).module()
        elif self.path.is_file():
            with warnings.catch_warnings():
                # torch 2.13 deprecates TorchScript for new work; existing files must still serve.
                warnings.simplefilter("ignore", DeprecationWarning)
                self._module = torch.jit.load(  # type: ignore[no-untyped-call]
                    str(self.path), map_location="cpu"
                )
        else:
            import mlflow.pytorch

            self.signature = signature_from_mlflow(_mlflow_model(self.path).signature)
            self._module = mlflow.pytorch.load_model(str(self.path), map_location="cpu")
        # An exported program (.pt2, MLflow's default format) is already in inference form and
        # refuses eval().
        with contextlib.suppress(NotImplementedError):
            self._module.eval()
        if self.signature.kind in ("tensor", "columns") and self.signature.is_all_numeric:
            self._dtype = self.signature.numeric_dtype
        if self.signature.kind == "tensor":
            self._dtype = self.signature.tensor.dtype

    def predict(self, inputs: ModelInput) -> Outputs:
        if self._module is None:
            raise _not_loaded("torch")
        import torch

        batch = np.asarray(inputs)
        if batch.dtype.kind in "iuf" and batch.dtype != self._dtype:
            batch = batch.astype(self._dtype)
        with torch.inference_mode():
            result = self._module(torch.from_numpy(np.ascontiguousarray(batch)))
        if isinstance(result, tuple | list):
            outputs = {f"output-{i}": t.detach().cpu().numpy() for i, t in enumerate(result)}
            self.primary_output = None
            return outputs
        if isinstance(result, dict):
            self.primary_output = None
            return {str(k): v.detach().cpu().numpy() for k, v in result.items()}
        return {"predictions": result.detach().cpu().numpy()}


class SentenceEncoderPredictor:
    """A sentence-transformers encoder: one string per row in, one embedding per row out.

    ``path`` is a sentence-transformers folder (``modules.json``) or an MLflow
    ``sentence_transformers`` model. Nothing is downloaded: the folder must hold the weights.
    """

    runtime = "sentence-transformers"
    is_table_output = False
    primary_output: str | None = "embeddings"

    def __init__(self, path: Path, *, normalize: bool = False) -> None:
        self.path = path
        self.normalize = normalize
        self.signature = Signature("text", (FieldSpec("text", "object"),))
        self._model: Any = None

    def load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if (self.path / "MLmodel").is_file():
            import mlflow.sentence_transformers

            self._model = mlflow.sentence_transformers.load_model(str(self.path))
        else:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        dim = int(self._model.get_sentence_embedding_dimension() or -1)
        self.signature = Signature(
            "text", (FieldSpec("text", "object"),), (FieldSpec("embeddings", "float32", (dim,)),)
        )

    def predict(self, inputs: ModelInput) -> Outputs:
        if self._model is None:
            raise _not_loaded("sentence-transformers")
        texts = [str(t) for t in np.asarray(inputs, dtype=object).tolist()]
        embeddings = self._model.encode(
            texts,
            batch_size=max(1, len(texts)),
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return {"embeddings": np.asarray(embeddings, dtype=np.float32)}


def load_predictor(
    path: Path, *, fast_path: FastPath = "auto", threads: int = 1, decode_engine: str = "thread"
) -> Any:
    """Choose (without loading) the runtime for what ``path`` holds.

    A ``.onnx`` file → ONNX Runtime; a ``.pt``/``.pth`` file → TorchScript; a sentence-transformers
    folder → the encoder; a ``save_pretrained`` causal language model → the generative runtime
    (:mod:`lockgate.llm`); an MLflow model folder → by flavour (``onnx``, ``sklearn``, ``pytorch``,
    ``sentence_transformers``, anything else through pyfunc). ``fast_path="pyfunc"`` forces pyfunc.
    ``decode_engine`` is where a generative model decodes: ``process`` or ``thread``
    (:mod:`lockgate.llm.engine`).
    """
    if path.is_file():
        if path.suffix == ".onnx":
            return OnnxPredictor(path, threads=threads)
        if path.suffix in (".pt", ".pth", ".ts", ".pt2"):
            return TorchPredictor(path)
        raise UserError(
            f"cannot serve the file '{path}'",
            hint="pass a .onnx file, a torch.export .pt2 or TorchScript .pt file, or an MLflow model folder",
        )
    if (path / "MLmodel").is_file():
        flavors = _mlflow_model(path).flavors
        if fast_path == "pyfunc":
            return PyfuncPredictor(path)
        if "onnx" in flavors:
            signature = signature_from_mlflow(_mlflow_model(path).signature)
            data = flavors["onnx"].get("data", "model.onnx")
            return OnnxPredictor(
                path / data,
                signature=None if signature.kind == "any" else signature,
                threads=threads,
            )
        if "sklearn" in flavors:
            return SklearnPredictor(path, fast_path=fast_path, threads=threads)
        if "pytorch" in flavors:
            return TorchPredictor(path)
        if "sentence_transformers" in flavors:
            return SentenceEncoderPredictor(path)
        if "transformers" in flavors:
            from lockgate.llm.folder import mlflow_transformers_parts

            parts = mlflow_transformers_parts(path, flavors["transformers"])
            if parts is not None:
                from lockgate.llm.params import check_decode_engine
                from lockgate.llm.runtime import GenerativePredictor

                return GenerativePredictor(
                    parts[0],
                    tokenizer_path=parts[1],
                    threads=threads,
                    engine=check_decode_engine(decode_engine),
                )
        if "python_function" in flavors:
            return PyfuncPredictor(path)
        raise UserError(
            f"the MLflow model at '{path}' has no flavour lockgate can serve: {sorted(flavors)}",
            hint="log it with a python_function flavour",
        )
    if (path / "modules.json").is_file():
        return SentenceEncoderPredictor(path)
    from lockgate.llm.folder import is_causal_lm_folder

    if is_causal_lm_folder(path):
        from lockgate.llm.params import check_decode_engine
        from lockgate.llm.runtime import GenerativePredictor

        return GenerativePredictor(path, threads=threads, engine=check_decode_engine(decode_engine))
    if (path / "model.onnx").is_file():
        return OnnxPredictor(path / "model.onnx", threads=threads)
    raise UserError(
        f"'{path}' is not a model lockgate can serve",
        hint="pass an MLflow model folder (with MLmodel), a .onnx file, a TorchScript file, a "
        "sentence-transformers folder or a save_pretrained causal language model",
    )
