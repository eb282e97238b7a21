"""int8 quantization with ONNX Runtime: dynamic (weights int8, activations at run time) and static.

Dynamic quantization needs no data and suits transformers and MLPs on CPUs; per-channel scales keep
much more of the quality of a transformer than one scale per tensor. Static quantization fixes the
activation scales from calibration inputs (QDQ format). :func:`sensitive_nodes` names the layers
whose int8 error reaches the output directly (the last matrix products), which can stay float.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lockgate.errors import UserError

__all__ = ["QuantizeMode", "quantize_dynamic_int8", "quantize_static_int8", "sensitive_nodes"]

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


def _check_graph(src: Path) -> None:
    import onnx

    graph = onnx.load(str(src), load_external_data=False).graph
    if not any(n.op_type in _WEIGHTED_OPS for n in graph.node):
        raise UserError(
            "the ONNX graph has no MatMul, Gemm or Conv nodes, so int8 quantization would change nothing",
            hint="quantize neural networks and linear models; tree ensembles gain from "
            "--method onnx or --method distill instead",
        )


def quantize_dynamic_int8(
    src: Path, dst: Path, *, is_per_channel: bool = True, exclude: Iterable[str] = ()
) -> Path:
    """Dynamic int8 quantization of ``src`` to ``dst``; nodes named in ``exclude`` stay float."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _check_graph(src)
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
) -> Path:
    """Static int8 (QDQ) quantization with activation ranges from ``calibration`` inputs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    _check_graph(src)
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
