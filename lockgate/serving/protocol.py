"""Request decoding and response encoding for the two inference protocols (pure functions).

``/invocations`` speaks MLflow's scoring format (``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs``; JSON or CSV) and answers ``{"predictions": ...}``;
``/v2/models/{name}/infer`` speaks the Open Inference Protocol (KServe V2). Both decode into one
:class:`InferenceRequest` whose ``inputs`` is what the predictor takes: a 2-D array of columns in
signature order, a tensor, an array of strings, or (without a signature) a DataFrame. A request
that does not fit the signature raises :class:`~lockgate.errors.ValidationError` naming the field;
a body that is not JSON raises :class:`~lockgate.errors.UserError` (400).

The common case (numeric columns, rows as lists) is decoded with one ``np.asarray`` call and no
DataFrame; per-value checks run only to explain an error.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt
import orjson

from lockgate.errors import UserError, ValidationError
from lockgate.serving.binary_data import array_from_bytes, array_to_bytes, split_body
from lockgate.serving.signature import FieldSpec, Signature

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "INVOCATION_FORMATS",
    "InferenceRequest",
    "ModelInput",
    "Outputs",
    "decode_invocations",
    "decode_v2",
    "encode_invocations",
    "encode_v2",
    "encode_v2_binary",
    "parse_json",
    "v2_datatype",
]

ModelInput = Union[npt.NDArray[Any], "pd.DataFrame"]
Outputs = dict[str, npt.NDArray[Any]]

INVOCATION_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_MAX_REPORTED = 80


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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPORTED else text[: _MAX_REPORTED - 3] + "..."


def _json_type(value: Any) -> str:
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


# ---------------------------------------------------------------------------------------------
# Values against one field
# ---------------------------------------------------------------------------------------------


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
            f"{_json_type(value)} {_short(value)}",
            hint=f"send a {spec.type_name} value for '{spec.name}'",
            detail={"field": spec.name, "row": row, "expected": spec.type_name},
        )
    return value


def _missing_column(spec: FieldSpec, given: Sequence[str]) -> ValidationError:
    return ValidationError(
        f"missing input column '{spec.name}'",
        hint=f"the model's input columns are {_short(list(given))}",
        detail={"field": spec.name},
    )


# ---------------------------------------------------------------------------------------------
# Column signatures
# ---------------------------------------------------------------------------------------------


def _column_positions(columns: Sequence[Any], sig: Signature) -> list[int | None] | None:
    """Position of each signature column within ``columns``; ``None`` when already in order."""
    if tuple(columns) == sig.column_names:
        return None
    index: dict[str, int] = {}
    for place, name in enumerate(columns):
        if not isinstance(name, str):
            raise ValidationError(
                f"column names must be strings, got {_json_type(name)} {_short(name)}",
                detail={"field": "columns"},
            )
        if name in index:
            raise ValidationError(f"column '{name}' appears twice", detail={"field": name})
        index[name] = place
    positions: list[int | None] = []
    for spec in sig.inputs:
        position = index.get(spec.name)
        if position is None and spec.is_required:
            raise _missing_column(spec, sig.column_names)
        positions.append(position)
    return positions


def _has_bool(rows: list[Any]) -> bool:
    return any(value is True or value is False for row in rows for value in row)


def _numeric_matrix(
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
                f"row {row_index} must be a list of {width} values, got {_json_type(row)}",
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


def _columns_from_rows(
    rows: Any,
    sig: Signature,
    columns: Sequence[Any] | None,
    where: str,
    may_have_bools: bool = True,
) -> npt.NDArray[Any]:
    if not isinstance(rows, list):
        raise ValidationError(
            f"'{where}' must be a list of rows, got {_json_type(rows)}", detail={"field": where}
        )
    if not rows:
        raise ValidationError(f"'{where}' has no rows", detail={"field": where})
    positions = None if columns is None else _column_positions(columns, sig)
    width = len(sig.inputs) if columns is None else len(columns)
    if sig.is_all_numeric:
        matrix = _numeric_matrix(rows, sig, positions, width, may_have_bools)
        if matrix is not None:
            return matrix
    return _checked_matrix(rows, sig, positions, width)


def _columns_from_records(records: Any, sig: Signature, where: str) -> npt.NDArray[Any]:
    if not isinstance(records, list) or not records:
        raise ValidationError(
            f"'{where}' must be a non-empty list of objects, one per row", detail={"field": where}
        )
    rows: list[list[Any]] = []
    for row_index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValidationError(
                f"row {row_index} of '{where}' must be an object, got {_json_type(record)}",
                detail={"field": where, "row": row_index},
            )
        row: list[Any] = []
        for spec in sig.inputs:
            if spec.name not in record and spec.is_required:
                raise _missing_column(spec, sig.column_names)
            row.append(record.get(spec.name))
        rows.append(row)
    return _columns_from_rows(rows, sig, None, where)


def _columns_from_mapping(mapping: Mapping[str, Any], sig: Signature, where: str) -> Any:
    lengths: set[int] = set()
    columns: list[list[Any]] = []
    for spec in sig.inputs:
        if spec.name not in mapping:
            if spec.is_required:
                raise _missing_column(spec, sig.column_names)
            columns.append([])
            continue
        values = mapping[spec.name]
        if not isinstance(values, list):
            values = [values]
        lengths.add(len(values))
        columns.append(values)
    if len(lengths) != 1:
        raise ValidationError(
            f"the columns of '{where}' have different lengths: {sorted(lengths)}",
            detail={"field": where},
        )
    n_rows = lengths.pop()
    rows = [[col[i] if col else None for col in columns] for i in range(n_rows)]
    return _columns_from_rows(rows, sig, None, where)


def _decode_columns(fmt: str, payload: Any, sig: Signature, may_have_bools: bool) -> npt.NDArray[Any]:
    if fmt == "dataframe_split":
        if not isinstance(payload, dict):
            raise ValidationError(
                "'dataframe_split' must be an object with 'columns' and 'data'",
                detail={"field": fmt},
            )
        if "data" not in payload:
            raise ValidationError("'dataframe_split' has no 'data'", detail={"field": "data"})
        columns = payload.get("columns")
        if columns is not None and not isinstance(columns, list):
            raise ValidationError("'columns' must be a list of names", detail={"field": "columns"})
        return _columns_from_rows(payload["data"], sig, columns, "data", may_have_bools)
    if fmt == "dataframe_records":
        return _columns_from_records(payload, sig, fmt)
    # instances / inputs: records, rows in signature order, or a mapping of columns
    if isinstance(payload, dict):
        return _columns_from_mapping(payload, sig, fmt)  # type: ignore[no-any-return]
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return _columns_from_records(payload, sig, fmt)
    return _columns_from_rows(payload, sig, None, fmt, may_have_bools)


# ---------------------------------------------------------------------------------------------
# Tensor and text signatures
# ---------------------------------------------------------------------------------------------


def _tensor_from_nested(value: Any, spec: FieldSpec, where: str) -> npt.NDArray[Any]:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise ValidationError(
            f"'{where}' is not a rectangular array (rows of different lengths?)",
            hint=f"send an array of shape {[-1, *spec.shape]}",
            detail={"field": spec.name},
        ) from None
    return _check_tensor(array, spec, where)


def _check_tensor(array: npt.NDArray[Any], spec: FieldSpec, where: str) -> npt.NDArray[Any]:
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
            f"({_json_type(array.flat[0].item() if array.size else None)})",
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


def _texts(values: Any, where: str) -> npt.NDArray[Any]:
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
                f"row {index} of '{where}' must be a string, got {_json_type(value)}",
                detail={"field": where, "row": index},
            )
        out[index] = value
    return out


def _decode_any(fmt: str, payload: Any) -> ModelInput:
    import pandas as pd

    try:
        if fmt == "dataframe_split":
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise ValidationError(
                    "'dataframe_split' must be an object with a 'data' list",
                    detail={"field": fmt},
                )
            frame = pd.DataFrame(payload["data"], columns=payload.get("columns"))
        elif fmt == "dataframe_records" or (
            isinstance(payload, list) and payload and all(isinstance(r, dict) for r in payload)
        ):
            if not isinstance(payload, list):
                raise ValidationError(f"'{fmt}' must be a list of objects", detail={"field": fmt})
            frame = pd.DataFrame.from_records(payload)
        elif isinstance(payload, dict):
            frame = pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in payload.items()})
        else:
            array = np.asarray(payload)
            if array.ndim == 0 or array.shape[0] == 0:
                raise ValidationError(f"'{fmt}' must be a non-empty array", detail={"field": fmt})
            return array
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"'{fmt}' is not a table: {exc}", detail={"field": fmt}) from None
    if len(frame) == 0:
        raise ValidationError(f"'{fmt}' has no rows", detail={"field": fmt})
    return frame


def _decode_payload(fmt: str, payload: Any, sig: Signature, may_have_bools: bool) -> ModelInput:
    if sig.kind == "columns":
        return _decode_columns(fmt, payload, sig, may_have_bools)
    if sig.kind == "text":
        if fmt == "dataframe_split" and isinstance(payload, dict):
            payload = payload.get("data")
        return _texts(payload, fmt)
    if sig.kind == "tensor":
        if fmt == "dataframe_split" and isinstance(payload, dict):
            payload = payload.get("data")
        elif fmt == "dataframe_records" and isinstance(payload, list):
            payload = [list(r.values()) if isinstance(r, dict) else r for r in payload]
        elif isinstance(payload, dict) and len(payload) == 1:
            payload = next(iter(payload.values()))
        return _tensor_from_nested(payload, sig.tensor, fmt)
    return _decode_any(fmt, payload)


def _rows(inputs: ModelInput) -> int:
    return int(inputs.shape[0])


def decode_invocations(body: bytes, media_type: str, sig: Signature) -> InferenceRequest:
    """Decode an MLflow ``/invocations`` body (``application/json`` or ``text/csv``)."""
    if media_type == "text/csv":
        inputs = _decode_csv(body, sig)
        return InferenceRequest(inputs, _rows(inputs))
    document = parse_json(body)
    if not isinstance(document, dict):
        raise UserError(
            f"the body must be a JSON object with one of {list(INVOCATION_FORMATS)}, "
            f"got {_json_type(document)}",
            hint='e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}',
        )
    formats = [key for key in INVOCATION_FORMATS if key in document]
    if len(formats) != 1:
        raise UserError(
            f"the body must have exactly one of {list(INVOCATION_FORMATS)}, "
            f"got keys {_short(list(document))}",
            hint='e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}',
        )
    may_have_bools = b"true" in body or b"false" in body
    inputs = _decode_payload(formats[0], document[formats[0]], sig, may_have_bools)
    return InferenceRequest(inputs, _rows(inputs))


def _parse_csv_value(text: str, spec: FieldSpec, row: int) -> Any:
    kind = np.dtype(spec.dtype).kind
    if text == "" and not spec.is_required:
        return None
    try:
        if kind == "f":
            value: Any = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        if kind in "iu":
            return int(text)
        if kind == "b":
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return lowered in ("true", "1")
    except ValueError:
        raise ValidationError(
            f"column '{spec.name}' expects {spec.type_name} but row {row} has {_short(text)}",
            detail={"field": spec.name, "row": row, "expected": spec.type_name},
        ) from None
    return text


def _decode_csv(body: bytes, sig: Signature) -> ModelInput:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("the CSV body is not UTF-8 text") from None
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise UserError(f"malformed CSV: {exc}") from None
    table = [row for row in table if row]
    if len(table) < 2:
        raise ValidationError(
            "the CSV body needs a header row and at least one data row",
            detail={"field": "csv"},
        )
    header, data = table[0], table[1:]
    if sig.kind == "columns":
        positions = _column_positions(header, sig)
        rows: list[list[Any]] = []
        for row_index, row in enumerate(data):
            if len(row) != len(header):
                raise ValidationError(
                    f"CSV row {row_index} has {len(row)} values, expected {len(header)}",
                    detail={"field": "csv", "row": row_index},
                )
            rows.append(
                [
                    None
                    if (p := (c if positions is None else positions[c])) is None
                    else _parse_csv_value(row[p], spec, row_index)
                    for c, spec in enumerate(sig.inputs)
                ]
            )
        return _columns_from_rows(rows, sig, None, "csv")
    if sig.kind == "text":
        return _texts([row[0] for row in data], "csv")
    import pandas as pd

    try:
        return pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValidationError(f"the CSV body is not a table: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Open Inference Protocol (V2)
# ---------------------------------------------------------------------------------------------

_V2_KINDS = {
    "BOOL": "b",
    "UINT8": "iu",
    "UINT16": "iu",
    "UINT32": "iu",
    "UINT64": "iu",
    "INT8": "iu",
    "INT16": "iu",
    "INT32": "iu",
    "INT64": "iu",
    "FP16": "iuf",
    "FP32": "iuf",
    "FP64": "iuf",
    "BYTES": "U",
}


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The V2 datatype name of a numpy dtype (strings and objects are ``BYTES``)."""
    return {
        "b": "BOOL",
        "f": {2: "FP16", 4: "FP32"}.get(dtype.itemsize, "FP64"),
        "i": f"INT{dtype.itemsize * 8}",
        "u": f"UINT{dtype.itemsize * 8}",
    }.get(dtype.kind, "BYTES")


