"""Rollouts on the real server beyond what every backend shares: the admin API and its token,
the registry alias, the sequential policy on error rates, field routing, metrics.

The strategies end to end (canary, rollback, shadow, blue-green, A/B stickiness, rolling, manual
commands) are ``tests/serving/test_conformance.py``, run against every backend. Real models saved
as MLflow model folders: the logistic regression (the baseline), a weakly fitted one (a different,
worse candidate), and pyfuncs that fail on some of their calls (broken candidates).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.deployment import DeploymentManager, compare_outputs
from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread
from tests.serving.conformance import (
    AUTH,
    TOKEN,
    command,
    deploy,
    embedded_gateway,
    history_of,
    send,
    spec_for,
    status_of,
)

pytestmark = [
    pytest.mark.integration,
    # MLflow asks the broken pyfunc for type hints when it first predicts; it needs none
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Any]:
    """A real server with the admin API on, a SQLite rollout store and a fast controller."""
    with embedded_gateway(tmp_path) as handle:
        yield handle


def test_a_live_rollout_refuses_a_new_spec(gateway: Any, models: dict[str, Path]) -> None:
    url = gateway.url
    strategy = {"type": "canary", "steps": [{"weight_percent": 10, "min_requests": 1_000_000}]}
    deploy(url, spec_for("busy", models, "weak", strategy))
    command(url, "busy", "start")
    again = httpx.put(
        f"{url}/admin/deployments/busy", json=spec_for("busy", models, "flaky", strategy), headers=AUTH
    )
    assert again.status_code == 409
    assert "rollback busy" in again.json()["detail"]
    assert status_of(url, "busy")["variants"]["next"]["model_uri"].endswith("weak")


def test_the_admin_api_needs_the_token(gateway: Any, models: dict[str, Path]) -> None:
    url = gateway.url
    spec = spec_for("guarded", models, "weak", {"type": "direct"})
    assert httpx.put(f"{url}/admin/deployments/guarded", json=spec).status_code == 401
    wrong = {"authorization": "Bearer not-the-token"}
    assert httpx.put(f"{url}/admin/deployments/guarded", json=spec, headers=wrong).status_code == 403
    assert httpx.get(f"{url}/admin/deployments", headers={"authorization": "Basic abc"}).status_code == 401
    assert httpx.get(f"{url}/admin/deployments", headers=AUTH).json() == {"deployments": []}


def test_admin_bad_input_is_a_clear_4xx(gateway: Any, models: dict[str, Path]) -> None:
    url = gateway.url
    bad = spec_for("typo", models, "weak", {"type": "canary", "steps": [{"weight_percent": 120}]})
    response = httpx.put(f"{url}/admin/deployments/typo", json=bad, headers=AUTH)
    assert response.status_code == 422
    assert "strategy.steps[0].weight_percent" in response.json()["detail"]
    missing = spec_for("ghost", {**models, "weak": Path("/nonexistent/model")}, "weak", {"type": "direct"})
    response = httpx.put(f"{url}/admin/deployments/ghost", json=missing, headers=AUTH)
    assert response.status_code == 404
    assert "variant 'next'" in response.json()["detail"]
    assert httpx.post(f"{url}/admin/deployments/nope/start", headers=AUTH).status_code == 404
    assert httpx.post(f"{url}/admin/deployments/nope/explode", headers=AUTH).status_code == 404
    response = httpx.put(
        f"{url}/admin/deployments/x", content=b"{nope", headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert httpx.delete(f"{url}/admin/deployments", headers=AUTH).status_code == 405
    # and the server keeps serving
    assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_the_admin_api_is_off_without_a_token(logged_model: Any) -> None:
    from lockgate.serving.source import resolve_source

    app = build_app(resolve_source(str(logged_model.path), name="cancer"))
    with run_server_in_thread(app) as handle:
        response = httpx.get(f"{handle.url}/admin/deployments", headers=AUTH)
        assert response.status_code == 404
        assert "LOCKGATE_ADMIN_TOKEN" in response.json()["detail"]


def test_compare_outputs_by_their_form() -> None:
    from lockgate.rollout.shadow import ShadowComparison

    comparison = ShadowComparison()
    compare_outputs(comparison, {"predictions": np.array([1, 0])}, {"predictions": np.array([1, 1])}, None)
    assert comparison.labels_compared == 2 and comparison.agreement == 0.5
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
    compare_outputs(comparison, {"embeddings": vectors}, {"embeddings": vectors}, "embeddings")
    assert comparison.cosine.count == 2 and comparison.min_cosine == pytest.approx(1.0)
    compare_outputs(comparison, {"score": np.array([0.5])}, {"score": np.array([0.7])}, "score")
    assert comparison.max_abs_difference == pytest.approx(0.2)


def test_the_manager_is_a_rollout_target() -> None:
    from lockgate.rollout.runner import RolloutTarget

    manager: RolloutTarget = DeploymentManager(
        SqlStore("sqlite://"),
        load=lambda *_: None,
        policy_for=lambda _: None,  # type: ignore[arg-type,return-value]
    )
    assert manager.snapshot("none") == {}


def test_promotion_and_rollback_move_the_champion_alias(
    tmp_path: Path, logged_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged_model.tracking_uri)
    client = MlflowClient(logged_model.tracking_uri, registry_uri=logged_model.tracking_uri)
    client.set_registered_model_alias("cancer", "champion", "1")
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, allow_unverified=True)
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    spec = {
        "name": "registry",
        "variants": {"stable": "models:/cancer/1", "next": "models:/cancer/2"},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 10, "min_requests": 1_000_000}]},
    }
    with run_server_in_thread(
        build_app(config=config, deployments=build_deployments(config, store))
    ) as handle:
        url = handle.url
        deploy(url, spec)
        assert status_of(url, "registry")["variants"]["next"]["model_version"] == "2"
        command(url, "registry", "start")
        answers = send(url, "registry", logged_model, 100)
        # both variants serve the registered model 'cancer': only x-lockgate-variant tells them apart
        assert {r.headers["x-model-name"] for r in answers} == {"cancer"}
        assert {(r.headers["x-lockgate-variant"], r.headers["x-model-version"]) for r in answers} == {
            ("stable", "1"),
            ("next", "2"),
        }
        assert command(url, "registry", "promote").json()["phase"] == "promoted"
        send(url, "registry", logged_model, 20)
        served = wait_for_counts(url, "registry")
        assert str(client.get_model_version_by_alias("cancer", "champion").version) == "2"
        moved = history_of(url, "registry")[-1]
        assert moved["action"] == "champion"
        assert moved["numbers"] == {"from_version": 1.0, "to_version": 2.0}
        # a new rollout of the old version, rolled back: the champion goes back to where it was
        back = {**spec, "variants": {"stable": "models:/cancer/2", "next": "models:/cancer/1"}}
        httpx.put(f"{url}/admin/deployments/registry", json=back, headers=AUTH, timeout=60)
        # counters belong to (variant, model): neither variant's new model has served anything
        redeployed = status_of(url, "registry")["variants"]
        assert served["next"] >= 20
        assert (redeployed["stable"]["requests"], redeployed["next"]["requests"]) == (0, 0), redeployed
        command(url, "registry", "start")
        command(url, "registry", "rollback", reason="not better")
        assert str(client.get_model_version_by_alias("cancer", "champion").version) == "2"
        kept = history_of(url, "registry")[-1]
        assert kept["action"] == "champion" and "rollback" in kept["reason"]
        assert "champion alias stays at version 2" in kept["reason"], kept
    client.set_registered_model_alias("cancer", "champion", "1")
    store.close()


def wait_for_counts(url: str, name: str, timeout_s: float = 10.0) -> dict[str, int]:
    """Each variant's requests once the store holds every answer sent so far."""
    deadline = time.monotonic() + timeout_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = {n: v["requests"] for n, v in status_of(url, name)["variants"].items()}
        if sum(counts.values()) >= 120:
            break
        time.sleep(0.05)
    return counts


