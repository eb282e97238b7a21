"""Rollouts on the real server: every strategy end to end over HTTP, the admin API and its token.

Three real models saved as MLflow model folders: the logistic regression (the baseline), a
one-split decision tree (a different, worse candidate), and a pyfunc that fails on half its calls
(a broken candidate). Each test deploys through ``PUT /admin/deployments/{name}`` and drives
traffic with routing keys; the controller ticks every 50 ms.
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

pytestmark = [
    pytest.mark.integration,
    # MLflow asks the broken pyfunc for type hints when it first predicts; it needs none
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]

TOKEN = "s3cret-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Any]:
    """A real server with the admin API on, a SQLite rollout store and a fast controller."""
    # the broken candidates are pickled pyfuncs made by the fixtures: trusted, so loaded unverified
    config = ServeConfig(
        "",
        admin_token=TOKEN,
        tick_s=0.05,
        follow_registry=False,
        allow_unverified=True,
        allow_unsafe_load=True,
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    manager = build_deployments(config, store)
    handle = run_server_in_thread(build_app(config=config, deployments=manager))
    yield handle
    handle.stop()
    store.close()


# These tests are about the rollout's mechanics; the sequential policy judges errors as usual, but
# its latency guardrail is widened so that a busy machine's latency noise cannot decide a test.
MECHANICS = {"policy": "sequential", "latency_tolerance": 100.0}


def _spec(name: str, models: dict[str, Path], candidate: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "variants": {"stable": str(models["good"]), "next": str(models[candidate])},
        "baseline": "stable",
        "candidate": "next",
        "strategy": strategy,
        "analysis": MECHANICS,
    }


def _deploy(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = httpx.put(f"{url}/admin/deployments/{spec['name']}", json=spec, headers=AUTH, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def _command(url: str, name: str, verb: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/admin/deployments/{name}/{verb}", json=body, headers=AUTH, timeout=30)


def _status(url: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/admin/deployments/{name}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _traffic(url: str, name: str, logged_model: Any, n: int, *, keyed: bool = True) -> list[httpx.Response]:
    row = {"dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}}
    v2 = {
        "inputs": [
            {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": logged_model.features[0].tolist()}
        ]
    }
    out = []
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            headers = {"x-routing-key": f"user-{i}"} if keyed else {}
            if i % 2:
                out.append(client.post(f"{url}/v2/models/{name}/infer", json=v2, headers=headers))
            else:
                out.append(client.post(f"{url}/invocations", json=row, headers=headers))
    return out


def _wait_for(
    url: str, name: str, phases: set[str], traffic: Any = None, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Poll the status (sending a little traffic each time, given a model) until a phase."""
    deadline = time.monotonic() + timeout_s
    status = _status(url, name)
    while status["phase"] not in phases and time.monotonic() < deadline:
        if traffic is not None:
            _traffic(url, name, traffic, 10)
        time.sleep(0.05)
        status = _status(url, name)
    assert status["phase"] in phases, status
    return status


