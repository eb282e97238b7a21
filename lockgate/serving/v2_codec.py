"""The Open Inference Protocol (KServe V2), ``POST /v2/models/{name}/infer`` (pure functions).

A request lists named tensors (``name``, ``shape``, ``datatype``, ``data``), or carries them as
binary data after a JSON header (the framing is :mod:`~lockgate.serving.binary_data`); the answer
lists the outputs the same way, as JSON or, where the client asks, as binary data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from lockgate.errors import UserError, ValidationError
from lockgate.serving.binary_data import array_from_bytes, array_to_bytes, split_body
from lockgate.serving.payload import (
    ORJSON_OPTIONS,
    InferenceRequest,
    ModelInput,
    Outputs,
    check_tensor,
    columns_from_rows,
    json_type,
    jsonable,
    missing_column,
    numeric_matrix,
    parse_json,
    row_count,
    short_repr,
    texts,
)
from lockgate.serving.signature import Signature

__all__ = ["decode_v2", "encode_v2", "encode_v2_binary", "v2_datatype"]

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
            f"input '{name}' has datatype {short_repr(datatype)}; expected one of {list(_V2_KINDS)}",
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
            f"input '{name}' is {datatype} but its data holds {json_type(array.ravel()[0].item())} values",
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
            f"input '{name}' has binary_data_size {short_repr(binary_size)}; expected a byte count",
            detail={"field": name},
        )
    if datatype not in _V2_KINDS:
        raise UserError(
            f"input '{name}' has datatype {short_repr(datatype)}; binary data needs one of {list(_V2_KINDS)}",
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
                matrix = numeric_matrix(array, sig, None, len(sig.inputs), may_have_bools=False)
                if matrix is not None:
                    return matrix
            return columns_from_rows(array.tolist(), sig, None, name)
    columns: list[list[Any]] = []
    n_rows: int | None = None
    for spec in sig.inputs:
        array = tensors.get(spec.name)  # type: ignore[assignment]
        if array is None:
            if spec.is_required:
                raise missing_column(spec, sig.column_names)
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
    return columns_from_rows(rows, sig, None, "inputs")


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
            f"the body must be a JSON object with 'inputs', got {json_type(document)}",
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
            inputs = texts(array.tolist(), name)
        else:
            inputs = check_tensor(array, sig.tensor, name)
    elif len(tensors) == 1:
        inputs = next(iter(tensors.values()))
    else:
        import pandas as pd

        try:
            inputs = pd.DataFrame({k: list(v.reshape(v.shape[0], -1)) for k, v in tensors.items()})
        except ValueError as exc:
            raise ValidationError(f"inputs do not form a table: {exc}") from None
    if row_count(inputs) == 0:
        raise ValidationError("the request has no rows", detail={"field": "inputs"})
    return InferenceRequest(
        inputs, row_count(inputs), request_id, output_names, is_binary_output, output_binary
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
            "data": jsonable(outputs[name].reshape(-1)),
        }
        for name in names
    ]
    return orjson.dumps(body, option=ORJSON_OPTIONS)


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
            item["data"] = jsonable(array.reshape(-1))
        items.append(item)
    body["outputs"] = items
    header = orjson.dumps(body, option=ORJSON_OPTIONS)
    return b"".join([header, *buffers]), len(header)