def test_twice_the_baselines_error_rate_is_rolled_back_by_the_sequential_policy(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    """Baseline fails 5% of calls, candidate 10%: the anytime-valid test rolls it back by itself."""
    from concurrent.futures import ThreadPoolExecutor

    url = gateway.url
    spec = {
        "name": "twice",
        "variants": {"stable": str(models["flaky5"]), "next": str(models["flaky10"])},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 10**9}]},
        # about the error rate: latency noise on a busy machine must not decide it first
        "analysis": {"policy": "sequential", "alpha": 0.05, "guardrails": {"latency": None}},
    }
    deploy(url, spec)
    command(url, "twice", "start")
    deadline = time.monotonic() + 90
    with ThreadPoolExecutor(4) as pool:
        while status_of(url, "twice")["phase"] == "stepping" and time.monotonic() < deadline:
            list(pool.map(lambda _: send(url, "twice", logged_model, 100), range(4)))
    status = status_of(url, "twice")
    assert status["phase"] == "rolled_back", status
    event = history_of(url, "twice")[-1]
    assert event["action"] == "rollback" and event["actor"] == "controller"
    assert "error" in event["reason"]
    numbers = event["numbers"]
    assert numbers["errors_worse_ci_low"] > 0 and numbers["alpha_per_guardrail"] == 0.05
    assert numbers["errors_candidate"] > numbers["errors_baseline"]
    assert numbers["n_candidate"] > 0 and numbers["srm_expected_share"] == 0.5