def _history(url: str, name: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/admin/deployments/{name}/history", headers=AUTH)
    assert response.status_code == 200
    return list(response.json()["events"])


def _paths(responses: list[httpx.Response]) -> set[str]:
    assert all("x-model-name" in r.headers for r in responses), [r.text for r in responses][:3]
    return {r.headers["x-model-name"] for r in responses}


def test_a_canary_steps_up_and_promotes(gateway: Any, models: dict[str, Path], logged_model: Any) -> None:
    url = gateway.url
    strategy = {
        "type": "canary",
        "steps": [{"weight_percent": 20, "min_requests": 20}, {"weight_percent": 60, "min_requests": 20}],
    }
    created = _deploy(url, _spec("churn", models, "weak", strategy))
    assert created["phase"] == "pending"
    assert created["variants"]["stable"]["weight_percent"] == 100.0
    # before the start every request is the baseline's
    assert _paths(_traffic(url, "churn", logged_model, 20)) == {"stable"}
    assert _command(url, "churn", "start", actor="alice", reason="ship the weak").status_code == 200
    assert _status(url, "churn")["variants"]["next"]["weight_percent"] == 20.0
    responses = _traffic(url, "churn", logged_model, 400)
    assert all(r.status_code == 200 for r in responses)
    assert _paths(responses) == {"stable", "next"}
    status = _wait_for(url, "churn", {"promoted"}, logged_model)
    assert status["variants"]["next"]["weight_percent"] == 100.0
    assert status["variants"]["next"]["requests"] > 0
    events = _history(url, "churn")
    assert [e["action"] for e in events][:3] == ["deploy", "start", "advance"]
    assert events[1]["actor"] == "alice" and events[1]["reason"] == "ship the weak"
    assert events[-1]["action"] == "promote" and events[-1]["numbers"]["candidate_requests"] > 0
    after = _traffic(url, "churn", logged_model, 10)
    assert _paths(after) == {"next"}


def test_a_failing_candidate_is_rolled_back_on_its_own(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 100_000}]}
    _deploy(url, _spec("fraud", models, "flaky", strategy))
    _command(url, "fraud", "start")
    deadline = time.monotonic() + 30
    while _status(url, "fraud")["phase"] == "stepping" and time.monotonic() < deadline:
        responses = _traffic(url, "fraud", logged_model, 100)
        assert {r.status_code for r in responses} <= {200, 500}
    status = _status(url, "fraud")
    assert status["phase"] == "rolled_back"
    assert status["reason"].startswith("policy: ")
    rollback = _history(url, "fraud")[-1]
    assert rollback["action"] == "rollback" and rollback["actor"] == "controller"
    assert rollback["numbers"]["candidate_errors"] > 0
    assert rollback["numbers"]["baseline_errors"] == 0
    # every request is the baseline's again, and succeeds
    after = _traffic(url, "fraud", logged_model, 50)
    assert all(r.status_code == 200 for r in after) and _paths(after) == {"stable"}


def test_a_shadow_is_compared_and_never_answers(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "shadow", "fraction": 1.0, "min_requests": 60, "min_duration_s": 0}
    _deploy(url, _spec("mirror", models, "weak", strategy))
    _command(url, "mirror", "start")
    responses = _traffic(url, "mirror", logged_model, 120)
    assert _paths(responses) == {"stable"}  # the shadow's answers are never returned
    status = _wait_for(url, "mirror", {"completed"}, logged_model)
    shadow = status["shadow"]
    assert shadow["mirrored"] > 0
    assert shadow["labels_compared"] > 0
    # the two models' own answers on the row sent decide the agreement
    import mlflow.pyfunc
    import pandas as pd

    row = pd.DataFrame(logged_model.features[:1], columns=logged_model.columns)
    weak = mlflow.pyfunc.load_model(str(models["weak"])).get_raw_model()
    assert shadow["agreement"] == float(weak.predict(row)[0] == logged_model.model.predict(row)[0])
    assert status["variants"]["stable"]["weight_percent"] == 100.0


