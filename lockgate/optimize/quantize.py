"""int8 quantization with ONNX Runtime: dynamic (weights int8, activations at run time) and static.

Dynamic quantization needs no data and suits transformers and MLPs on CPUs; per-channel scales keep
much more of the quality of a transformer than one scale per tensor. Static quantization fixes the
activation scales from calibration inputs (QDQ format). :func:`sensitive_nodes` names the layers
whose int8 error reaches the output directly (the last matrix products), which can stay float.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lockgate.errors import UserError

__all__ = [
    "QuantizeMode",
    "check_quantizable",
    "int8_refusal",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "sensitive_nodes",
]

QuantizeMode = Literal["dynamic", "static"]
_WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice (run pre-processing) on the root logger for every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def sensitive_nodes(model_path: Path, *, last: int = 1) -> list[str]:
    """Names of the ``last`` weighted nodes (MatMul/Gemm/Conv) nearest the graph's outputs."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weighted = [n.name for n in graph.node if n.op_type in _WEIGHTED_OPS and n.name]
    return weighted[-last:] if last > 0 else []


def int8_refusal(op_types: Sequence[str], kind: str | None = None) -> UserError | None:
    """Why int8 cannot help a graph made of ``op_types`` nodes, or None when it can.

    ONNX Runtime's quantizer rewrites MatMul, Gemm and Conv only; skl2onnx writes a scikit-learn
    linear model or tree ensemble as whole-model operators (``LinearClassifier``,
    ``TreeEnsembleClassifier``), which it leaves alone. The hint names what works for ``kind``, the
    model the graph came from (``sklearn``, ``onnx``, or None when unknown).
    """
    if any(op in _WEIGHTED_OPS for op in op_types):
        return None
    nodes = ", ".join(sorted(set(op_types))) or "none"
    message = (
        "the ONNX graph has no MatMul, Gemm or Conv nodes, so int8 quantization would change nothing "
        f"(its nodes: {nodes})"
    )
    applies = "int8 applies to models with matrix products: PyTorch networks, sentence encoders and "
    applies += "scikit-learn MLPs"
    if kind == "sklearn":
        message = (
            f"this scikit-learn model exports to ONNX as {nodes} nodes, with no MatMul, Gemm or Conv "
            "for int8 quantization to act on"
        )
        hint = (
            "use --method onnx (the float graph: the same predictions without scikit-learn's "
            f"per-call overhead) or --method distill (a smaller student); {applies}"
        )
    elif kind == "onnx":
        hint = f"this float ONNX graph is already the fastest form lockgate makes of it; {applies}"
    else:
        hint = f"{applies}; a scikit-learn linear model or tree ensemble gains from --method onnx instead"
    return UserError(message, hint=hint)


def check_quantizable(src: Path, kind: str | None = None) -> None:
    """Raise the UserError of :func:`int8_refusal` for the graph at ``src`` made from a ``kind`` model."""
    import onnx

    graph = onnx.load(str(src), load_external_data=False).graph
    refusal = int8_refusal([n.op_type for n in graph.node], kind)
    if refusal is not None:
        raise refusal


def quantize_dynamic_int8(
    src: Path,
    dst: Path,
    *,
    is_per_channel: bool = True,
    exclude: Iterable[str] = (),
    kind: str | None = None,
) -> Path:
    """Dynamic int8 quantization of ``src`` to ``dst``; nodes named in ``exclude`` stay float.
    ``kind`` is the model the graph came from, for the hint when int8 cannot help it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    check_quantizable(src, kind)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _quiet():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=is_per_channel,
            nodes_to_exclude=list(exclude),
        )
    return dst


class _Feeds:
    """ONNX Runtime's CalibrationDataReader over a list of input dictionaries."""

    def __init__(self, feeds: list[dict[str, np.ndarray[Any, Any]]]) -> None:
        self._items = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
        return next(self._items, None)


def quantize_static_int8(
    src: Path,
    dst: Path,
    calibration: Iterable[Mapping[str, np.ndarray[Any, Any]]],
    *,
    is_per_channel: bool = True,
    exclude: Iterable[str] = (),
    kind: str | None = None,
) -> Path:
    """Static int8 (QDQ) quantization with activation ranges from ``calibration`` inputs (``kind``:
    as for :func:`quantize_dynamic_int8`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    check_quantizable(src, kind)
    feeds = [dict(f) for f in calibration]
    if not feeds:
        raise UserError("static quantization needs calibration inputs", hint="pass --data with rows")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _quiet():
        quantize_static(
            str(src),
            str(dst),
            _Feeds(feeds),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=is_per_channel,
            nodes_to_exclude=list(exclude),
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True},
        )
    return dst