def test_routing_by_an_input_field_or_another_header_is_sticky(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "ab", "split_percent": 50, "min_requests": 10**9}
    field = logged_model.columns[0]
    by_field = {
        **spec_for("byfield", models, "weak", strategy),
        "routing_key": {"source": "field", "name": field},
    }
    deploy(url, by_field)
    command(url, "byfield", "start")

    def answer(row: int, as_v2: bool = False) -> str:
        values = logged_model.features[row].tolist()
        if as_v2:
            body = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": values}]}
            response = httpx.post(f"{url}/v2/models/byfield/infer", json=body)
        else:
            split = {"dataframe_split": {"columns": logged_model.columns, "data": [values]}}
            response = httpx.post(f"{url}/invocations", json=split)
        assert response.status_code == 200, response.text
        return str(response.headers["x-model-name"])

    # the same field value always meets the same variant, whatever the protocol
    first = [answer(row) for row in range(40)]
    assert [answer(row, as_v2=True) for row in range(40)] == first
    assert set(first) == {"stable", "next"}

    by_header = {**spec_for("byheader", models, "weak", strategy), "routing_key": {"name": "x-user"}}
    deploy(url, by_header)
    command(url, "byheader", "start")
    body = {
        "inputs": [
            {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": logged_model.features[0].tolist()}
        ]
    }

    def by_user(user: str) -> str:
        response = httpx.post(f"{url}/v2/models/byheader/infer", json=body, headers={"x-user": user})
        return str(response.headers["x-model-name"])

    users = [f"u{i}" for i in range(40)]
    seen = [by_user(u) for u in users]
    assert [by_user(u) for u in users] == seen and set(seen) == {"stable", "next"}


def test_field_routing_keys_are_the_same_for_equal_numbers() -> None:
    import pandas as pd

    from lockgate.serving.deployment import field_routing_key
    from lockgate.serving.signature import FieldSpec, Signature

    sig = Signature("columns", (FieldSpec("user", "float64"), FieldSpec("x", "float64")))
    assert field_routing_key(np.array([[42.0, 1.5]]), sig, "user") == "42"
    assert field_routing_key(np.array([[42.5, 1.5]]), sig, "user") == "42.5"
    assert field_routing_key(pd.DataFrame({"user": ["ann"], "x": [1.0]}), sig, "user") == "ann"
    assert field_routing_key(np.array([[1.0, 2.0]]), sig, "missing") is None


def test_metrics_show_the_rollout_and_the_shadow(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "shadow", "fraction": 1.0, "min_requests": 10**9, "min_duration_s": 0}
    deploy(url, spec_for("watched", models, "weak", strategy))
    command(url, "watched", "start")
    send(url, "watched", logged_model, 40)
    _until_metrics = time.monotonic() + 10
    text = httpx.get(f"{url}/metrics").text
    while 'lockgate_shadow_mirrored{deployment="watched"} 0.0' in text and time.monotonic() < _until_metrics:
        time.sleep(0.05)
        text = httpx.get(f"{url}/metrics").text
    assert 'lockgate_rollout_weight_ratio{deployment="watched",variant="stable"} 1.0' in text
    assert 'lockgate_rollout_phase{deployment="watched",phase="shadowing"} 1.0' in text
    assert 'lockgate_rollout_phase{deployment="watched",phase="pending"} 0.0' in text
    assert 'lockgate_shadow_agreement_ratio{deployment="watched"}' in text
    assert 'lockgate_shadow_dropped{deployment="watched"} 0.0' in text


def test_a_pause_step_waits_on_the_server_until_rollout_promote(
    gateway: Any, models: dict[str, Path]
) -> None:
    url = gateway.url
    strategy = {
        "type": "canary",
        "steps": [{"weight_percent": 10}, {"pause": {}}, {"weight_percent": 50, "min_requests": 10**9}],
    }
    spec = {**spec_for("approval", models, "weak", strategy), "analysis": {"policy": "threshold"}}
    deploy(url, spec)
    command(url, "approval", "start")
    deadline = time.monotonic() + 10
    while status_of(url, "approval")["stage"] != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few controller ticks: nothing moves it on
    waiting = status_of(url, "approval")
    assert (waiting["phase"], waiting["stage"]) == ("stepping", 2), waiting
    assert "waiting for approval: lockgate rollout promote approval" in waiting["reason"]
    assert waiting["variants"]["next"]["weight_percent"] == 10.0
    approved = command(url, "approval", "promote", reason="dashboard looks fine").json()
    assert (approved["phase"], approved["stage"]) == ("stepping", 3)
    assert approved["variants"]["next"]["weight_percent"] == 50.0
    event = history_of(url, "approval")[-1]
    assert (event["action"], event["reason"]) == ("approve", "dashboard looks fine")
