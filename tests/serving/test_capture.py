"""Capture on a real server, then `lockgate replay` against an identical and a different model.

The server runs in a thread on 127.0.0.1 with a SQLite rollout store; the models are the real
scikit-learn models of the serving fixtures. The controller tick is a minute long, so every
captured row reaches the store through the graceful shutdown's flush.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.logs import AccessLog
from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread
from tests.support import AUTH, TOKEN

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]

Cli = Callable[..., tuple[int, str, str]]


def _serve_and_capture(
    store_url: str, models: dict[str, Path], logged_model: Any, *, every: int, requests: int
) -> tuple[bytes, list[str]]:
    """Deploy ``churn`` (all traffic on the good model), send requests, stop; the access log and
    the request ids sent."""
    config = ServeConfig(
        "",
        admin_token=TOKEN,
        tick_s=60.0,
        follow_registry=False,
        allow_unverified=True,
        capture_every=every,
        capture_keep=1000,
    )
    store = SqlStore(store_url)
    app = build_app(config=config, deployments=build_deployments(config, store))
    log = io.BytesIO()
    app.access_log = AccessLog("json", stream=log)
    handle = run_server_in_thread(app)
    sent = []
    try:
        spec = {
            "name": "churn",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
        }
        put = httpx.put(f"{handle.url}/admin/deployments/churn", json=spec, headers=AUTH, timeout=60)
        assert put.status_code == 201, put.text
        rows = logged_model.features[::5][:requests]
        with httpx.Client(base_url=handle.url) as client:
            for index, row in enumerate(rows):
                request_id = f"req-{index}"
                body = {"dataframe_split": {"columns": logged_model.columns, "data": [row.tolist()]}}
                answer = client.post("/invocations", json=body, headers={"x-request-id": request_id})
                assert answer.status_code == 200 and answer.headers["x-request-id"] == request_id
                sent.append(request_id)
            status = client.get("/admin/deployments/churn", headers=AUTH).json()
            assert status["capture"]["seen"] == requests and status["capture"]["written"] == 0
    finally:
        handle.stop()
        store.close()
    return log.getvalue(), sent


def test_captured_traffic_replays_against_the_same_and_a_different_model(
    tmp_path: Path, models: dict[str, Path], logged_model: Any, cli: Cli
) -> None:
    store_url = f"sqlite:///{tmp_path / 'rollouts.db'}"
    log, sent = _serve_and_capture(store_url, models, logged_model, every=2, requests=60)

    # written by the shutdown's flush alone (no tick ran): one request in two
    store = SqlStore(store_url)
    try:
        captured = store.captures("churn")
    finally:
        store.close()
    assert [row.request_id for row in captured] == sent[1::2]
    first = captured[0]
    assert (first.variant, first.status) == ("stable", 200) and first.model_version
    assert first.latency_ms > 0 and first.outputs is not None
    assert len(first.inputs["data"][0]) == len(logged_model.columns)

    # the access log: one JSON object per request, with the id each response carried
    lines = [json.loads(line) for line in log.decode().splitlines()]
    answered = [line for line in lines if line["path"] == "/invocations"]
    assert [line["request_id"] for line in answered] == sent
    assert {line["deployment"] for line in answered} == {"churn"}
    assert {line["variant"] for line in answered} == {"stable"}
    line = answered[0]
    assert {"ts", "level", "logger", "msg", "method", "status", "duration_ms", "model", "version"} <= set(
        line
    )
    assert line["status"] == 200 and line["method"] == "POST" and line["logger"] == "lockgate.access"
    assert "dataframe_split" not in log.decode()  # bodies are never logged

    code, out, err = cli("replay", "churn", "--to", str(models["good"]), "--store", store_url, "--json")
    assert code == 0, err
    same = json.loads(out)
    assert same["captured"] == same["replayed"] == same["compared"] == 30
    assert same["labels"]["agreement"] == 1.0 and same["labels"]["flips"] == {}
    assert same["candidate_errors"] == 0 and same["recorded_by"] == {
        f"stable ({first.model_name} v{first.model_version})": 30
    }
    assert same["latency_ms"]["recorded_p50"] > 0 and same["latency_ms"]["candidate_p50"] > 0

    code, out, err = cli("replay", "churn", "--to", str(models["weak"]), "--store", store_url, "--json")
    assert code == 0, err
    weak = json.loads(out)
    assert weak["compared"] == 30 and weak["labels"]["agreement"] < 1.0
    flipped = sum(weak["labels"]["flips"].values())
    assert flipped == round(weak["labels"]["flip_rate"] * 30) > 0

    code, out, err = cli(
        "replay", "churn", "--to", str(models["weak"]), "--store", store_url, "--limit", "10"
    )
    assert code == 0, err
    assert "requests replayed" in out and "agreement" in out and "latency p99 (ms)" in out
    assert "10" in out


def test_replay_names_what_is_missing(tmp_path: Path, models: dict[str, Path], cli: Cli) -> None:
    from lockgate.rollout.controller import initial_state
    from lockgate.rollout.spec import parse_spec

    store_url = f"sqlite:///{tmp_path / 'rollouts.db'}"
    store = SqlStore(store_url)
    spec = parse_spec(
        {
            "name": "quiet",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50}]},
        }
    )
    store.create_deployment(spec, initial_state(spec), now=0.0)
    store.close()
    good = str(models["good"])
    code, _, err = cli("replay", "ghost", "--to", good, "--store", store_url)
    assert code == 2 and "deployment 'ghost' does not exist" in err
    code, _, err = cli("replay", "quiet", "--to", good, "--store", store_url)
    assert code == 2 and "has no captured requests" in err and "--capture-every" in err
    code, _, err = cli("replay", "quiet", "--to", good, "--store", store_url, "--limit", "0")
    assert code == 2 and "--limit must be >= 1" in err


def test_replay_refuses_a_candidate_that_does_not_exist(
    tmp_path: Path, models: dict[str, Path], logged_model: Any, cli: Cli
) -> None:
    store_url = f"sqlite:///{tmp_path / 'rollouts.db'}"
    _serve_and_capture(store_url, models, logged_model, every=1, requests=3)
    code, _, err = cli("replay", "churn", "--to", str(tmp_path / "nothing-here"), "--store", store_url)
    assert code == 2 and "does not exist" in err
    code, _, err = cli("replay", "churn", "--to", "models:/", "--store", store_url)
    assert code == 2 and "Traceback" not in err


def test_a_running_server_writes_its_captures_without_waiting_for_shutdown(
    tmp_path: Path, models: dict[str, Path], logged_model: Any
) -> None:
    import time

    config = ServeConfig(
        "", admin_token=TOKEN, tick_s=0.05, follow_registry=False, allow_unverified=True, capture_every=1
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    handle = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    try:
        spec = {
            "name": "churn",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
        }
        assert httpx.put(
            f"{handle.url}/admin/deployments/churn", json=spec, headers=AUTH, timeout=60
        ).is_success
        body = {
            "dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}
        }
        for _ in range(5):
            assert httpx.post(f"{handle.url}/invocations", json=body).status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(store.captures("churn")) < 5:
            time.sleep(0.1)
        assert len(store.captures("churn")) == 5
        status = httpx.get(f"{handle.url}/admin/deployments/churn", headers=AUTH).json()
        assert status["capture"]["written"] == 5 and status["capture"]["pending"] == 0
    finally:
        handle.stop()
        store.close()
    reopened = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    assert len(reopened.captures("churn")) == 5  # the shutdown wrote nothing twice
    reopened.close()
