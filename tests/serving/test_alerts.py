"""Alerts from a real server: a rollback posts JSON to a real receiver on 127.0.0.1 and is audited."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.errors import UserError
from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread
from tests.support import AUTH, TOKEN

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]

Cli = Callable[..., tuple[int, str, str]]


def test_a_rollback_posts_an_alert_and_writes_it_to_the_audit_log(
    tmp_path: Path, models: dict[str, Path], receiver: tuple[str, queue.Queue[Any]], cli: Cli
) -> None:
    url, received = receiver
    config = ServeConfig(
        "", admin_token=TOKEN, tick_s=0.05, follow_registry=False, allow_unverified=True, alert_webhook=url
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    handle = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    try:
        base = handle.url
        spec = {
            "name": "churn",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
            "analysis": {
                "policy": "sequential",
                "guardrails": {"latency": None},
            },  # latency noise must not decide
        }
        assert (
            httpx.put(f"{base}/admin/deployments/churn", json=spec, headers=AUTH, timeout=60).status_code
            == 201
        )
        assert httpx.post(f"{base}/admin/deployments/churn/start", json={}, headers=AUTH).status_code == 200
        rolled = httpx.post(
            f"{base}/admin/deployments/churn/rollback",
            json={"actor": "alice", "reason": "p99 too high"},
            headers=AUTH,
        )
        assert rolled.status_code == 200 and rolled.json()["phase"] == "rolled_back"
        alert = received.get(timeout=10)
        assert alert["source"] == "lockgate" and alert["kind"] == "rollback"
        assert alert["deployment"] == "churn" and alert["actor"] == "alice"
        assert "p99 too high" in alert["reason"] and "rolled back by alice" in alert["text"]
        deadline = time.monotonic() + 10
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline and "alert" not in [e["action"] for e in events]:
            time.sleep(0.05)
            events = httpx.get(f"{base}/admin/deployments/churn/history", headers=AUTH).json()["events"]
        actions = [e["action"] for e in events]
        assert actions[-2:] == ["rollback", "alert"], actions
        rollback, audited = events[-2], events[-1]
        assert audited["numbers"]["event_id"] == rollback["id"] == alert["event_id"]
        assert "secret-path" not in audited["reason"]  # the audit log names the host only
        time.sleep(0.3)  # more ticks: the alert is sent once
        assert received.empty()
        metrics = httpx.get(f"{base}/metrics").text
        assert 'lockgate_alerts{outcome="sent"} 1.0' in metrics
        assert 'lockgate_alerts{outcome="failed"} 0.0' in metrics
        code, _, err = cli("monitor", "live", "churn", "--url", base, "--token", TOKEN)
        assert code == 2 and "has no live drift" in err and "--drift-reference" in err
    finally:
        handle.stop()
        store.close()


def test_a_webhook_that_is_not_a_url_is_refused_at_startup() -> None:
    with pytest.raises(UserError, match="--alert-webhook must be an http"):
        ServeConfig("", alert_webhook="hooks.example.com/lockgate")


def test_live_inputs_that_drift_show_in_the_status_and_raise_an_alert(
    tmp_path: Path,
    models: dict[str, Path],
    logged_model: Any,
    receiver: tuple[str, queue.Queue[Any]],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pandas as pd

    from lockgate.monitor.reference import reference_from_frame

    url, received = receiver
    config = ServeConfig(
        "", admin_token=TOKEN, tick_s=0.05, follow_registry=False, allow_unverified=True, alert_webhook=url
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    manager = build_deployments(config, store)
    train = pd.DataFrame(logged_model.features, columns=logged_model.columns)
    manager.drift_reference = reference_from_frame(train, dataset="cancer-train@1", digest="d1")
    manager.drift_sample_every = 2
    handle = run_server_in_thread(build_app(config=config, deployments=manager))
    try:
        base = handle.url
        spec = {
            "name": "churn",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50}]},
        }  # not started: every request is the baseline's
        assert (
            httpx.put(f"{base}/admin/deployments/churn", json=spec, headers=AUTH, timeout=60).status_code
            == 201
        )
        shifted = (logged_model.features[:50] * 3.0).tolist()  # every feature far from training
        body = {"dataframe_split": {"columns": logged_model.columns, "data": shifted}}
        with httpx.Client(timeout=30) as client:
            for _ in range(12):  # 6 sampled requests of 50 rows: 300 values a feature
                assert client.post(f"{base}/invocations", json=body).status_code == 200
        alert = received.get(timeout=10)
        assert alert["kind"] == "drift" and alert["deployment"] == "churn"
        assert "variant 'stable' drifted" in alert["reason"]
        deadline = time.monotonic() + 10
        drift = httpx.get(f"{base}/admin/deployments/churn", headers=AUTH).json()["drift"]
        while drift["sampled"] < 6 and time.monotonic() < deadline:  # the last samples fold on a later tick
            time.sleep(0.05)
            drift = httpx.get(f"{base}/admin/deployments/churn", headers=AUTH).json()["drift"]
        assert drift["reference"]["dataset"] == "cancer-train@1"
        assert drift["seen"] == 12 and drift["sampled"] == 6 and drift["dropped"] == 0
        stable = drift["variants"]["stable"]
        assert len(stable["drifted"]) > 20
        feature = stable["features"][logged_model.columns[0]]
        assert feature["status"] == "drift" and feature["psi"] > 0.2 and feature["live_count"] == 300
        actions = [
            e["action"]
            for e in httpx.get(f"{base}/admin/deployments/churn/history", headers=AUTH).json()["events"]
        ]
        assert "drift" in actions
        monkeypatch.setenv("COLUMNS", "160")
        code, out, _ = cli("monitor", "live", "churn", "--url", base, "--token", TOKEN)
        assert code == 1, out
        assert "churn/stable: live inputs against cancer-train@1" in out
        assert f"stable: {len(stable['drifted'])} feature(s) drifted" in out
    finally:
        handle.stop()
        store.close()


def test_a_sample_ratio_halt_posts_an_srm_alert(
    tmp_path: Path, models: dict[str, Path], logged_model: Any, receiver: tuple[str, queue.Queue[Any]]
) -> None:
    url, received = receiver
    config = ServeConfig(
        "", admin_token=TOKEN, tick_s=0.05, follow_registry=False, allow_unverified=True, alert_webhook=url
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    handle = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    try:
        base = handle.url
        spec = {
            "name": "churn",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
            "analysis": {
                "policy": "sequential",
                "guardrails": {"latency": None},
            },  # latency noise must not decide
        }
        assert (
            httpx.put(f"{base}/admin/deployments/churn", json=spec, headers=AUTH, timeout=60).status_code
            == 201
        )
        assert httpx.post(f"{base}/admin/deployments/churn/start", json={}, headers=AUTH).status_code == 200
        row = {
            "dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}
        }
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=30) as client:
            # one routing key: every request lands on one variant of a 50/50 split, a broken ratio
            while received.empty() and time.monotonic() < deadline:
                for _ in range(50):
                    client.post(f"{base}/invocations", json=row, headers={"x-routing-key": "one-user"})
        alert = received.get(timeout=10)
        assert alert["kind"] == "srm_halt" and alert["to_phase"] == "halted"
        assert (
            "sample-ratio mismatch" in alert["reason"] and "halted (sample-ratio mismatch)" in alert["text"]
        )
        assert alert["numbers"]["srm_p"] <= 0.001
    finally:
        handle.stop()
        store.close()
