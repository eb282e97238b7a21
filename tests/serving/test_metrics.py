"""The metrics of several worker processes: the rollout gauges and queue depths reach /metrics
through prometheus-client's shared files, combined the way MULTIPROCESS_MODES says; and metrics
turned off (--no-metrics): nothing counted, /metrics a 404 that says why."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lockgate.serving import ServeConfig, build_app, resolve_source, run_server_in_thread
from lockgate.serving.metrics import MULTIPROCESS_MODES
from tests.support import TOKEN, start_server


def test_every_deployment_gauge_has_a_multiprocess_mode() -> None:
    from prometheus_client import Gauge

    assert set(MULTIPROCESS_MODES.values()) <= Gauge._MULTIPROC_MODES
    for name in ("lockgate_rollout_weight_ratio", "lockgate_rollout_phase", "lockgate_rollout_verdict"):
        assert MULTIPROCESS_MODES[name] == "mostrecent"  # the store's state, the same in every worker
    assert MULTIPROCESS_MODES["lockgate_drift_sampled"] == "livesum"


@pytest.mark.integration
def test_two_workers_export_the_rollout_gauges(tmp_path: Path, models: dict[str, Path]) -> None:
    spec = {
        "name": "churn",
        "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 30, "min_requests": 1_000_000}]},
    }
    spec_path = tmp_path / "canary.yaml"
    spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    args = [
        "--deployment",
        str(spec_path),
        "--store",
        f"sqlite:///{tmp_path / 'rollouts.db'}",
        "--workers",
        "2",
    ]
    args += ["--allow-unverified", "--allow-unsafe-load", "--no-follow-registry"]
    # two processes load two models at once on shared cores: give them time
    server = start_server(args, token=TOKEN, cwd=tmp_path, ready_timeout_s=300)
    proc, url = server.proc, server.url
    deadline = time.monotonic() + 300
    try:
        auth = {"authorization": f"Bearer {TOKEN}"}
        while True:  # each worker loads the deployment after it is ready; a worker still loading says 404
            started = httpx.post(f"{url}/admin/deployments/churn/start", json={}, headers=auth, timeout=30)
            if started.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert started.status_code == 200, started.text
        metrics = _scrape_until(url, 'lockgate_rollout_weight_ratio{deployment="churn",variant="next"} 0.3')
        assert 'lockgate_rollout_phase{deployment="churn",phase="stepping"} 1.0' in metrics
        assert 'lockgate_rollout_weight_ratio{deployment="churn",variant="stable"} 0.7' in metrics
        assert re.search(r'lockgate_variant_info\{deployment="churn",model="[^"]+",variant="next",', metrics)
        assert "lockgate_queue_depth{" in metrics  # the callback gauge, written once a second per worker
        assert 'lockgate_shadow_mirrored{deployment="churn"} 0.0' in metrics  # summed over workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _scrape_until(url: str, wanted: str) -> Any:
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        if wanted in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{wanted!r} never appeared in /metrics:\n{text}")


@pytest.mark.integration
def test_no_metrics_serves_requests_and_answers_metrics_with_a_404(logged_model: Any) -> None:
    source = resolve_source(str(logged_model.path), name="cancer")
    app = build_app(source, config=ServeConfig(str(logged_model.path), expose_metrics=False))
    with run_server_in_thread(app) as server:
        body = {
            "dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}
        }
        assert httpx.post(server.url + "/invocations", json=body).json() == {
            "predictions": [int(logged_model.labels[0])]
        }
        metrics = httpx.get(server.url + "/metrics")
        assert metrics.status_code == 404
        assert metrics.json()["error"] == "not_found" and "metrics are off" in metrics.json()["detail"]
    assert app.metrics.render().count(b"lockgate_requests_total{") == 0