def _v2_tensor(
    item: Any, index: int, binary: memoryview | None, offset: int
) -> tuple[str, npt.NDArray[Any], int]:
    """One input tensor, from its JSON ``data`` or from ``binary`` at ``offset``; returns the name,
    the array and how many binary bytes it took."""
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object", detail={"field": where})
    name = item.get("name")
    if not isinstance(name, str):
        raise ValidationError(f"{where}.name must be a string", detail={"field": where})
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ValidationError(f"input '{name}' needs 'shape', a list of sizes >= 0", detail={"field": name})
    datatype = item.get("datatype")
    parameters = item.get("parameters")
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if binary_size is not None:
        return name, _v2_binary_tensor(name, shape, datatype, binary_size, item, binary, offset), binary_size
    if datatype not in _V2_KINDS:
        raise ValidationError(
            f"input '{name}' has datatype {_short(datatype)}; expected one of {list(_V2_KINDS)}",
            detail={"field": name},
        )
    data = item.get("data")
    if not isinstance(data, list):
        raise ValidationError(
            f"input '{name}' needs 'data', a list (or parameters.binary_data_size with binary data)",
            detail={"field": name},
        )
    try:
        array = np.asarray(data)
    except (ValueError, TypeError):
        raise ValidationError(
            f"input '{name}' data is not a rectangular array", detail={"field": name}
        ) from None
    if array.size != math.prod(shape):
        raise ValidationError(
            f"input '{name}' has {array.size} values but shape {shape} needs {math.prod(shape)}",
            detail={"field": name},
        )
    kinds = _V2_KINDS[datatype]
    if array.size and array.dtype.kind not in kinds:
        raise ValidationError(
            f"input '{name}' is {datatype} but its data holds {_json_type(array.ravel()[0].item())} values",
            detail={"field": name, "datatype": datatype},
        )
    if array.size and datatype != "BOOL" and any(v is True or v is False for v in _flat(data)):
        raise ValidationError(
            f"input '{name}' is {datatype} but its data holds booleans", detail={"field": name}
        )
    return name, array.reshape(shape), 0


