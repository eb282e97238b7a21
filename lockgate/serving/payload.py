"""What an inference request decodes into, and the checks both protocols share (pure functions).

Both protocols decode into one :class:`InferenceRequest` whose ``inputs`` is what the predictor
takes: a 2-D array of columns in signature order, a tensor, an array of strings, or (without a
signature) a DataFrame. A value that does not fit the signature raises
:class:`~lockgate.errors.ValidationError` naming the field; a body that is not JSON raises
:class:`~lockgate.errors.UserError` (400). The protocols themselves are
:mod:`~lockgate.serving.invocations_codec` (MLflow scoring) and :mod:`~lockgate.serving.v2_codec`
(Open Inference Protocol).

The common case (numeric columns, rows as lists) is decoded with one ``np.asarray`` call and no
DataFrame; per-value checks run only to explain an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt
import orjson

from lockgate.errors import UserError, ValidationError
from lockgate.serving.signature import FieldSpec, Signature

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ORJSON_OPTIONS",
    "InferenceRequest",
    "ModelInput",
    "Outputs",
    "check_tensor",
    "column_positions",
    "columns_from_rows",
    "json_type",
    "jsonable",
    "missing_column",
    "numeric_matrix",
    "parse_json",
    "row_count",
    "short_repr",
    "texts",
]

ModelInput = Union[npt.NDArray[Any], "pd.DataFrame"]


Outputs = dict[str, npt.NDArray[Any]]


_MAX_REPORTED = 80


ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class InferenceRequest:
    """A decoded request: model inputs with the batch on axis 0, plus protocol extras.

    ``is_binary_output`` (V2 ``parameters.binary_data_output``) asks for every output as binary
    data; ``output_binary`` holds the per-output ``binary_data`` choices, which take precedence.
    """

    inputs: ModelInput
    n_rows: int
    request_id: str | None = None
    output_names: tuple[str, ...] | None = None
    is_binary_output: bool = False
    output_binary: Mapping[str, bool] = field(default_factory=dict)

    def binary_outputs(self, names: Sequence[str]) -> frozenset[str]:
        """Which of the outputs ``names`` go back as binary data."""
        if not self.is_binary_output and not self.output_binary:
            return frozenset()
        return frozenset(n for n in names if self.output_binary.get(n, self.is_binary_output))


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPORTED else text[: _MAX_REPORTED - 3] + "..."


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; malformed JSON is a 400 that says where it broke.

    ``NaN`` (what Python's ``json`` and pandas send for a missing value, and MLflow reads) is read as
    null, so a column whose signature allows missing values takes it; ``Infinity`` is a 422. Only a
    body orjson refuses is read again this way: the common case pays nothing.
    """
    if not body:
        raise UserError("the request body is empty", hint="send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if b"NaN" in body or b"Infinity" in body:
            document = _parse_with_non_finite(body)
            if document is not _UNREADABLE:
                return document
        raise UserError(f"malformed JSON: {exc}", hint="send a valid JSON document") from None


_UNREADABLE = object()


def _parse_with_non_finite(body: bytes) -> Any:
    import json

    infinite: list[str] = []

    def constant(name: str) -> float | None:
        if name == "NaN":
            return None
        infinite.append(name)
        return None

    try:
        document = json.loads(body, parse_constant=constant)
    except (ValueError, RecursionError):
        return _UNREADABLE
    if infinite:
        raise ValidationError(
            f"the body holds {infinite[0]}, which is not a finite number",
            hint="send a finite number, or null (or NaN) for a missing value",
        )
    return document


def _value_fits(value: Any, spec: FieldSpec) -> bool:
    kind = np.dtype(spec.dtype).kind
    if kind == "f":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in "iu":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "b":
        return isinstance(value, bool)
    return isinstance(value, str)


def _check_value(value: Any, spec: FieldSpec, row: int) -> Any:
    if value is None:
        if spec.is_required:
            raise ValidationError(
                f"column '{spec.name}' is required but row {row} has null",
                hint=f"send a {spec.type_name} value for '{spec.name}'",
                detail={"field": spec.name, "row": row},
            )
        return None
    if not _value_fits(value, spec):
        raise ValidationError(
            f"column '{spec.name}' expects {spec.type_name} but row {row} has "
            f"{json_type(value)} {short_repr(value)}",
            hint=f"send a {spec.type_name} value for '{spec.name}'",
            detail={"field": spec.name, "row": row, "expected": spec.type_name},
        )
    return value


def missing_column(spec: FieldSpec, given: Sequence[str]) -> ValidationError:
    return ValidationError(
        f"missing input column '{spec.name}'",
        hint=f"the model's input columns are {short_repr(list(given))}",
        detail={"field": spec.name},
    )


def column_positions(columns: Sequence[Any], sig: Signature) -> list[int | None] | None:
    """Position of each signature column within ``columns``; ``None`` when already in order."""
    if tuple(columns) == sig.column_names:
        return None
    index: dict[str, int] = {}
    for place, name in enumerate(columns):
        if not isinstance(name, str):
            raise ValidationError(
                f"column names must be strings, got {json_type(name)} {short_repr(name)}",
                detail={"field": "columns"},
            )
        if name in index:
            raise ValidationError(f"column '{name}' appears twice", detail={"field": name})
        index[name] = place
    positions: list[int | None] = []
    for spec in sig.inputs:
        position = index.get(spec.name)
        if position is None and spec.is_required:
            raise missing_column(spec, sig.column_names)
        positions.append(position)
    return positions


def _has_bool(rows: list[Any]) -> bool:
    return any(value is True or value is False for row in rows for value in row)


def numeric_matrix(
    rows: list[Any] | npt.NDArray[Any],
    sig: Signature,
    positions: list[int | None] | None,
    width: int,
    may_have_bools: bool,
) -> npt.NDArray[Any] | None:
    """The fast path: one ``np.asarray``; ``None`` when a slower check must explain a problem.

    numpy turns ``true`` into 1 silently, so rows are scanned for booleans, but only when the body
    holds the text ``true`` or ``false`` at all. orjson never yields NaN or infinity.
    """
    try:
        matrix = np.asarray(rows)
    except (ValueError, TypeError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width or matrix.dtype.kind not in "iuf":
        return None
    if may_have_bools and isinstance(rows, list) and _has_bool(rows):
        return None
    if positions is not None:
        if any(p is None for p in positions):
            return None
        matrix = matrix[:, [p for p in positions if p is not None]]
    if matrix.dtype.kind == "f":
        for column, spec in enumerate(sig.inputs):
            if spec.dtype != "float64" and np.dtype(spec.dtype).kind in "iu":
                values = matrix[:, column]
                if not np.array_equal(values, np.floor(values)):
                    return None
    return matrix.astype(sig.numeric_dtype, copy=False)


def _checked_matrix(
    rows: list[Any], sig: Signature, positions: list[int | None] | None, width: int
) -> npt.NDArray[Any]:
    """Value-by-value decoding: explains the first bad value, and builds mixed-type matrices."""
    out: list[list[Any]] = []
    for row_index, row in enumerate(rows):
        if not isinstance(row, list):
            raise ValidationError(
                f"row {row_index} must be a list of {width} values, got {json_type(row)}",
                detail={"field": "data", "row": row_index},
            )
        if len(row) != width:
            raise ValidationError(
                f"row {row_index} has {len(row)} values, expected {width}",
                hint="send one value per column, in the order of 'columns'",
                detail={"field": "data", "row": row_index},
            )
        values: list[Any] = []
        for column, spec in enumerate(sig.inputs):
            position = column if positions is None else positions[column]
            value = None if position is None else row[position]
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationError(
                    f"column '{spec.name}' row {row_index} is not a finite number",
                    detail={"field": spec.name, "row": row_index},
                )
            values.append(_check_value(value, spec, row_index))
        out.append(values)
    if sig.is_all_numeric:
        matrix = np.array([[np.nan if v is None else v for v in row] for row in out], dtype=np.float64)
        return matrix.astype(sig.numeric_dtype, copy=False)
    matrix = np.empty((len(out), len(sig.inputs)), dtype=object)
    for row_index, values in enumerate(out):
        matrix[row_index, :] = values
    return matrix


def columns_from_rows(
    rows: Any,
    sig: Signature,
    columns: Sequence[Any] | None,
    where: str,
    may_have_bools: bool = True,
) -> npt.NDArray[Any]:
    if not isinstance(rows, list):
        raise ValidationError(
            f"'{where}' must be a list of rows, got {json_type(rows)}", detail={"field": where}
        )
    if not rows:
        raise ValidationError(f"'{where}' has no rows", detail={"field": where})
    positions = None if columns is None else column_positions(columns, sig)
    width = len(sig.inputs) if columns is None else len(columns)
    if sig.is_all_numeric:
        matrix = numeric_matrix(rows, sig, positions, width, may_have_bools)
        if matrix is not None:
            return matrix
    return _checked_matrix(rows, sig, positions, width)


def check_tensor(array: npt.NDArray[Any], spec: FieldSpec, where: str) -> npt.NDArray[Any]:
    expected = (-1, *spec.shape)
    if array.ndim == len(spec.shape) and array.ndim >= 1:
        array = array[np.newaxis, ...]  # one example without its batch axis
    if array.ndim != len(expected) or any(
        want not in (-1, got) for want, got in zip(expected, array.shape, strict=True)
    ):
        raise ValidationError(
            f"input '{spec.name}' has shape {list(array.shape)}, expected {list(expected)}",
            hint="-1 means any size; the first axis is the batch",
            detail={"field": spec.name, "shape": list(array.shape)},
        )
    if array.shape[0] == 0:
        raise ValidationError(f"input '{spec.name}' has no rows", detail={"field": spec.name})
    want_kind = np.dtype(spec.dtype).kind
    fits = array.dtype.kind in ("iu" if want_kind in "iu" else "iuf" if want_kind == "f" else "b")
    if want_kind in "OSU":
        fits = array.dtype.kind == "U"
    if not fits:
        raise ValidationError(
            f"input '{spec.name}' expects {spec.type_name} values, got {array.dtype.kind!r} "
            f"({json_type(array.flat[0].item() if array.size else None)})",
            detail={"field": spec.name, "expected": spec.type_name},
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValidationError(
            f"input '{spec.name}' holds a value that is not a finite number",
            detail={"field": spec.name},
        )
    if want_kind in "OSU":
        return array.astype(object)
    return array.astype(spec.dtype, copy=False)


def texts(values: Any, where: str) -> npt.NDArray[Any]:
    if isinstance(values, str):
        values = [values]
    if isinstance(values, dict) and len(values) == 1:
        values = next(iter(values.values()))
        if isinstance(values, str):
            values = [values]
    if not isinstance(values, list) or not values:
        raise ValidationError(f"'{where}' must be a non-empty list of strings", detail={"field": where})
    out = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, dict) and len(value) == 1:
            value = next(iter(value.values()))
        if not isinstance(value, str):
            raise ValidationError(
                f"row {index} of '{where}' must be a string, got {json_type(value)}",
                detail={"field": where, "row": index},
            )
        out[index] = value
    return out


def row_count(inputs: ModelInput) -> int:
    return int(inputs.shape[0])


def jsonable(array: npt.NDArray[Any]) -> Any:
    if array.dtype.kind in "biuf" and array.flags.c_contiguous:
        return array
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return array.tolist()
