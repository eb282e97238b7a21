"""Request decoding against signatures: the pure core of the server."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import UserError, ValidationError
from lockgate.serving.protocol import (
    decode_invocations,
    decode_v2,
    encode_invocations,
    encode_v2,
)
from lockgate.serving.signature import FieldSpec, Signature

COLUMNS = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64")))
MIXED = Signature("columns", (FieldSpec("city", "object"), FieldSpec("n", "int64")))
TENSOR = Signature("tensor", (FieldSpec("x", "float32", (3,)),))
TEXT = Signature("text", (FieldSpec("text", "object"),))


def _json(doc: object) -> bytes:
    return orjson.dumps(doc)


def test_dataframe_split_in_signature_order() -> None:
    request = decode_invocations(
        _json({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, 4]]}}),
        "application/json",
        COLUMNS,
    )
    assert request.n_rows == 2
    assert request.inputs.dtype == np.float64
    np.testing.assert_array_equal(request.inputs, [[1.0, 2.5], [3.0, 4.0]])


def test_dataframe_split_reorders_and_drops_extra_columns() -> None:
    body = {"dataframe_split": {"columns": ["extra", "b", "a"], "data": [[9, 2, 1]]}}
    request = decode_invocations(_json(body), "application/json", COLUMNS)
    np.testing.assert_array_equal(request.inputs, [[1.0, 2.0]])


def test_records_instances_and_inputs_agree() -> None:
    bodies = [
        {"dataframe_records": [{"a": 1, "b": 2}]},
        {"instances": [{"a": 1, "b": 2}]},
        {"inputs": {"a": [1], "b": [2]}},
        {"inputs": [[1, 2]]},
    ]
    for body in bodies:
        request = decode_invocations(_json(body), "application/json", COLUMNS)
        np.testing.assert_array_equal(request.inputs, [[1.0, 2.0]])


def test_csv_body() -> None:
    request = decode_invocations(b"b,a\n2,1\n4,3\n", "text/csv", COLUMNS)
    np.testing.assert_array_equal(request.inputs, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dataframe_split": {"columns": ["a"], "data": [[1]]}}, "b"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"]]}}, "b"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[True, 1]]}}, "a"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, None]]}}, "b"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [1]]}}, "data"),
        ({"dataframe_records": [{"a": 1}]}, "b"),
    ],
)
def test_a_wrong_field_is_a_422_naming_it(body: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_invocations(_json(body), "application/json", COLUMNS)
    assert caught.value.http_status == 422
    assert caught.value.detail["field"] == field
    assert field in str(caught.value) or field == "data"


def test_malformed_json_is_a_400_not_a_422() -> None:
    with pytest.raises(UserError) as caught:
        decode_invocations(b'{"dataframe_split": ', "application/json", COLUMNS)
    assert caught.value.http_status == 400
    assert "malformed JSON" in str(caught.value)


def test_nan_literals_are_missing_values_where_the_signature_allows_them() -> None:
    optional = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64", is_required=False)))
    body = b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, NaN], [2.0, 3.0]]}}'
    np.testing.assert_array_equal(
        decode_invocations(body, "application/json", optional).inputs, [[1.5, np.nan], [2.0, 3.0]]
    )
    with pytest.raises(ValidationError, match="'b' is required but row 0 has null"):
        decode_invocations(body, "application/json", COLUMNS)
    for literal in (b"Infinity", b"-Infinity"):
        with pytest.raises(ValidationError, match="not a finite number"):
            decode_invocations(body.replace(b"NaN", literal), "application/json", optional)
    with pytest.raises(UserError, match="malformed JSON"):
        decode_invocations(b'{"inputs": [NaN, ', "application/json", optional)


def test_mixed_types_keep_objects() -> None:
    body = {"dataframe_records": [{"city": "Oslo", "n": 3}]}
    request = decode_invocations(_json(body), "application/json", MIXED)
    assert request.inputs.tolist() == [["Oslo", 3]]
    with pytest.raises(ValidationError, match="'n' expects long"):
        decode_invocations(
            _json({"dataframe_records": [{"city": "Oslo", "n": 1.5}]}), "application/json", MIXED
        )


def test_tensor_and_text_signatures() -> None:
    tensor = decode_invocations(_json({"instances": [[1, 2, 3]]}), "application/json", TENSOR)
    assert tensor.inputs.dtype == np.float32
    assert tensor.inputs.shape == (1, 3)
    with pytest.raises(ValidationError, match=r"shape \[1, 2\]"):
        decode_invocations(_json({"instances": [[1, 2]]}), "application/json", TENSOR)
    text = decode_invocations(_json({"inputs": ["hi", "there"]}), "application/json", TEXT)
    assert text.inputs.tolist() == ["hi", "there"]
    with pytest.raises(ValidationError, match="must be a string"):
        decode_invocations(_json({"inputs": ["hi", 3]}), "application/json", TEXT)


def test_v2_single_matrix_and_per_column_tensors() -> None:
    matrix = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
    request = decode_v2(_json(matrix), COLUMNS)
    np.testing.assert_array_equal(request.inputs, [[1, 2], [3, 4]])
    columns = {
        "id": "r1",
        "inputs": [
            {"name": "b", "shape": [1], "datatype": "FP64", "data": [2]},
            {"name": "a", "shape": [1], "datatype": "INT64", "data": [1]},
        ],
        "outputs": [{"name": "predictions"}],
    }
    request = decode_v2(_json(columns), COLUMNS)
    np.testing.assert_array_equal(request.inputs, [[1, 2]])
    assert request.request_id == "r1"
    assert request.output_names == ("predictions",)


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2, 3]},
        {"name": "x", "shape": [1, 2], "datatype": "FP99", "data": [1, 2]},
        {"name": "x", "shape": [1, 2], "datatype": "FP64", "data": ["a", "b"]},
        {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]},
        {"name": "x", "shape": "1,2", "datatype": "FP64", "data": [1, 2]},
    ],
)
def test_v2_bad_tensors_are_422(tensor: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        decode_v2(_json({"inputs": [tensor]}), COLUMNS)


def test_encoders() -> None:
    outputs = {"predictions": np.array([0, 1]), "probabilities": np.array([[0.9, 0.1], [0.2, 0.8]])}
    assert orjson.loads(encode_invocations(outputs, "predictions", as_records=False)) == {
        "predictions": [0, 1]
    }
    v2 = orjson.loads(encode_v2("m", "3", "id-1", outputs, None))
    assert v2["model_version"] == "3"
    assert v2["outputs"][1] == {
        "name": "probabilities",
        "datatype": "FP64",
        "shape": [2, 2],
        "data": [0.9, 0.1, 0.2, 0.8],
    }
    with pytest.raises(ValidationError, match="no output 'nope'"):
        encode_v2("m", "3", None, outputs, ("nope",))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=20), st.booleans())
def test_numeric_rows_round_trip(rows: list[tuple[float, float]], swap: bool) -> None:
    columns = ["b", "a"] if swap else ["a", "b"]
    data = [[b, a] for a, b in rows] if swap else [list(r) for r in rows]
    body = _json({"dataframe_split": {"columns": columns, "data": data}})
    request = decode_invocations(body, "application/json", COLUMNS)
    np.testing.assert_array_equal(request.inputs, np.array(rows, dtype=np.float64))
    v2 = decode_v2(
        _json(
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [len(rows), 2],
                        "datatype": "FP64",
                        "data": [v for r in rows for v in r],
                    }
                ]
            }
        ),
        COLUMNS,
    )
    np.testing.assert_array_equal(v2.inputs, request.inputs)