def _v2_binary_tensor(
    name: str,
    shape: list[int],
    datatype: Any,
    binary_size: Any,
    item: dict[str, Any],
    binary: memoryview | None,
    offset: int,
) -> npt.NDArray[Any]:
    """A tensor sent with the binary data extension; its framing errors are 400s (the rest of the
    body cannot be read without it)."""
    if binary is None:
        raise UserError(
            f"input '{name}' has parameters.binary_data_size but the request has no "
            "Inference-Header-Content-Length header",
            hint="send the header with the byte length of the JSON part, or send the values in 'data'",
            detail={"field": name},
        )
    if not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size < 0:
        raise UserError(
            f"input '{name}' has binary_data_size {_short(binary_size)}; expected a byte count",
            detail={"field": name},
        )
    if datatype not in _V2_KINDS:
        raise UserError(
            f"input '{name}' has datatype {_short(datatype)}; binary data needs one of {list(_V2_KINDS)}",
            detail={"field": name},
        )
    if "data" in item:
        raise UserError(
            f"input '{name}' has both 'data' and parameters.binary_data_size",
            hint="send its values one way: in 'data', or as binary data after the JSON",
            detail={"field": name},
        )
    if offset + binary_size > len(binary):
        raise UserError(
            f"input '{name}' needs {binary_size} bytes of binary data from byte {offset}, "
            f"but only {len(binary) - offset} follow the JSON header",
            hint="each binary_data_size must count its input's bytes; they follow the JSON in order",
            detail={"field": name},
        )
    return array_from_bytes(datatype, shape, binary[offset : offset + binary_size], name)


