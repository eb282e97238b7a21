"""The binary tensor data extension: framing of requests and responses, and its 400s."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import UserError
from lockgate.serving.binary_data import (
    BINARY_DATATYPES,
    array_from_bytes,
    array_to_bytes,
    parse_header_length,
)
from lockgate.serving.protocol import decode_v2, encode_v2_binary
from lockgate.serving.signature import FieldSpec, Signature

COLUMNS = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64")))
INTS = Signature("columns", (FieldSpec("a", "int64"), FieldSpec("b", "int64")))
TEXT = Signature("text", (FieldSpec("text", "object"),))


def _frame(inputs: list[dict[str, Any]], buffers: list[bytes], **document: Any) -> tuple[bytes, int]:
    """A binary request as tritonclient builds it: the JSON header, then the buffers."""
    header = orjson.dumps({"inputs": inputs, **document})
    return header + b"".join(buffers), len(header)


def _binary_input(name: str, array: np.ndarray, datatype: str) -> tuple[dict[str, Any], bytes]:
    data = array_to_bytes(array)
    item = {"name": name, "shape": list(array.shape), "datatype": datatype}
    return {**item, "parameters": {"binary_data_size": len(data)}}, data


def _status(exc: pytest.ExceptionInfo[UserError]) -> int:
    return exc.value.http_status


def test_a_binary_matrix_decodes_like_its_json() -> None:
    matrix = np.array([[1.5, 2.0], [3.0, -4.25]], dtype=np.float32)
    item, data = _binary_input("x", matrix, "FP32")
    body, length = _frame([item], [data])
    request = decode_v2(body, COLUMNS, length)
    assert request.inputs.dtype == np.float64
    np.testing.assert_array_equal(request.inputs, matrix)
    as_json = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": matrix.ravel().tolist()}]}
    )
    np.testing.assert_array_equal(decode_v2(as_json, COLUMNS).inputs, request.inputs)


def test_binary_and_json_inputs_mix_in_one_request() -> None:
    a_item, a_data = _binary_input("a", np.array([1.0, 2.0]), "FP64")
    b_json = {"name": "b", "shape": [2], "datatype": "INT64", "data": [3, 4]}
    body, length = _frame([b_json, a_item], [a_data])
    np.testing.assert_array_equal(decode_v2(body, COLUMNS, length).inputs, [[1, 3], [2, 4]])


def test_strings_travel_length_prefixed() -> None:
    texts = np.array(["héllo", "", "a longer sentence"], dtype=object)
    item, data = _binary_input("text", texts, "BYTES")
    assert data[:4] == struct.pack("<I", len("héllo".encode()))
    body, length = _frame([item], [data])
    assert list(decode_v2(body, TEXT, length).inputs) == list(texts)


def test_integer_columns_refuse_fractions_in_binary_too() -> None:
    item, data = _binary_input("x", np.array([[1.5, 2.0]]), "FP64")
    body, length = _frame([item], [data])
    with pytest.raises(UserError) as exc:
        decode_v2(body, INTS, length)
    assert _status(exc) == 422


def test_output_choices_request_level_and_per_output() -> None:
    body, length = _frame(
        [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}],
        [],
        parameters={"binary_data_output": True},
        outputs=[{"name": "predictions"}, {"name": "probabilities", "parameters": {"binary_data": False}}],
    )
    request = decode_v2(body, COLUMNS, length)
    assert request.binary_outputs(["predictions", "probabilities"]) == {"predictions"}
    plain = decode_v2(
        orjson.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}),
        COLUMNS,
    )
    assert plain.binary_outputs(["predictions"]) == frozenset()


def test_a_binary_response_reads_back() -> None:
    outputs = {
        "predictions": np.array([0, 1], dtype=np.int64),
        "probabilities": np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32),
        "labels": np.array(["no", "yes"], dtype=object),
    }
    body, length = encode_v2_binary("m", "3", "id-1", outputs, None, frozenset({"probabilities", "labels"}))
    header = orjson.loads(body[:length])
    assert header["id"] == "id-1"
    by_name = {o["name"]: o for o in header["outputs"]}
    assert by_name["predictions"]["data"] == [0, 1]
    assert "data" not in by_name["probabilities"]
    size = by_name["probabilities"]["parameters"]["binary_data_size"]
    assert size == 16
    probabilities = np.frombuffer(body[length : length + size], dtype="<f4").reshape(2, 2)
    np.testing.assert_array_equal(probabilities, outputs["probabilities"])
    labels = body[length + size :]
    assert labels == struct.pack("<I", 2) + b"no" + struct.pack("<I", 3) + b"yes"
    assert by_name["labels"]["datatype"] == "BYTES"


def _matrix_body(extra: bytes = b"", size: int | None = None, datatype: str = "FP64") -> tuple[bytes, int]:
    data = np.array([[1.0, 2.0]]).tobytes()
    item = {
        "name": "x",
        "shape": [1, 2],
        "datatype": datatype,
        "parameters": {"binary_data_size": len(data) if size is None else size},
    }
    return _frame([item], [data + extra])


@pytest.mark.parametrize(
    ("body_and_length", "message"),
    [
        (_matrix_body(size=8), "has 8 bytes of binary data, but shape"),
        (_matrix_body(size=24), "needs 24 bytes"),
        (_matrix_body(extra=b"\0" * 8), "8 bytes of binary data after the last input"),
        (_matrix_body(datatype="FP128"), "datatype 'FP128'"),
        (_matrix_body(datatype="FP32"), "needs 8"),
        (_matrix_body(size=-1), "binary_data_size -1"),
        ((_matrix_body()[0], 10_000), "the body has"),
        ((_matrix_body()[0], 0), "at least 1"),
    ],
)
def test_framing_errors_are_400s_that_name_the_input(
    body_and_length: tuple[bytes, int], message: str
) -> None:
    body, length = body_and_length
    with pytest.raises(UserError, match=message) as exc:
        decode_v2(body, COLUMNS, length)
    assert _status(exc) == 400


def test_binary_sizes_without_the_header_length_are_a_400() -> None:
    body, _ = _matrix_body()
    with pytest.raises(UserError, match="no Inference-Header-Content-Length") as exc:
        decode_v2(body[: body.index(b"}]}") + 3], COLUMNS, None)
    assert _status(exc) == 400


def test_bad_strings_and_bools_are_400s() -> None:
    with pytest.raises(UserError, match="ends inside"):
        array_from_bytes("BYTES", [1], memoryview(b"\1\0"), "t")
    with pytest.raises(UserError, match="past the end"):
        array_from_bytes("BYTES", [1], memoryview(b"\x09\0\0\0ab"), "t")
    with pytest.raises(UserError, match="holds 2 BYTES elements"):
        array_from_bytes("BYTES", [1], memoryview(b"\1\0\0\0a\1\0\0\0b"), "t")
    with pytest.raises(UserError, match="not UTF-8"):
        array_from_bytes("BYTES", [1], memoryview(b"\1\0\0\0\xff"), "t")
    with pytest.raises(UserError, match="other than 0 and 1"):
        array_from_bytes("BOOL", [2], memoryview(b"\1\7"), "t")
    with pytest.raises(UserError, match="not a byte count"):
        parse_header_length(b"12abc")


@settings(max_examples=100, deadline=None)
@given(
    datatype=st.sampled_from([d for d in BINARY_DATATYPES if d not in ("BYTES", "FP16")]),
    values=st.lists(st.integers(0, 1), min_size=1, max_size=12),
)
def test_numeric_tensors_round_trip(datatype: str, values: list[int]) -> None:
    array = np.array(values, dtype=BINARY_DATATYPES[datatype])
    raw = memoryview(array_to_bytes(array))
    np.testing.assert_array_equal(array_from_bytes(datatype, [len(values)], raw, "x"), array)
