"""A real Open Inference Protocol client against the real server: ``tritonclient.http`` with its
defaults (the binary tensor data extension), with JSON, and with bodies that do not add up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from lockgate.serving import ServingApp, run_server_in_thread
from lockgate.serving.predictor import FunctionPredictor
from lockgate.serving.signature import FieldSpec, Signature
from lockgate.serving.variant import Variant

httpclient = pytest.importorskip("tritonclient.http")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException

pytestmark = pytest.mark.integration


def _client(server: Any) -> Any:
    return httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))


def _input(features: np.ndarray, *, binary: bool = True) -> Any:
    tensor = httpclient.InferInput("x", list(features.shape), "FP64")
    tensor.set_data_from_numpy(features, binary_data=binary)
    return tensor


def test_defaults_send_and_receive_binary_data(server: Any, logged_model: Any) -> None:
    features = logged_model.features[:20]
    result = _client(server).infer("cancer", [_input(features)])
    assert result.get_output("predictions")["parameters"]["binary_data_size"] == 20 * 8
    np.testing.assert_array_equal(result.as_numpy("predictions"), logged_model.labels[:20])
    np.testing.assert_allclose(
        result.as_numpy("probabilities"),
        logged_model.model.predict_proba(_frame(logged_model, 20)),
        rtol=1e-6,
        atol=1e-12,
    )


def test_json_inputs_and_outputs_and_a_mix(server: Any, logged_model: Any) -> None:
    features = logged_model.features[:5]
    client = _client(server)
    as_json = client.infer(
        "cancer",
        [_input(features, binary=False)],
        outputs=[httpclient.InferRequestedOutput("predictions", binary_data=False)],
    )
    assert as_json.get_output("predictions")["data"] == logged_model.labels[:5].tolist()
    assert as_json.get_output("probabilities") is None  # only what was asked for
    mixed = client.infer(
        "cancer",
        [_input(features, binary=True)],
        outputs=[
            httpclient.InferRequestedOutput("predictions", binary_data=False),
            httpclient.InferRequestedOutput("probabilities", binary_data=True),
        ],
    )
    assert "data" in mixed.get_output("predictions")
    assert "data" not in mixed.get_output("probabilities")
    np.testing.assert_array_equal(mixed.as_numpy("predictions"), logged_model.labels[:5])
    assert mixed.as_numpy("probabilities").shape == (5, 2)


def test_metadata_lists_the_outputs_inference_returns(server: Any, logged_model: Any) -> None:
    client = _client(server)
    meta = client.get_model_metadata("cancer")
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert set(outputs) == {"predictions", "probabilities"}
    assert outputs["probabilities"]["shape"] == [-1, 2]
    assert outputs["probabilities"]["datatype"] == "FP64"
    assert outputs["predictions"]["datatype"] == "INT64"
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    # a client that asks for exactly the outputs the metadata names gets each of them
    requested = [httpclient.InferRequestedOutput(name) for name in outputs]
    result = client.infer("cancer", [_input(logged_model.features[:3])], outputs=requested)
    for name, spec in outputs.items():
        array = result.as_numpy(name)
        assert array is not None
        assert list(array.shape[1:]) == spec["shape"][1:]


def test_a_binary_input_of_the_wrong_size_is_a_clear_400(server: Any, logged_model: Any) -> None:
    features = logged_model.features[:2]
    tensor = httpclient.InferInput("x", [2, 30], "FP64")
    tensor.set_data_from_numpy(features)
    tensor._raw_data = tensor._raw_data[:-8]  # one value short, as a client bug would send it
    tensor._parameters["binary_data_size"] = len(tensor._raw_data)
    with pytest.raises(InferenceServerException) as exc:
        _client(server).infer("cancer", [tensor])
    # tritonclient shows the body's "error" (lockgate's error kind); "detail" says what and where
    assert exc.value.status() == "400"
    assert "bad_request" in exc.value.message()


def _raw(server: Any, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/cancer/infer", content=body, headers=headers)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 8 * 59}, "needs 480"),
        ({"size": 8 * 61}, "needs 488 bytes"),
        ({"extra": b"\0" * 8}, "after the last input"),
        ({"datatype": "FP80"}, "datatype 'FP80'"),
        ({"header_length": None}, "no Inference-Header-Content-Length"),
        ({"header_length": "ten"}, "not a byte count"),
        ({"header_length": "100000"}, "the body has"),
    ],
)
def test_bad_binary_bodies_get_a_json_400(
    server: Any, logged_model: Any, change: dict[str, Any], message: str
) -> None:
    data = logged_model.features[:2].astype("<f8").tobytes()
    item = {
        "name": "x",
        "shape": [2, 30],
        "datatype": change.get("datatype", "FP64"),
        "parameters": {"binary_data_size": change.get("size", len(data))},
    }
    header = orjson.dumps({"inputs": [item]})
    headers = {"content-type": "application/octet-stream"}
    length = change.get("header_length", str(len(header)))
    if length is not None:
        headers["inference-header-content-length"] = length
    else:
        headers["content-type"] = "application/json"
    response = _raw(server, header + data + change.get("extra", b""), headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["detail"]


@pytest.fixture(scope="module")
def text_server() -> Iterator[Any]:
    """A model of strings to strings (BYTES both ways), served by the real server."""

    def shout(texts: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "upper": np.array([t.upper() for t in texts], dtype=object),
            "length": np.array([len(t) for t in texts], dtype=np.int32),
        }

    signature = Signature("text", (FieldSpec("text", "object"),))
    variant = Variant("shout", "1", FunctionPredictor(shout, signature, primary_output=None))
    with run_server_in_thread(ServingApp([variant])) as handle:
        yield handle


def test_strings_both_ways_in_binary(text_server: Any) -> None:
    texts = np.array(["héllo", "wörld", ""], dtype=object)
    tensor = httpclient.InferInput("text", [3], "BYTES")
    tensor.set_data_from_numpy(texts)
    result = _client(text_server).infer("shout", [tensor])
    assert [v.decode() for v in result.as_numpy("upper")] == ["HÉLLO", "WÖRLD", ""]
    np.testing.assert_array_equal(result.as_numpy("length"), [5, 5, 0])
    meta = _client(text_server).get_model_metadata("shout")
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {"upper": "BYTES", "length": "INT32"}


def _frame(model: Any, n: int) -> Any:
    import pandas as pd

    return pd.DataFrame(model.features[:n], columns=model.columns)