def _flat(data: list[Any]) -> list[Any]:
    if data and isinstance(data[0], list):
        return [v for part in data for v in _flat(part)]
    return data


def _v2_columns(tensors: dict[str, npt.NDArray[Any]], sig: Signature) -> npt.NDArray[Any]:
    if len(tensors) == 1:
        ((name, array),) = tensors.items()
        if name not in sig.column_names or len(sig.inputs) == 1:
            if array.ndim == 1 and len(sig.inputs) > 1:
                array = array[np.newaxis, :]
            if array.ndim == 1:
                array = array[:, np.newaxis]
            if array.ndim != 2 or array.shape[1] != len(sig.inputs):
                raise ValidationError(
                    f"input '{name}' has shape {list(array.shape)}, "
                    f"expected [-1, {len(sig.inputs)}] (one column per signature input)",
                    detail={"field": name},
                )
            # a numeric matrix (binary data, or JSON numbers) skips the detour through lists
            if (
                sig.is_all_numeric
                and array.shape[0]
                and array.dtype.kind in "iuf"
                and (array.dtype.kind != "f" or np.isfinite(array).all())
            ):
                matrix = _numeric_matrix(array, sig, None, len(sig.inputs), may_have_bools=False)
                if matrix is not None:
                    return matrix
            return _columns_from_rows(array.tolist(), sig, None, name)
    columns: list[list[Any]] = []
    n_rows: int | None = None
    for spec in sig.inputs:
        array = tensors.get(spec.name)  # type: ignore[assignment]
        if array is None:
            if spec.is_required:
                raise _missing_column(spec, sig.column_names)
            columns.append([])
            continue
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValidationError(
                f"input '{spec.name}' has shape {list(array.shape)}, expected [-1] or [-1, 1]",
                detail={"field": spec.name},
            )
        if n_rows is not None and array.shape[0] != n_rows:
            raise ValidationError(
                f"input '{spec.name}' has {array.shape[0]} rows, the others {n_rows}",
                detail={"field": spec.name},
            )
        n_rows = array.shape[0]
        columns.append(array.tolist())
    count = n_rows or 0
    rows = [[col[i] if col else None for col in columns] for i in range(count)]
    return _columns_from_rows(rows, sig, None, "inputs")


