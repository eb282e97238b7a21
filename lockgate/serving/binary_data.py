"""The binary tensor data extension of the Open Inference Protocol (pure functions).

A request may carry tensors as raw bytes after its JSON header: the ``Inference-Header-Content-Length``
HTTP header says how many bytes of the body are JSON, and each input whose ``parameters`` hold
``binary_data_size`` takes that many of the bytes that follow, in the order of ``inputs``. Numbers are
little-endian, row-major, ``BOOL`` one byte each; a ``BYTES`` element is a 4-byte little-endian length
and then its bytes. Responses use the same framing for the outputs a client asks for in binary
(``parameters.binary_data_output`` on the request, or ``binary_data`` on one requested output).

This is what ``tritonclient.http`` sends by default (``InferInput.set_data_from_numpy``); Triton and
KServe accept it, so a server that speaks V2 must. A body that does not add up is a 400 naming the
input and the byte counts: without the framing, nothing after the first bad size can be read.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError

__all__ = [
    "BINARY_DATATYPES",
    "array_from_bytes",
    "array_to_bytes",
    "parse_header_length",
    "split_body",
]

# V2 datatype -> the little-endian numpy dtype of its elements (BYTES is length-prefixed instead)
BINARY_DATATYPES: dict[str, str] = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": "",
}

_LENGTH = struct.Struct("<I")


def parse_header_length(value: bytes) -> int:
    """The ``Inference-Header-Content-Length`` header as a byte count (a 400 when it is not one)."""
    text = value.strip()
    if not text.isdigit():
        raise UserError(
            f"the Inference-Header-Content-Length header is {value[:40].decode('latin-1')!r}, "
            "not a byte count",
            hint="send the length in bytes of the JSON header that starts the body",
        )
    return int(text)


def split_body(body: bytes, header_length: int) -> tuple[bytes, memoryview]:
    """The JSON header and the binary data after it."""
    if header_length == 0 or header_length > len(body):
        raise UserError(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes",
            hint="the header counts the bytes of the JSON part at the start of the body (at least 1)",
        )
    return body[:header_length], memoryview(body)[header_length:]


def array_from_bytes(datatype: str, shape: list[int], raw: memoryview, name: str) -> npt.NDArray[Any]:
    """One input tensor from its binary data; the byte count must match the shape exactly."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _strings_from_bytes(raw, count, name).reshape(shape)
    dtype = np.dtype(BINARY_DATATYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise UserError(
            f"input '{name}' has {len(raw)} bytes of binary data, but shape {shape} of {datatype} "
            f"needs {count * dtype.itemsize} ({count} x {dtype.itemsize})",
            hint="set binary_data_size to the byte length of the tensor's data",
            detail={"field": name},
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and array.size and (array.view(np.uint8) > 1).any():
        raise UserError(f"input '{name}' is BOOL but holds bytes other than 0 and 1", detail={"field": name})
    return array.reshape(shape)


def _strings_from_bytes(raw: memoryview, count: int, name: str) -> npt.NDArray[Any]:
    values: list[str] = []
    offset = 0
    end = len(raw)
    while offset < end:
        if offset + 4 > end:
            raise UserError(
                f"input '{name}' (BYTES) ends inside an element's 4-byte length at byte {offset}",
                detail={"field": name},
            )
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > end:
            raise UserError(
                f"input '{name}' (BYTES) has an element of {size} bytes at byte {offset}, "
                f"past the end of its {end} bytes",
                detail={"field": name},
            )
        try:
            values.append(bytes(raw[offset : offset + size]).decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError(
                f"input '{name}' element {len(values)} is not UTF-8 text", detail={"field": name}
            ) from None
        offset += size
    if len(values) != count:
        raise UserError(
            f"input '{name}' holds {len(values)} BYTES elements, but its shape needs {count}",
            detail={"field": name},
        )
    return np.array(values, dtype=str) if values else np.empty(0, dtype=str)


def array_to_bytes(array: npt.NDArray[Any]) -> bytes:
    """One output tensor as binary data (row-major, little-endian; strings length-prefixed)."""
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts: list[bytes] = []
    for value in array.reshape(-1).tolist():
        encoded = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)