def test_blue_green_warms_switches_and_keeps_the_old_warm(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {
        "type": "blue_green",
        "warmup": {"shadow_fraction": 1.0, "min_requests": 20, "min_duration_s": 0},
        "bake_s": 0,
        "bake_min_requests": 20,
    }
    _deploy(url, _spec("bg", models, "weak", strategy))
    _command(url, "bg", "start")
    assert _status(url, "bg")["phase"] == "warming"
    warming = _traffic(url, "bg", logged_model, 10)  # fewer than the warm-up needs
    assert _paths(warming) == {"stable"}
    assert _status(url, "bg")["shadow"]["fraction"] == 1.0
    _wait_for(url, "bg", {"baking", "promoted"}, logged_model)
    baking = _traffic(url, "bg", logged_model, 30)
    assert _paths(baking) == {"next"}  # all at once
    _wait_for(url, "bg", {"promoted"}, logged_model)
    # instant switch-back is a rollback of a new rollout; the old colour is still loaded
    assert [e["action"] for e in _history(url, "bg")][-1] == "promote"


def test_ab_split_is_sticky_per_routing_key(gateway: Any, models: dict[str, Path], logged_model: Any) -> None:
    url = gateway.url
    strategy = {"type": "ab", "split_percent": 50, "min_requests": 1_000_000}
    _deploy(url, _spec("exp", models, "weak", strategy))
    _command(url, "exp", "start")
    first = _traffic(url, "exp", logged_model, 200)
    second = _traffic(url, "exp", logged_model, 200)
    assert [r.headers["x-model-name"] for r in first] == [r.headers["x-model-name"] for r in second]
    share = sum(r.headers["x-model-name"] == "next" for r in first) / len(first)
    assert 0.35 < share < 0.65
    assert _status(url, "exp")["phase"] == "experimenting"


def test_rolling_replaces_replicas_a_batch_at_a_time(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "rolling", "replicas": 4, "batch_size": 2, "min_duration_s": 0, "min_requests": 10}
    _deploy(url, _spec("roll", models, "weak", strategy))
    _command(url, "roll", "start")
    assert _status(url, "roll")["variants"]["next"]["weight_percent"] == 50.0
    status = _wait_for(url, "roll", {"promoted"}, logged_model)
    assert status["variants"]["next"]["weight_percent"] == 100.0


def test_manual_commands_take_effect_at_the_next_request(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]}
    _deploy(url, _spec("manual", models, "weak", strategy))
    _command(url, "manual", "start")
    assert _command(url, "manual", "pause", reason="looking at a graph").json()["phase"] == "paused"
    assert _paths(_traffic(url, "manual", logged_model, 60)) == {"stable", "next"}  # weights stay
    assert _command(url, "manual", "resume").json()["phase"] == "stepping"
    started = time.perf_counter()
    assert _command(url, "manual", "rollback", reason="by hand").json()["phase"] == "rolled_back"
    assert _paths(_traffic(url, "manual", logged_model, 40)) == {"stable"}
    assert time.perf_counter() - started < 5  # well under a second on a quiet machine
    # an illegal move is a 409 naming the phases, and nothing changes
    illegal = _command(url, "manual", "resume")
    assert illegal.status_code == 409
    assert "rolled_back" in illegal.json()["detail"]
    # a finished deployment takes a new spec: a new rollout, this time promoted by hand
    response = httpx.put(
        f"{url}/admin/deployments/manual",
        json=_spec("manual", models, "weak", strategy),
        headers=AUTH,
        timeout=60,
    )
    assert response.status_code == 200 and response.json()["phase"] == "pending"
    _command(url, "manual", "start")
    assert _command(url, "manual", "promote", actor="bob").json()["phase"] == "promoted"
    assert _paths(_traffic(url, "manual", logged_model, 20)) == {"next"}
    actors = [(e["action"], e["actor"]) for e in _history(url, "manual")]
    assert ("promote", "bob") in actors and ("rollback", "admin") in actors


def test_a_live_rollout_refuses_a_new_spec(gateway: Any, models: dict[str, Path]) -> None:
    url = gateway.url
    strategy = {"type": "canary", "steps": [{"weight_percent": 10, "min_requests": 1_000_000}]}
    _deploy(url, _spec("busy", models, "weak", strategy))
    _command(url, "busy", "start")
    again = httpx.put(
        f"{url}/admin/deployments/busy", json=_spec("busy", models, "flaky", strategy), headers=AUTH
    )
    assert again.status_code == 409
    assert "rollback busy" in again.json()["detail"]
    assert _status(url, "busy")["variants"]["next"]["model_uri"].endswith("weak")