def _flag(parameters: Any, key: str, where: str) -> bool | None:
    value = parameters.get(key) if isinstance(parameters, dict) else None
    if value is not None and not isinstance(value, bool):
        raise ValidationError(f"{where}.parameters.{key} must be true or false", detail={"field": key})
    return value


def decode_v2(body: bytes, sig: Signature, header_length: int | None = None) -> InferenceRequest:
    """Decode an Open Inference Protocol ``infer`` request body.

    ``header_length`` (the ``Inference-Header-Content-Length`` header) says the body is a JSON
    header of that many bytes followed by binary tensor data (see :mod:`binary_data`).
    """
    binary: memoryview | None = None
    if header_length is not None:
        body, binary = split_body(body, header_length)
    try:
        document = parse_json(body)
    except UserError:
        if binary is None and b'"binary_data_size"' in body:
            raise UserError(
                "the body holds binary tensor data (binary_data_size) but the request has no "
                "Inference-Header-Content-Length header",
                hint="send the header with the byte length of the JSON part of the body",
            ) from None
        raise
    if not isinstance(document, dict):
        raise UserError(
            f"the body must be a JSON object with 'inputs', got {_json_type(document)}",
            hint='e.g. {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}',
        )
    items = document.get("inputs")
    if not isinstance(items, list) or not items:
        raise ValidationError("'inputs' must be a non-empty list of tensors", detail={"field": "inputs"})
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ValidationError("'id' must be a string", detail={"field": "id"})
    output_names: tuple[str, ...] | None = None
    requested = document.get("outputs")
    if requested is not None:
        if not isinstance(requested, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
        ):
            raise ValidationError(
                "'outputs' must be a list of objects with a 'name'", detail={"field": "outputs"}
            )
        output_names = tuple(o["name"] for o in requested)
        output_binary = {
            o["name"]: flag
            for o in requested
            if (flag := _flag(o.get("parameters"), "binary_data", f"output '{o['name']}'")) is not None
        }
    else:
        output_binary = {}
    is_binary_output = bool(_flag(document.get("parameters"), "binary_data_output", "the request"))
    tensors: dict[str, npt.NDArray[Any]] = {}
    offset = 0
    for index, item in enumerate(items):
        name, array, used = _v2_tensor(item, index, binary, offset)
        offset += used
        if name in tensors:
            raise ValidationError(f"input '{name}' appears twice", detail={"field": name})
        tensors[name] = array
    if binary is not None and offset != len(binary):
        raise UserError(
            f"the body has {len(binary) - offset} bytes of binary data after the last input's",
            hint="the binary_data_size of the inputs must add up to the bytes after the JSON header",
        )
    inputs: ModelInput
    if sig.kind == "columns":
        inputs = _v2_columns(tensors, sig)
    elif sig.kind in ("tensor", "text"):
        if len(tensors) != 1:
            raise ValidationError(
                f"the model takes one input tensor, got {len(tensors)}: {list(tensors)}",
                detail={"field": "inputs"},
            )
        ((name, array),) = tensors.items()
        if sig.kind == "text":
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != 1:
                raise ValidationError(
                    f"input '{name}' must have shape [-1] (one string per row)",
                    detail={"field": name},
                )
            inputs = _texts(array.tolist(), name)
        else:
            inputs = _check_tensor(array, sig.tensor, name)
    elif len(tensors) == 1:
        inputs = next(iter(tensors.values()))
    else:
        import pandas as pd

        try:
            inputs = pd.DataFrame({k: list(v.reshape(v.shape[0], -1)) for k, v in tensors.items()})
        except ValueError as exc:
            raise ValidationError(f"inputs do not form a table: {exc}") from None
    if _rows(inputs) == 0:
        raise ValidationError("the request has no rows", detail={"field": "inputs"})
    return InferenceRequest(inputs, _rows(inputs), request_id, output_names, is_binary_output, output_binary)


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------

