"""Export models to ONNX: scikit-learn through skl2onnx, PyTorch through ``torch.onnx.export``.

The sentence encoder is exported as one graph from token ids to pooled, normalised embeddings, with
dynamic batch and sequence axes; the attention mask is computed inside the graph from the padding
id, so the graph has the single input that ONNX Runtime serving takes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError

__all__ = ["EXPORTERS", "Exporter", "sklearn_to_onnx", "torch_to_onnx"]

Exporter = Literal["dynamo", "torchscript"]
EXPORTERS: tuple[Exporter, ...] = ("dynamo", "torchscript")


def sklearn_to_onnx(model: Any, example: npt.NDArray[Any]) -> bytes:
    """A scikit-learn estimator as a float32 ONNX graph; classifiers give a probability matrix (no ZipMap)."""
    from skl2onnx import to_onnx

    sample = np.asarray(example, dtype=np.float32)[:1]
    try:
        graph = to_onnx(model, sample, options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    # skl2onnx raises many unrelated types (RuntimeError, MissingShapeCalculator, ...) for an estimator
    # it cannot convert; the user's fix is the same for each.
    except Exception as exc:  # noqa: BLE001
        raise UserError(
            f"skl2onnx cannot convert a {type(model).__name__} to ONNX: {exc}",
            hint="use an estimator skl2onnx supports, or optimize with --method distill",
        ) from None
    return bytes(graph.SerializeToString())


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's progress lines and its notes about unused axis names are noise for a user."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"onnxscript.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def torch_to_onnx(
    module: Any,
    example: tuple[Any, ...],
    path: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    exporter: Exporter = "dynamo",
    opset: int = 18,
) -> Path:
    """Export ``module`` called on ``example`` to ``path`` (one self-contained file).

    ``exporter`` is passed to ``torch.onnx.export`` explicitly: ``dynamo`` (``torch.export``, the
    default of current PyTorch, needs onnxscript) or ``torchscript`` (the tracer, kept for modules
    that ``torch.export`` cannot capture). ``dynamic_axes`` names the axes that may vary per input.
    """
    import torch

    if exporter not in EXPORTERS:
        raise UserError(f"unknown exporter '{exporter}'", hint=f"choose one of {', '.join(EXPORTERS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "input_names": input_names,
        "output_names": output_names,
        "opset_version": opset,
        "external_data": False,
    }
    if exporter == "dynamo":
        dims: dict[str, Any] = {}
        shapes: dict[str, dict[int, Any]] = {}
        for name in input_names:
            axes = dynamic_axes.get(name, {})
            shapes[name] = {}
            for axis, axis_name in axes.items():
                dims.setdefault(axis_name, torch.export.Dim(axis_name, min=1, max=1 << 16))
                shapes[name][axis] = dims[axis_name]
        kwargs["dynamic_shapes"] = shapes
        kwargs["dynamo"] = True
    else:
        kwargs["dynamic_axes"] = dynamic_axes
        kwargs["dynamo"] = False
    module.eval()
    with _quiet_exporter(), torch.no_grad():
        torch.onnx.export(module, example, str(path), **kwargs)
    return path
