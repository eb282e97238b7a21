"""A sentence encoder run by ONNX Runtime: the tokenizer in Python, the transformer in one ONNX graph.

A folder holds ``model.onnx`` (token ids → normalised embeddings), the tokenizer files and
``encoder.json`` (maximum length, padding id). :class:`OnnxSentenceEncoder` encodes text with it;
:class:`EncoderPythonModel` wraps the folder as an MLflow pyfunc model, so ``lockgate serve`` takes
text and returns embeddings; the graph alone also loads in the ONNX Runtime predictor (token ids in).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from mlflow.pyfunc.model import PythonModel

from lockgate.errors import UserError
from lockgate.optimize.export import Exporter, torch_to_onnx

__all__ = ["ENCODER_FILE", "EncoderPythonModel", "OnnxSentenceEncoder", "export_encoder"]

ENCODER_FILE = "encoder.json"
GRAPH_FILE = "model.onnx"


def _pooled(torch_module: Any, pad_id: int) -> Any:
    """A module from token ids to the mean-pooled, L2-normalised sentence embedding."""
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any) -> Any:
            mask = (input_ids != pad_id).to(torch.int64)
            hidden = self.transformer(input_ids=input_ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(summed, p=2.0, dim=1)

    return PooledEncoder(torch_module)


def _check_architecture(model: Any) -> None:
    names = [type(m).__name__ for m in model]
    if len(names) < 2 or names[0] != "Transformer" or names[1] != "Pooling":
        raise UserError(
            f"lockgate exports sentence encoders made of Transformer → Pooling (→ Normalize); this one is "
            f"{' → '.join(names)}",
            hint="export it with its own tooling and serve the .onnx file",
        )
    pooling = model[1]
    mode = getattr(pooling, "pooling_mode_mean_tokens", None)
    if mode is False:
        raise UserError(
            "lockgate exports mean-pooled sentence encoders; this one pools differently",
            hint="use a mean-pooling encoder such as all-MiniLM-L6-v2",
        )


def export_encoder(model: Any, folder: Path, *, exporter: Exporter = "dynamo") -> Path:
    """Export a sentence-transformers encoder to ``folder`` (graph, tokenizer, ``encoder.json``)."""
    _check_architecture(model)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = model.tokenizer
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    max_length = int(model.max_seq_length or 256)
    sample = tokenizer(
        ["an example sentence to trace the graph", "another"], padding=True, return_tensors="pt"
    )["input_ids"]
    transformer = model[0].auto_model
    torch_to_onnx(
        _pooled(transformer, pad_id),
        (sample,),
        folder / GRAPH_FILE,
        input_names=["input_ids"],
        output_names=["embeddings"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}},
        exporter=exporter,
    )
    tokenizer.save_pretrained(str(folder))
    (folder / ENCODER_FILE).write_text(
        json.dumps({"max_length": max_length, "pad_id": pad_id, "graph": GRAPH_FILE}, indent=2) + "\n"
    )
    return folder


class OnnxSentenceEncoder:
    """Text in, embeddings out, through an encoder folder made by :func:`export_encoder`."""

    def __init__(self, folder: Path, *, threads: int = 1, graph: str | None = None) -> None:
        self.folder = folder
        self.threads = threads
        config_path = folder / ENCODER_FILE
        if not config_path.is_file():
            raise UserError(
                f"'{folder}' is not an exported encoder (no {ENCODER_FILE})",
                hint="make one with `lockgate optimize MODEL --method onnx`",
            )
        self.config = json.loads(config_path.read_text())
        self.graph_path = folder / (graph or str(self.config.get("graph", GRAPH_FILE)))
        self._session: Any = None
        self._tokenizer: Any = None

    def load(self) -> OnnxSentenceEncoder:
        import onnxruntime as ort

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(self.graph_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        return self

    def token_ids(self, texts: Sequence[str]) -> npt.NDArray[np.int64]:
        if self._tokenizer is None:
            self.load()
        encoded = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=int(self.config["max_length"]),
            return_tensors="np",
        )
        return np.asarray(encoded["input_ids"], dtype=np.int64)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embeddings of ``texts``, one row each, ``batch_size`` sentences per graph call."""
        if self._session is None:
            self.load()
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        chunks = []
        for start in range(0, len(texts), batch_size):
            ids = self.token_ids(texts[start : start + batch_size])
            chunks.append(self._session.run(None, {"input_ids": ids})[0])
        return np.asarray(np.vstack(chunks), dtype=np.float32)


class EncoderPythonModel(PythonModel):
    """The MLflow pyfunc form of an exported encoder: a column of text in, embeddings out."""

    # MLflow reads predict's type hints as an input schema (and warns about missing or Any ones); the
    # signature given at logging time describes the input instead, so predict has no hints for it.
    _skip_type_hint_validation = True

    def __init__(self) -> None:
        self._encoder: OnnxSentenceEncoder | None = None

    def load_context(self, context: Any) -> None:
        self._encoder = OnnxSentenceEncoder(Path(context.artifacts["encoder"])).load()

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import pandas as pd

        if self._encoder is None:
            self.load_context(context)
        assert self._encoder is not None
        if isinstance(model_input, pd.DataFrame):
            texts = [str(t) for t in model_input.iloc[:, 0].tolist()]
        else:
            texts = [str(t) for t in np.asarray(model_input, dtype=object).ravel().tolist()]
        return self._encoder.encode(texts)
