"""Runtimes other than scikit-learn: TorchScript files, MLflow's pytorch flavour, bare ONNX files."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from lockgate.serving.runtimes import OnnxPredictor, TorchPredictor, load_predictor
from tests.support import start_server


def _mlp() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()


def test_exported_program_matches_the_module(tmp_path: Path) -> None:
    import torch

    module = _mlp()
    x = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    path = tmp_path / "mlp.pt2"
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(module, (torch.from_numpy(x),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    predictor = load_predictor(path)
    assert isinstance(predictor, TorchPredictor)
    predictor.load()
    out = predictor.predict(x[:3])
    values = next(iter(out.values())) if isinstance(out, dict) else out
    with torch.no_grad():
        expected = module(torch.from_numpy(x[:3])).numpy()
    assert np.allclose(np.asarray(values), expected, atol=1e-6)


def test_torchscript_file_matches_the_module(tmp_path: Path) -> None:
    import torch

    module = _mlp()
    path = tmp_path / "mlp.pt"
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript for new code; files made with it must still be servable.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    predictor = load_predictor(path)
    assert isinstance(predictor, TorchPredictor)
    predictor.load()
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    out = predictor.predict(x)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    values = next(iter(out.values())) if isinstance(out, dict) else out
    assert np.allclose(np.asarray(values), expected, atol=1e-6)


@pytest.mark.integration
def test_mlflow_pytorch_flavour(mlflow_home: Path, tmp_path: Path) -> None:
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    module = _mlp()
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    folder = tmp_path / "torch-model"
    mlflow.pytorch.save_model(
        module,
        str(folder),
        signature=infer_signature(x, expected),
        input_example=x,
        pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
    )
    predictor = load_predictor(folder)
    assert isinstance(predictor, TorchPredictor)
    predictor.load()
    out = predictor.predict(x)
    values = next(iter(out.values())) if isinstance(out, dict) else out
    assert np.allclose(np.asarray(values), expected, atol=1e-6)


@pytest.mark.slow  # exports and loads an ONNX graph (~10 s)
def test_bare_onnx_file(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=3000).fit(x, y)
    path = tmp_path / "model.onnx"
    path.write_bytes(
        to_onnx(model, x[:1].astype(np.float64), options={id(model): {"zipmap": False}}).SerializeToString()
    )
    predictor = load_predictor(path)
    assert isinstance(predictor, OnnxPredictor)
    predictor.load()
    out = predictor.predict(x[:20])
    labels = np.asarray(
        out["label"] if isinstance(out, dict) and "label" in out else next(iter(out.values()))
    )
    assert (labels.ravel() == model.predict(x[:20])).all()


@pytest.mark.integration
def test_two_workers_share_the_port_and_stop_on_sigterm(logged_model: Any) -> None:
    # two processes load the model at once on 2 shared cores: give them time
    server = start_server(
        [str(logged_model.path), "--name", "cancer", "--workers", "2"], token=None, ready_timeout_s=300
    )
    proc, url = server.proc, server.url
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) >= 2, children
        body = {
            "dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}
        }
        with httpx.Client(base_url=url, timeout=30) as client:
            answers = [client.post("/invocations", json=body) for _ in range(40)]
        assert {r.status_code for r in answers} == {200}
        assert {r.json()["predictions"][0] for r in answers} == {int(logged_model.labels[0])}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
