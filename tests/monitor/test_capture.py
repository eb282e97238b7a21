"""Sampled capture: the request path's queue, and captured values that survive JSON exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lockgate.errors import UserError, ValidationError
from lockgate.monitor.capture import (
    TrafficCapture,
    decode_inputs,
    decode_outputs,
    encode_inputs,
    encode_outputs,
)


def _through_json(document: object) -> object:
    return json.loads(json.dumps(document))


def test_one_request_in_every_is_taken() -> None:
    capture = TrafficCapture(3)
    assert [capture.take() for _ in range(9)] == [False, False, True] * 3
    assert capture.seen == 9
    with pytest.raises(ValidationError, match="capture every must be >= 1"):
        TrafficCapture(0)


def _append(capture: TrafficCapture, request_id: bytes, inputs: np.ndarray | None = None) -> None:
    capture.append(
        request_id=request_id,
        variant="stable",
        model_name="cancer",
        model_version="1",
        status=200,
        latency_ms=0.5,
        inputs=np.zeros((1, 2)) if inputs is None else inputs,
        outputs={"label": np.array([1])},
    )


def test_a_full_queue_drops_and_counts_and_a_failed_write_puts_rows_back() -> None:
    capture = TrafficCapture(1, max_pending=3, clock=lambda: 42.0)
    for index in range(5):
        _append(capture, b"r%d" % index)
    assert capture.pending == 3 and capture.dropped == 2
    rows = capture.drain()
    assert [row.request_id for row in rows] == [b"r0", b"r1", b"r2"] and rows[0].at == 42.0
    assert capture.pending == 0
    _append(capture, b"late")
    capture.requeue(rows)  # room for two: the newest two come back, in front, in order
    assert [row.request_id for row in capture.drain()] == [b"r1", b"r2", b"late"]
    assert capture.dropped == 3


def test_encoded_rows_carry_who_answered_and_skip_oversized_inputs() -> None:
    capture = TrafficCapture(1, max_bytes=1000, clock=lambda: 7.5)
    _append(capture, b"small")
    _append(capture, b"big", inputs=np.zeros((200, 2)))  # 3,200 bytes
    rows = capture.encode("churn", capture.drain())
    assert [row.request_id for row in rows] == ["small"] and capture.too_large == 1
    row = rows[0]
    assert (row.deployment, row.variant, row.model_name, row.model_version) == (
        "churn",
        "stable",
        "cancer",
        "1",
    )
    assert (row.status, row.latency_ms, row.at) == (200, 0.5, 7.5)
    assert decode_outputs(row.outputs or {})["label"].tolist() == [1]
    assert capture.summary()["too_large"] == 1


@pytest.mark.parametrize(
    "inputs",
    [
        np.array([[1.5, -2.0, 3.25]], dtype=np.float64),
        np.array([[1.5, np.nan]], dtype=np.float32),
        np.arange(12, dtype=np.int64).reshape(2, 2, 3),
        np.array(["a sentence", "another"], dtype=object),
    ],
)
def test_arrays_round_trip_with_their_dtype(inputs: np.ndarray) -> None:
    back = decode_inputs(_through_json(encode_inputs(inputs)))  # type: ignore[arg-type]
    assert isinstance(back, np.ndarray)
    assert back.dtype == inputs.dtype and back.shape == inputs.shape
    if inputs.dtype == object:
        assert back.tolist() == inputs.tolist()
    else:
        np.testing.assert_array_equal(back, inputs)


def test_tables_round_trip_with_their_columns_and_dtypes() -> None:
    frame = pd.DataFrame({"age": [31, 45], "plan": ["basic", "pro"], "spend": [9.5, 120.25]})
    back = decode_inputs(_through_json(encode_inputs(frame)))  # type: ignore[arg-type]
    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_frame_equal(back, frame)


def test_outputs_round_trip_labels_scores_and_strings() -> None:
    outputs = {
        "label": np.array([0, 1], dtype=np.int64),
        "probabilities": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
        "text": np.array(["yes", "no"]),
    }
    back = decode_outputs(_through_json(encode_outputs(outputs)))  # type: ignore[arg-type]
    for name, array in outputs.items():
        assert back[name].dtype == array.dtype
        np.testing.assert_array_equal(back[name], array)


def test_inputs_of_an_unknown_kind_say_so() -> None:
    with pytest.raises(UserError, match="unknown kind 'sparse'"):
        decode_inputs({"kind": "sparse"})
