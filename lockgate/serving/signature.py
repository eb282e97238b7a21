"""What a served model takes and returns, in plain values the request decoder checks against.

A :class:`Signature` is built once at load time (from an MLflow signature, an ONNX graph or a torch
model) and read on every request, so it holds everything the hot path needs precomputed: column
names in order, their numpy dtypes, and whether all of them are numeric (the no-DataFrame path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError

__all__ = ["FieldSpec", "Signature", "SignatureKind", "output_fields", "signature_from_mlflow"]

SignatureKind = Literal["columns", "tensor", "text", "any"]

# MLflow DataType name -> numpy dtype the server decodes it to.
_MLFLOW_COLUMN_DTYPES: dict[str, str] = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "object",
    "binary": "object",
    "datetime": "object",
}


@dataclass(frozen=True)
class FieldSpec:
    """One input or output: a named column (``shape == ()``) or a tensor with a per-row shape.

    ``dtype`` is a numpy dtype name (``float64``, ``int64``, ``bool``, ``object`` for strings);
    ``-1`` in ``shape`` means any size.
    """

    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    is_required: bool = True

    @property
    def is_numeric(self) -> bool:
        return np.dtype(self.dtype).kind in "iuf"

    @property
    def type_name(self) -> str:
        """The name a client sees in errors and metadata (``double``, ``long``, ``string``...)."""
        return _TYPE_NAMES.get(self.dtype, self.dtype)

    @property
    def v2_datatype(self) -> str:
        return _V2_DATATYPES.get(self.dtype, "BYTES")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.v2_datatype,
            "shape": [-1, *self.shape],
        }


_TYPE_NAMES = {
    "float64": "double",
    "float32": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
    "object": "string",
}

_V2_DATATYPES = {
    "float64": "FP64",
    "float32": "FP32",
    "float16": "FP16",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
    "object": "BYTES",
}


@dataclass(frozen=True)
class Signature:
    """The inputs a model accepts and the outputs it returns.

    ``kind`` says how a request is decoded: ``columns`` (named scalar columns, one row per record),
    ``tensor`` (one array whose first axis is the batch), ``text`` (one string per row) or ``any``
    (no signature: the request is passed on as a DataFrame or an array, unchecked).
    """

    kind: SignatureKind
    inputs: tuple[FieldSpec, ...] = ()
    outputs: tuple[FieldSpec, ...] = ()
    column_names: tuple[str, ...] = field(init=False)
    is_all_numeric: bool = field(init=False)
    numeric_dtype: str = field(init=False)

    def __post_init__(self) -> None:
        if self.kind in ("tensor", "text") and len(self.inputs) != 1:
            raise UserError(
                f"a {self.kind} signature needs exactly one input, got {len(self.inputs)}",
                hint="serve models with a single input tensor, or declare named columns",
            )
        names = tuple(spec.name for spec in self.inputs)
        if len(set(names)) != len(names):
            raise UserError(
                f"the model signature repeats an input name: {list(names)}",
                hint="give each input column a distinct name when logging the model",
            )
        numeric = bool(self.inputs) and all(spec.is_numeric for spec in self.inputs)
        dtype = "object"
        if numeric:
            dtype = str(np.result_type(*(np.dtype(spec.dtype) for spec in self.inputs)))
        object.__setattr__(self, "column_names", names)
        object.__setattr__(self, "is_all_numeric", numeric)
        object.__setattr__(self, "numeric_dtype", dtype)

    @property
    def tensor(self) -> FieldSpec:
        """The single input of a ``tensor`` or ``text`` signature."""
        return self.inputs[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }


def output_fields(outputs: Mapping[str, npt.NDArray[Any]]) -> tuple[FieldSpec, ...]:
    """What a model really returned, as metadata: each output's name, dtype and per-row shape (as
    seen on one answer: a size that depends on the input is not guessed)."""
    fields: list[FieldSpec] = []
    for name, array in outputs.items():
        dtype = "object" if array.dtype.kind in "OSU" else str(array.dtype)
        fields.append(FieldSpec(name, dtype, tuple(int(d) for d in array.shape[1:])))
    return tuple(fields)


def _tensor_field(name: str | None, dtype: np.dtype[Any], shape: tuple[int, ...]) -> FieldSpec:
    dims = tuple(int(d) for d in shape)
    per_row = dims[1:] if dims else ()
    return FieldSpec(name or "input-0", str(np.dtype(dtype)), per_row)


def signature_from_mlflow(mlflow_signature: Any) -> Signature:
    """Translate an ``mlflow.models.ModelSignature`` (or ``None``) into a :class:`Signature`."""
    if mlflow_signature is None or mlflow_signature.inputs is None:
        return Signature("any")
    schema = mlflow_signature.inputs
    outputs: tuple[FieldSpec, ...] = ()
    if mlflow_signature.outputs is not None:
        outputs = tuple(_mlflow_fields(mlflow_signature.outputs))
    inputs = tuple(_mlflow_fields(schema))
    if schema.is_tensor_spec():
        if len(inputs) != 1:
            return Signature("any", inputs, outputs)
        if inputs[0].dtype in ("object", "str") or np.dtype(inputs[0].dtype).kind in "OSU":
            return Signature("text", (FieldSpec(inputs[0].name, "object"),), outputs)
        return Signature("tensor", inputs, outputs)
    if len(inputs) == 1 and inputs[0].dtype == "object" and not schema.has_input_names():
        return Signature("text", (FieldSpec("text", "object"),), outputs)
    if not schema.has_input_names():
        return Signature("any", (), outputs)
    return Signature("columns", inputs, outputs)


def _mlflow_fields(schema: Any) -> list[FieldSpec]:
    fields: list[FieldSpec] = []
    for index, spec in enumerate(schema.inputs):
        name = spec.name if spec.name is not None else f"input-{index}"
        if schema.is_tensor_spec():
            fields.append(_tensor_field(name, spec.type, tuple(spec.shape)))
            continue
        type_name = getattr(spec.type, "name", str(spec.type))
        dtype = _MLFLOW_COLUMN_DTYPES.get(type_name, "object")
        fields.append(FieldSpec(name, dtype, (), bool(getattr(spec, "required", True))))
    return fields
