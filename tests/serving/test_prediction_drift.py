"""Drift of predictions and of text embeddings on a real server, against the baseline's outputs on
the training rows (computed once, through the baseline's batcher, when the deployment is loaded)."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from lockgate.monitor.reference import reference_from_frame
from lockgate.rollout.policy import policy_for
from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.deployment import DeploymentManager
from lockgate.serving.predictor import FunctionPredictor, column_signature
from lockgate.serving.server import ServeConfig, build_app, run_server_in_thread
from lockgate.serving.signature import FieldSpec, Signature
from lockgate.serving.variant import Variant
from tests.support import AUTH, TOKEN

pytestmark = pytest.mark.integration

RNG = np.random.default_rng(11)
TRAIN = pd.DataFrame({"x": RNG.normal(0, 1, 3000), "y": RNG.normal(0, 1, 3000)})
WORDS = ["alpha", "beta", "gamma", "delta"]
TEXTS = pd.DataFrame({"text": [f"{WORDS[i % 4]} {i}" for i in range(600)]})


def _labels(flip: bool) -> Callable[[Any], Any]:
    def predict(batch: Any) -> Any:
        labels = (np.asarray(batch)[:, 0] > 0).astype(np.int64)
        return np.ones_like(labels) if flip else labels

    return predict


def _encoder(turn: bool) -> Callable[[Any], Any]:
    def encode(batch: Any) -> Any:
        out = np.zeros((len(batch), 4), dtype=np.float32)
        for i, text in enumerate(batch):
            out[i, WORDS.index(str(text).split()[0]) % 2 + (2 if turn else 0)] = 1.0
            out[i] += 0.05
        return {"embeddings": out}

    return encode


def _loader(deployment: str, variant: str, uri: str) -> Variant:
    kind, _, how = uri.partition(":")
    if kind == "labels":
        predictor = FunctionPredictor(_labels(how == "flip"), column_signature(["x", "y"]))
    else:
        signature = Signature("text", (FieldSpec("text", "object"),))
        predictor = FunctionPredictor(_encoder(how == "turn"), signature, primary_output="embeddings")
    loaded = Variant(variant, "1", predictor)
    loaded.key = f"{deployment}/{variant}"
    return loaded


def _server(tmp_path: Path, train: pd.DataFrame, **extra: Any) -> Iterator[Any]:
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False)
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    manager = DeploymentManager(
        store,
        load=_loader,
        policy_for=policy_for,
        tick_s=0.05,
        drift_reference=reference_from_frame(train, dataset="train@1", digest="d1"),
        drift_sample_every=1,
        **extra,
    )
    handle = run_server_in_thread(build_app(config=config, deployments=manager))
    yield handle
    handle.stop()
    store.close()


def _deploy(url: str, name: str, stable: str, candidate: str) -> None:
    spec = {
        "name": name,
        "variants": {"stable": stable, "next": candidate},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
        "analysis": {"policy": "sequential", "guardrails": {"latency": None}},
    }
    assert (
        httpx.put(f"{url}/admin/deployments/{name}", json=spec, headers=AUTH, timeout=60).status_code == 201
    )
    assert httpx.post(f"{url}/admin/deployments/{name}/start", json={}, headers=AUTH).status_code == 200


def _wait_for(url: str, name: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        status: dict[str, Any] = httpx.get(f"{url}/admin/deployments/{name}", headers=AUTH).json()
        if ready(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _both_judged(status: dict[str, Any]) -> bool:
    variants = status["drift"]["predictions"]["variants"]
    return all(variants.get(v, {}).get("live_count", 0) >= 200 for v in ("stable", "next"))


@pytest.fixture
def labels_server(tmp_path: Path) -> Iterator[Any]:
    yield from _server(tmp_path, TRAIN)


@pytest.fixture
def text_server(tmp_path: Path) -> Iterator[Any]:
    yield from _server(tmp_path, TEXTS)


def _send_labels(url: str, n: int = 120) -> None:
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            rows = TRAIN.iloc[(10 * i) % 2900 : (10 * i) % 2900 + 10].to_numpy().tolist()
            body = {"dataframe_split": {"columns": ["x", "y"], "data": rows}}
            answer = client.post(f"{url}/invocations", json=body, headers={"x-routing-key": f"u{i}"})
            assert answer.status_code == 200, answer.text


def test_a_candidate_whose_labels_shift_shows_prediction_drift(
    labels_server: Any, cli: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = labels_server.url
    _deploy(url, "labels", "labels:same", "labels:flip")
    _send_labels(url)
    status = _wait_for(url, "labels", _both_judged)
    predictions = status["drift"]["predictions"]
    assert predictions["state"] == "ready" and predictions["kind"] == "categorical"
    assert predictions["reference_count"] == 2000  # the rows kept of the training table
    assert predictions["source"].startswith("stable on 2000 rows of train@1")
    assert predictions["variants"]["stable"]["status"] == "ok"
    assert predictions["variants"]["next"]["status"] == "drift" and predictions["variants"]["next"]["psi"] > 1
    metrics = httpx.get(f"{url}/metrics").text
    assert 'lockgate_prediction_drift_psi{deployment="labels",variant="next"}' in metrics
    assert 'lockgate_variant_info{deployment="labels",model="next",variant="next",version="1"} 1.0' in metrics
    history = _wait_for_event(url, "labels")
    assert "predictions" in history["reason"] and "variant 'next'" in history["reason"]
    assert any(key.startswith("predictions.psi") for key in history["numbers"])
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = cli("monitor", "drift", "labels", "--url", url, "--token", TOKEN)
    assert code == 1, err  # the candidate's predictions drifted
    assert "categorical" in out and "PSI" in out  # the predictions table (its title may wrap)
    assert "next: predictions drifted (predictions)" in out and "stable: predictions" not in out
    code, _, err = cli("monitor", "drift", "nope", "--url", url, "--token", TOKEN)
    assert code == 2 and "nope" in err


def _wait_for_event(url: str, name: str, action: str = "drift") -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = httpx.get(f"{url}/admin/deployments/{name}/history", headers=AUTH).json()["events"]
        drift = [e for e in events if e["action"] == action]
        if drift:
            return drift[0]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no {action} event was written")


def test_a_text_encoder_whose_embeddings_turn_shows_embedding_drift(text_server: Any) -> None:
    url = text_server.url
    _deploy(url, "encoder", "text:same", "text:turn")
    with httpx.Client(timeout=30) as client:
        for i in range(120):
            texts = TEXTS["text"].iloc[(5 * i) % 595 : (5 * i) % 595 + 5].tolist()
            body = {"inputs": [{"name": "text", "shape": [5], "datatype": "BYTES", "data": texts}]}
            answer = client.post(
                f"{url}/v2/models/encoder/infer", json=body, headers={"x-routing-key": f"u{i}"}
            )
            assert answer.status_code == 200, answer.text
    status = _wait_for(url, "encoder", _both_judged)
    predictions = status["drift"]["predictions"]
    assert predictions["state"] == "ready" and predictions["kind"] == "embedding"
    assert predictions["output"] == "embeddings"
    same, turned = predictions["variants"]["stable"], predictions["variants"]["next"]
    assert same["status"] == "ok" and same["cosine_distance"] < 0.01 and same["mean_cosine"] > 0.5
    assert turned["status"] == "drift" and turned["cosine_distance"] > 0.5 and turned["mean_cosine"] < 0.2
    metrics = httpx.get(f"{url}/metrics").text
    assert 'lockgate_embedding_cosine_distance{deployment="encoder",variant="next"}' in metrics
    assert 'lockgate_embedding_mean_cosine{deployment="encoder",variant="stable"}' in metrics


def test_a_drift_runs_the_retraining_pipeline_once_audited_and_alerted(
    tmp_path: Path, receiver: tuple[str, queue.Queue[Any]]
) -> None:
    from lockgate.monitor.alerts import WebhookSender
    from lockgate.monitor.retrain import RetrainTrigger

    (tmp_path / "build").mkdir()
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "version: 1\nlock: build/pipeline.lock\nstages:\n  retrain:\n"
        "    cmd: python -c \"open('build/model.txt', 'w').write('retrained')\"\n"
        "    outs: [build/model.txt]\n",
        encoding="utf-8",
    )
    url_hook, received = receiver
    trigger = RetrainTrigger(pipeline, cooldown_s=3600)
    server = _server(tmp_path, TRAIN, retrain=trigger, alerts=WebhookSender(url_hook))
    handle = next(server)
    try:
        url = handle.url
        _deploy(url, "labels", "labels:same", "labels:flip")
        _send_labels(url)
        started = _wait_for_event(url, "labels", "retrain")
        assert "drift of variant 'next'" in started["reason"] and "pipeline run" in started["reason"]
        done = _wait_for_event(url, "labels", "retrain_done")
        assert done["numbers"]["exit_code"] == 0 and "succeeded" in done["reason"]
        assert (tmp_path / "build" / "model.txt").read_text() == "retrained"
        kinds = set()
        deadline = time.monotonic() + 30
        while {"drift", "retrain"} - kinds and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                kinds.add(received.get(timeout=0.5)["kind"])
        assert {"drift", "retrain"} <= kinds
        assert trigger.runs == 1  # one drifted variant, one run
    finally:
        with contextlib.suppress(StopIteration):
            next(server)
