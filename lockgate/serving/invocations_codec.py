"""MLflow's scoring protocol, ``POST /invocations`` (pure functions).

A body holds exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs`` (JSON), or is a CSV table with a header row; the answer is ``{"predictions": ...}``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from lockgate.errors import UserError, ValidationError
from lockgate.serving.payload import (
    ORJSON_OPTIONS,
    InferenceRequest,
    ModelInput,
    Outputs,
    check_tensor,
    column_positions,
    columns_from_rows,
    json_type,
    jsonable,
    missing_column,
    parse_json,
    row_count,
    short_repr,
    texts,
)
from lockgate.serving.signature import FieldSpec, Signature

__all__ = ["INVOCATION_FORMATS", "decode_invocations", "encode_invocations"]

INVOCATION_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _columns_from_records(records: Any, sig: Signature, where: str) -> npt.NDArray[Any]:
    if not isinstance(records, list) or not records:
        raise ValidationError(
            f"'{where}' must be a non-empty list of objects, one per row", detail={"field": where}
        )
    rows: list[list[Any]] = []
    for row_index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValidationError(
                f"row {row_index} of '{where}' must be an object, got {json_type(record)}",
                detail={"field": where, "row": row_index},
            )
        row: list[Any] = []
        for spec in sig.inputs:
            if spec.name not in record and spec.is_required:
                raise missing_column(spec, sig.column_names)
            row.append(record.get(spec.name))
        rows.append(row)
    return columns_from_rows(rows, sig, None, where)


def _columns_from_mapping(mapping: Mapping[str, Any], sig: Signature, where: str) -> Any:
    lengths: set[int] = set()
    columns: list[list[Any]] = []
    for spec in sig.inputs:
        if spec.name not in mapping:
            if spec.is_required:
                raise missing_column(spec, sig.column_names)
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
    return columns_from_rows(rows, sig, None, where)


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
        return columns_from_rows(payload["data"], sig, columns, "data", may_have_bools)
    if fmt == "dataframe_records":
        return _columns_from_records(payload, sig, fmt)
    # instances / inputs: records, rows in signature order, or a mapping of columns
    if isinstance(payload, dict):
        return _columns_from_mapping(payload, sig, fmt)  # type: ignore[no-any-return]
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return _columns_from_records(payload, sig, fmt)
    return columns_from_rows(payload, sig, None, fmt, may_have_bools)


def _tensor_from_nested(value: Any, spec: FieldSpec, where: str) -> npt.NDArray[Any]:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise ValidationError(
            f"'{where}' is not a rectangular array (rows of different lengths?)",
            hint=f"send an array of shape {[-1, *spec.shape]}",
            detail={"field": spec.name},
        ) from None
    return check_tensor(array, spec, where)


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
        return texts(payload, fmt)
    if sig.kind == "tensor":
        if fmt == "dataframe_split" and isinstance(payload, dict):
            payload = payload.get("data")
        elif fmt == "dataframe_records" and isinstance(payload, list):
            payload = [list(r.values()) if isinstance(r, dict) else r for r in payload]
        elif isinstance(payload, dict) and len(payload) == 1:
            payload = next(iter(payload.values()))
        return _tensor_from_nested(payload, sig.tensor, fmt)
    return _decode_any(fmt, payload)


def decode_invocations(body: bytes, media_type: str, sig: Signature) -> InferenceRequest:
    """Decode an MLflow ``/invocations`` body (``application/json`` or ``text/csv``)."""
    if media_type == "text/csv":
        inputs = _decode_csv(body, sig)
        return InferenceRequest(inputs, row_count(inputs))
    document = parse_json(body)
    if not isinstance(document, dict):
        raise UserError(
            f"the body must be a JSON object with one of {list(INVOCATION_FORMATS)}, "
            f"got {json_type(document)}",
            hint='e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}',
        )
    formats = [key for key in INVOCATION_FORMATS if key in document]
    if len(formats) != 1:
        raise UserError(
            f"the body must have exactly one of {list(INVOCATION_FORMATS)}, "
            f"got keys {short_repr(list(document))}",
            hint='e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}',
        )
    may_have_bools = b"true" in body or b"false" in body
    inputs = _decode_payload(formats[0], document[formats[0]], sig, may_have_bools)
    return InferenceRequest(inputs, row_count(inputs))


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
            f"column '{spec.name}' expects {spec.type_name} but row {row} has {short_repr(text)}",
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
        positions = column_positions(header, sig)
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
        return columns_from_rows(rows, sig, None, "csv")
    if sig.kind == "text":
        return texts([row[0] for row in data], "csv")
    import pandas as pd

    try:
        return pd.read_csv(io.StringIO(text))
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValidationError(f"the CSV body is not a table: {exc}") from None


def encode_invocations(outputs: Outputs, primary: str | None, *, as_records: bool) -> bytes:
    """MLflow's response: ``{"predictions": [...]}`` (records when the model returned a table)."""
    if primary is not None:
        return orjson.dumps({"predictions": jsonable(outputs[primary])}, option=ORJSON_OPTIONS)
    if as_records:
        names = list(outputs)
        columns = [outputs[name].tolist() for name in names]
        records = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        return orjson.dumps({"predictions": records}, option=ORJSON_OPTIONS)
    return orjson.dumps(
        {"predictions": {name: jsonable(array) for name, array in outputs.items()}},
        option=ORJSON_OPTIONS,
    )