_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _jsonable(array: npt.NDArray[Any]) -> Any:
    if array.dtype.kind in "biuf" and array.flags.c_contiguous:
        return array
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return array.tolist()


def encode_invocations(outputs: Outputs, primary: str | None, *, as_records: bool) -> bytes:
    """MLflow's response: ``{"predictions": [...]}`` (records when the model returned a table)."""
    if primary is not None:
        return orjson.dumps({"predictions": _jsonable(outputs[primary])}, option=_ORJSON_OPTIONS)
    if as_records:
        names = list(outputs)
        columns = [outputs[name].tolist() for name in names]
        records = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        return orjson.dumps({"predictions": records}, option=_ORJSON_OPTIONS)
    return orjson.dumps(
        {"predictions": {name: _jsonable(array) for name, array in outputs.items()}},
        option=_ORJSON_OPTIONS,
    )


def _v2_body(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Outputs,
    output_names: tuple[str, ...] | None,
) -> tuple[dict[str, Any], list[str]]:
    names = list(outputs) if output_names is None else list(output_names)
    for name in names:
        if name not in outputs:
            raise ValidationError(
                f"the model has no output '{name}'; it has {list(outputs)}",
                detail={"field": "outputs"},
            )
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        body["id"] = request_id
    return body, names


def encode_v2(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Outputs,
    output_names: tuple[str, ...] | None,
) -> bytes:
    """An Open Inference Protocol ``infer`` response; ``output_names`` filters the outputs."""
    body, names = _v2_body(model_name, model_version, request_id, outputs, output_names)
    body["outputs"] = [
        {
            "name": name,
            "datatype": v2_datatype(outputs[name].dtype),
            "shape": list(outputs[name].shape),
            "data": _jsonable(outputs[name].reshape(-1)),
        }
        for name in names
    ]
    return orjson.dumps(body, option=_ORJSON_OPTIONS)


def encode_v2_binary(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Outputs,
    output_names: tuple[str, ...] | None,
    binary_names: frozenset[str],
) -> tuple[bytes, int]:
    """A response with the binary data extension: a JSON header, then the data of the outputs in
    ``binary_names`` in order; returns the body and the header's length (the value of the
    ``Inference-Header-Content-Length`` response header)."""
    body, names = _v2_body(model_name, model_version, request_id, outputs, output_names)
    items: list[dict[str, Any]] = []
    buffers: list[bytes] = []
    for name in names:
        array = outputs[name]
        item: dict[str, Any] = {
            "name": name,
            "datatype": v2_datatype(array.dtype),
            "shape": list(array.shape),
        }
        if name in binary_names:
            data = array_to_bytes(array)
            item["parameters"] = {"binary_data_size": len(data)}
            buffers.append(data)
        else:
            item["data"] = _jsonable(array.reshape(-1))
        items.append(item)
    body["outputs"] = items
    header = orjson.dumps(body, option=_ORJSON_OPTIONS)
    return b"".join([header, *buffers]), len(header)