def test_the_admin_api_needs_the_token(gateway: Any, models: dict[str, Path]) -> None:
    url = gateway.url
    spec = _spec("guarded", models, "weak", {"type": "direct"})
    assert httpx.put(f"{url}/admin/deployments/guarded", json=spec).status_code == 401
    wrong = {"authorization": "Bearer not-the-token"}
    assert httpx.put(f"{url}/admin/deployments/guarded", json=spec, headers=wrong).status_code == 403
    assert httpx.get(f"{url}/admin/deployments", headers={"authorization": "Basic abc"}).status_code == 401
    assert httpx.get(f"{url}/admin/deployments", headers=AUTH).json() == {"deployments": []}


def test_admin_bad_input_is_a_clear_4xx(gateway: Any, models: dict[str, Path]) -> None:
    url = gateway.url
    bad = _spec("typo", models, "weak", {"type": "canary", "steps": [{"weight_percent": 120}]})
    response = httpx.put(f"{url}/admin/deployments/typo", json=bad, headers=AUTH)
    assert response.status_code == 422
    assert "strategy.steps[0].weight_percent" in response.json()["detail"]
    missing = _spec("ghost", {**models, "weak": Path("/nonexistent/model")}, "weak", {"type": "direct"})
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
        _deploy(url, spec)
        assert _status(url, "registry")["variants"]["next"]["model_version"] == "2"
        _command(url, "registry", "start")
        assert _command(url, "registry", "promote").json()["phase"] == "promoted"
        assert str(client.get_model_version_by_alias("cancer", "champion").version) == "2"
        moved = _history(url, "registry")[-1]
        assert moved["action"] == "champion"
        assert moved["numbers"] == {"from_version": 1.0, "to_version": 2.0}
        # a new rollout of the old version, rolled back: the champion goes back to where it was
        back = {**spec, "variants": {"stable": "models:/cancer/2", "next": "models:/cancer/1"}}
        httpx.put(f"{url}/admin/deployments/registry", json=back, headers=AUTH, timeout=60)
        _command(url, "registry", "start")
        _command(url, "registry", "rollback", reason="not better")
        assert str(client.get_model_version_by_alias("cancer", "champion").version) == "2"
        assert "rollback" in _history(url, "registry")[-1]["reason"]
    client.set_registered_model_alias("cancer", "champion", "1")
    store.close()


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
        "analysis": {"policy": "sequential", "alpha": 0.05, "max_samples": None, "latency_tolerance": 100.0},
    }
    _deploy(url, spec)
    _command(url, "twice", "start")
    deadline = time.monotonic() + 90
    with ThreadPoolExecutor(4) as pool:
        while _status(url, "twice")["phase"] == "stepping" and time.monotonic() < deadline:
            list(pool.map(lambda _: _traffic(url, "twice", logged_model, 100), range(4)))
    status = _status(url, "twice")
    assert status["phase"] == "rolled_back", status
    event = _history(url, "twice")[-1]
    assert event["action"] == "rollback" and event["actor"] == "controller"
    assert "error" in event["reason"]
    numbers = event["numbers"]
    assert numbers["error_p"] < numbers["alpha_per_guardrail"]
    assert numbers["error_rate_candidate"] > numbers["error_rate_baseline"]
    assert numbers["n_candidate"] > 0 and numbers["expected_split"] == 0.5


def test_routing_by_an_input_field_or_another_header_is_sticky(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "ab", "split_percent": 50, "min_requests": 10**9}
    field = logged_model.columns[0]
    by_field = {
        **_spec("byfield", models, "weak", strategy),
        "routing_key": {"source": "field", "name": field},
    }
    _deploy(url, by_field)
    _command(url, "byfield", "start")

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

    by_header = {**_spec("byheader", models, "weak", strategy), "routing_key": {"name": "x-user"}}
    _deploy(url, by_header)
    _command(url, "byheader", "start")
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
    _deploy(url, _spec("watched", models, "weak", strategy))
    _command(url, "watched", "start")
    _traffic(url, "watched", logged_model, 40)
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
