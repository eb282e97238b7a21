"""``lockgate optimize`` end to end: registry in, verified candidate out, lineage recorded, served."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lockgate.tracking.connection import connect
from lockgate.tracking.registry import TAG_METHOD_PARAMS, get_model_version, list_versions, register

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str, str]]


def _csv(tmp_path: Path, x: Any, y: Any) -> Path:
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["target"] = y
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def gradient_boosting(mlflow_home: Path, tmp_path: Path, unique: str, breast_cancer: Any) -> str:
    from mlflow.models import infer_signature
    from sklearn.ensemble import GradientBoostingClassifier

    import lockgate

    x, y = breast_cancer
    data = _csv(tmp_path, x, y)
    frame = pd.read_csv(data)
    features = frame.drop(columns=["target"])
    with lockgate.track(run_name="gb", datasets=[data]) as run:
        model = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(features, y)
        run.log_model(model, signature=infer_signature(features, model.predict_proba(features)))
    return register(connect(), run.run_id, f"gb-{unique}").ref


@pytest.fixture
def logistic(mlflow_home: Path, tmp_path: Path, unique: str, breast_cancer: Any) -> str:
    """A scaler + logistic regression pipeline (what the quickstart and the example train)."""
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import lockgate

    x, y = breast_cancer
    data = _csv(tmp_path, x, y)
    features = pd.read_csv(data).drop(columns=["target"])
    with lockgate.track(run_name="logistic", datasets=[data]) as run:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features, y)
        run.log_model(model, signature=infer_signature(features, model.predict_proba(features)))
    return register(connect(), run.run_id, f"lr-{unique}").ref


def _run_metrics(run_id: str | None) -> dict[str, float]:
    assert run_id is not None
    return dict(connect().client.get_run(run_id).data.metrics)


def test_onnx_export_is_verified_registered_with_lineage_and_served(
    cli: Cli, gradient_boosting: str, breast_cancer: Any
) -> None:
    from lockgate.serving import OnnxPredictor, load_predictor, resolve_source

    code, out, err = cli("optimize", gradient_boosting, "--method", "onnx")
    assert code == 0, out + err
    name = gradient_boosting.split("@")[0]
    assert f"registered {name}@2" in out
    child = get_model_version(connect(), f"{name}@2")
    assert child.parent == f"{name}/1" and child.method == "onnx"
    assert json.loads(child.tags[TAG_METHOD_PARAMS]) == {"tolerance": 1e-4}
    metrics = _run_metrics(child.run_id)
    assert metrics["max_abs_diff"] < 1e-4
    assert metrics["accuracy"] == metrics["parent_accuracy"]
    assert {"latency_b1_p50_ms", "latency_b32_p95_ms", "throughput_per_s", "size_bytes"} <= set(metrics)

    source = resolve_source(f"models:/{name}/2")
    assert source.is_verified
    predictor = load_predictor(source.path)
    assert isinstance(predictor, OnnxPredictor)
    predictor.load()
    x, _ = breast_cancer
    parent = resolve_source(f"models:/{name}/1")
    import mlflow.sklearn

    expected = mlflow.sklearn.load_model(str(parent.path)).predict_proba(
        pd.DataFrame(x[:8], columns=[f"f{i}" for i in range(30)])
    )
    got = predictor.predict(x[:8])
    probabilities = next(v for v in got.values() if v.ndim == 2)
    assert np.abs(probabilities - expected).max() < 1e-4


def test_a_candidate_beyond_tolerance_is_not_registered(cli: Cli, gradient_boosting: str) -> None:
    code, out, _ = cli("optimize", gradient_boosting, "--method", "onnx", "--tolerance", "0")
    assert code == 1
    assert "not registered" in out and "exceeds the tolerance 0" in out
    assert [v.version for v in list_versions(connect(), gradient_boosting.split("@")[0])] == [1]


def test_user_errors_exit_2(cli: Cli, gradient_boosting: str) -> None:
    code, _, err = cli("optimize", gradient_boosting)
    assert code == 2 and "pass either --method METHOD or --all" in err
    code, _, err = cli("optimize", gradient_boosting, "--method", "prune")
    assert code == 2 and "does not apply to a sklearn model" in err
    code, _, err = cli("optimize", gradient_boosting, "--method", "quantize", "--mode", "fast")
    assert code == 2 and "mode 'fast' is not one of dynamic, static" in err
    code, _, err = cli("optimize", gradient_boosting.split("@")[0] + "@9", "--method", "onnx")
    assert code == 2 and "has no version 9" in err


def test_quantize_on_a_logistic_regression_says_what_works(cli: Cli, logistic: str) -> None:
    code, out, err = cli("optimize", logistic, "--method", "quantize")
    assert code == 2, out + err
    assert "no MatMul, Gemm or Conv" in err and "LinearClassifier" in err
    assert "--method onnx" in err and "linear models" not in err
    assert [v.version for v in list_versions(connect(), logistic.split("@")[0])] == [1]


def test_size_is_the_model_folder_on_disk(cli: Cli, logistic: str, tmp_path: Path) -> None:
    """The size axis was len(pickle.dumps(model)): 2.7 kB for a 36.6 kB model.skops (issue 20)."""
    from lockgate.optimize.measure import folder_bytes
    from lockgate.serving import resolve_source

    report = tmp_path / "t.json"
    code, out, err = cli("optimize", logistic, "--method", "onnx", "--json", str(report))
    assert code == 0, out + err
    doc = json.loads(report.read_text())
    name = logistic.split("@")[0]
    parent = resolve_source(f"models:/{name}/1").path
    assert doc["parent"]["size_bytes"] == folder_bytes(parent)
    assert doc["parent"]["size_bytes"] > (parent / "model.skops").stat().st_size
    child = folder_bytes(resolve_source(f"models:/{name}/2").path)
    # saved the way it is logged: only MLmodel's run id, model id and location differ (a few hundred bytes)
    assert abs(doc["candidates"][0]["size_bytes"] - child) < 512


def test_optimize_runs_have_their_own_experiment_and_one_split(
    cli: Cli, logistic: str, tmp_path: Path, breast_cancer: Any
) -> None:
    """They landed in the training experiment, mixed into `runs list`, scored on other rows (issue 20)."""
    from lockgate.optimize.holdout import held_out_split
    from lockgate.tracking.runs import get_run, list_runs

    report = tmp_path / "t.json"
    code, out, err = cli("optimize", logistic, "--all", "--json", str(report))
    assert code == 0, out + err
    doc = json.loads(report.read_text())
    conn = connect()
    training = conn.client.get_experiment(
        conn.client.get_run(get_model_version(conn, logistic).run_id).info.experiment_id
    ).name
    assert doc["experiment"] == f"{training}-optimize"
    assert f"runs logged to experiment '{training}-optimize'" in out
    run_ids = [c["run_id"] for c in doc["candidates"]]
    runs = [conn.client.get_run(run_id) for run_id in run_ids]
    assert {conn.client.get_experiment(r.info.experiment_id).name for r in runs} == {doc["experiment"]}
    # `runs list` shows training runs; the trade-offs are one -e away, and their ids still resolve
    assert not set(run_ids) & {r.run_id for r in list_runs(conn, limit=1000)}
    assert set(run_ids) <= {r.run_id for r in list_runs(conn, experiment=doc["experiment"], limit=1000)}
    assert get_run(conn, run_ids[0][:8]).info.run_id == run_ids[0]

    # every record scored the same rows: the fixed held-out 30% of the file the run recorded
    assert "the same held-out 30% of data.csv (171 of 569 rows" in doc["judged_on"]
    assert {r.data.tags["lockgate.optimize.judged_on"] for r in runs} == {doc["judged_on"]}
    import mlflow.sklearn

    from lockgate.serving import resolve_source

    x, y = breast_cancer
    _, held = held_out_split(len(y))
    parent = mlflow.sklearn.load_model(str(resolve_source(f"models:/{logistic.split('@')[0]}/1").path))
    rows = pd.DataFrame(x[held], columns=[f"f{i}" for i in range(30)])
    expected = float(np.mean(parent.predict(rows) == y[held]))
    assert doc["parent"]["accuracy"] == pytest.approx(expected)
    assert all(r.data.metrics["parent_accuracy"] == pytest.approx(expected) for r in runs)


def test_the_split_does_not_follow_the_optimizers_seed(logistic: str) -> None:
    from lockgate.optimize.optimizer import open_optimizer

    conn = connect()
    first = open_optimizer(conn, logistic, seed=0).inputs
    second = open_optimizer(conn, logistic, seed=42).inputs  # the quickstart's seed
    assert np.array_equal(first.held_out, second.held_out) and first.source == second.source


def test_sweep_marks_the_pareto_front_and_plots(cli: Cli, gradient_boosting: str, tmp_path: Path) -> None:
    plot, report = tmp_path / "t.png", tmp_path / "t.json"
    code, out, err = cli("optimize", gradient_boosting, "--all", "--plot", str(plot), "--json", str(report))
    assert code == 0, out + err
    assert "★" in out and "Pareto-optimal" in out
    assert plot.stat().st_size > 1000
    doc = json.loads(report.read_text())
    assert [c["method"] for c in doc["candidates"]] == ["onnx", "distill", "distill"]
    assert all(c["cpu"] for c in doc["candidates"])  # each number says which CPU it holds for
    # registered: exactly the verified candidates that no other record beats on every axis
    records = [doc["parent"], *doc["candidates"]]
    for candidate in doc["candidates"]:
        front = candidate["is_verified"] and not any(
            other is not candidate and other["is_verified"] and _dominates(other, candidate)
            for other in records
        )
        assert bool(candidate["version"]) == front, candidate["label"]


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def axes(r: dict[str, Any]) -> tuple[float, float, float]:
        return (-r[r["quality_metric"]], r["latency_b1_p50_ms"], r["size_bytes"])

    pairs = list(zip(axes(a), axes(b), strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def test_torch_mlp_quantized_and_pruned_keep_their_parent_quality(
    mlflow_home: Path, cli: Cli, unique: str, tmp_path: Path, mlp: Any, breast_cancer: Any
) -> None:
    import torch
    from mlflow.models import infer_signature

    import lockgate
    from lockgate.serving import TorchPredictor, load_predictor, resolve_source

    x, y = breast_cancer
    data = _csv(tmp_path, x, y)
    sample = x[:4].astype(np.float32)
    with torch.no_grad():
        outputs = mlp(torch.from_numpy(sample)).numpy()
    with lockgate.track(run_name="mlp") as run:
        run.log_model(mlp, signature=infer_signature(sample, outputs), serialization_format="pickle")
    parent = register(connect(), run.run_id, f"mlp-{unique}")

    code, out, err = cli("optimize", parent.ref, "--method", "quantize", "--data", str(data))
    assert code == 0, out + err
    int8 = get_model_version(connect(), f"{parent.name}@2")
    assert int8.method == "quantize" and int8.parent == f"{parent.name}/1"
    metrics = _run_metrics(int8.run_id)
    assert metrics["accuracy"] >= metrics["parent_accuracy"] - 0.02
    assert metrics["size_bytes"] < metrics["parent_size_bytes"]

    code, out, err = cli(
        "optimize",
        parent.ref,
        "--method",
        "prune",
        "--kind",
        "structured",
        "--amount",
        "0.25",
        "--data",
        str(data),
    )
    assert code == 0, out + err
    pruned = get_model_version(connect(), f"{parent.name}@3")
    metrics = _run_metrics(pruned.run_id)
    assert metrics["accuracy"] >= metrics["parent_accuracy"] - 0.05
    predictor = load_predictor(resolve_source(pruned.uri).path)
    assert isinstance(predictor, TorchPredictor)
    predictor.load()
    assert predictor.predict(sample)["predictions"].shape == (4, 2)


def test_encoder_bf16_keeps_its_embeddings(
    mlflow_home: Path, cli: Cli, unique: str, tiny_encoder: Any
) -> None:
    import mlflow.sentence_transformers

    import lockgate

    with lockgate.track(run_name="encoder") as run:
        mlflow.sentence_transformers.log_model(tiny_encoder, name="model", pip_requirements=["torch"])
    parent = register(connect(), run.run_id, f"enc-{unique}")
    code, out, err = cli("optimize", parent.ref, "--method", "quantize", "--mode", "bf16")
    assert code == 0, out + err
    child = get_model_version(connect(), f"{parent.name}@2")
    assert _run_metrics(child.run_id)["cosine_mean"] >= 0.98
    tags = connect().client.get_run(child.run_id).data.tags
    assert tags["lockgate.optimize.cpu"]  # the CPU the numbers were measured on


def test_encoder_int8_keeps_its_embeddings_and_serves_text(
    mlflow_home: Path, cli: Cli, unique: str, tiny_encoder: Any
) -> None:
    import mlflow.sentence_transformers

    import lockgate
    from lockgate.serving import OnnxPredictor, PyfuncPredictor, load_predictor, resolve_source

    with lockgate.track(run_name="encoder") as run:
        mlflow.sentence_transformers.log_model(tiny_encoder, name="model", pip_requirements=["torch"])
    parent = register(connect(), run.run_id, f"enc-{unique}")
    code, out, err = cli("optimize", parent.ref, "--method", "quantize", "--per-channel")
    assert code == 0, out + err
    child = get_model_version(connect(), f"{parent.name}@2")
    metrics = _run_metrics(child.run_id)
    assert metrics["cosine_mean"] >= 0.98 and metrics["cosine_min"] >= 0.95

    source = resolve_source(child.uri)
    predictor = load_predictor(source.path)
    assert isinstance(predictor, PyfuncPredictor)
    predictor.load()
    texts = np.array(["a sentence to embed", "and another one"], dtype=object)
    embeddings = next(iter(predictor.predict(texts).values()))
    assert embeddings.shape == (2, 32)
    expected = tiny_encoder.encode(list(texts))
    cosine = (embeddings * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() > 0.95

    graph = next(source.path.rglob("model.onnx"))
    raw = OnnxPredictor(graph)
    raw.load()
    ids = tiny_encoder.tokenizer(list(texts), padding=True, return_tensors="np")["input_ids"]
    assert raw.predict(ids.astype(np.int64))["embeddings"].shape == (2, 32)
