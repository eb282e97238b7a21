from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lockgate.errors import UserError
from lockgate.optimize.export import sklearn_to_onnx, torch_to_onnx
from lockgate.optimize.quantize import (
    int8_refusal,
    quantize_dynamic_int8,
    quantize_static_int8,
    sensitive_nodes,
)


def run(path: Path, x: Any) -> Any:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})


@pytest.fixture(scope="module")
def mlp_onnx(mlp: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return torch_to_onnx(
        mlp,
        (torch.zeros((2, 30)),),
        tmp_path_factory.mktemp("mlp") / "model.onnx",
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}},
    )


@pytest.mark.slow  # exports a network three ways
def test_exporters_reproduce_the_module(mlp: Any, mlp_onnx: Path, tmp_path: Path, breast_cancer: Any) -> None:
    x, _ = breast_cancer
    with torch.no_grad():
        expected = mlp(torch.tensor(x, dtype=torch.float32)).numpy()
    assert np.abs(run(mlp_onnx, x)[0] - expected).max() < 1e-4
    with pytest.raises(UserError, match="unknown exporter"):
        torch_to_onnx(
            mlp,
            (torch.zeros((2, 30)),),
            tmp_path / "m.onnx",
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={},
            exporter="jit",
        )  # type: ignore[arg-type]


def test_sklearn_graph_has_probabilities_and_no_zipmap(breast_cancer: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = breast_cancer
    model = LogisticRegression(max_iter=5000).fit(x, y)
    graph = sklearn_to_onnx(model, x)
    assert b"ZipMap" not in graph
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    _, proba = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})
    assert np.abs(proba - model.predict_proba(x)).max() < 1e-4
    with pytest.raises(UserError, match="skl2onnx cannot convert"):
        sklearn_to_onnx(object(), x)


@pytest.mark.parametrize("is_per_channel", [True, False])
def test_dynamic_int8_keeps_the_parent_quality(
    mlp: Any, mlp_onnx: Path, tmp_path: Path, breast_cancer: Any, is_per_channel: bool
) -> None:
    x, y = breast_cancer
    out = quantize_dynamic_int8(mlp_onnx, tmp_path / "q.onnx", is_per_channel=is_per_channel)
    assert out.stat().st_size < mlp_onnx.stat().st_size
    parent = run(mlp_onnx, x)[0].argmax(axis=1)
    child = run(out, x)[0].argmax(axis=1)
    assert (child == y).mean() >= (parent == y).mean() - 0.02
    assert (child == parent).mean() >= 0.97


def test_static_int8_with_calibration_and_a_float_output_layer(
    mlp_onnx: Path, tmp_path: Path, breast_cancer: Any
) -> None:
    x, y = breast_cancer
    keep = sensitive_nodes(mlp_onnx)
    assert len(keep) == 1
    feeds = [{"input": x[i : i + 64].astype(np.float32)} for i in range(0, 256, 64)]
    out = quantize_static_int8(mlp_onnx, tmp_path / "s.onnx", feeds, exclude=keep)
    parent = run(mlp_onnx, x)[0].argmax(axis=1)
    child = run(out, x)[0].argmax(axis=1)
    assert (child == y).mean() >= (parent == y).mean() - 0.03
    with pytest.raises(UserError, match="calibration inputs"):
        quantize_static_int8(mlp_onnx, tmp_path / "e.onnx", [])


def test_tree_graphs_are_refused(breast_cancer: Any, tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    x, y = breast_cancer
    path = tmp_path / "tree.onnx"
    path.write_bytes(sklearn_to_onnx(DecisionTreeClassifier(max_depth=3).fit(x, y), x))
    with pytest.raises(UserError, match="no MatMul, Gemm or Conv"):
        quantize_dynamic_int8(path, tmp_path / "q.onnx")


def test_the_refusal_names_what_works_for_the_model() -> None:
    """A logistic regression was told to "quantize neural networks and linear models" (issue 20)."""
    assert int8_refusal(["Cast", "MatMul", "Add", "Relu"], "sklearn") is None  # a scikit-learn MLP
    linear = int8_refusal(["Scaler", "LinearClassifier"], "sklearn")
    assert linear is not None and linear.exit_code == 2
    assert "LinearClassifier, Scaler" in linear.message and "no MatMul, Gemm or Conv" in linear.message
    assert linear.hint is not None
    assert "--method onnx" in linear.hint and "--method distill" in linear.hint
    assert "linear models" not in linear.hint
    graph = int8_refusal(["LinearClassifier"], "onnx")
    assert graph is not None and graph.hint is not None
    assert "already the fastest form" in graph.hint and "--method onnx" not in graph.hint
    unknown = int8_refusal([], None)
    assert unknown is not None and "its nodes: none" in unknown.message
