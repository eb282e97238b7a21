"""The rollout conformance tests: every strategy end to end over HTTP, on every serving backend.

Each test runs against the embedded backend (every variant in one process) and the Ray Serve
backend (an ingress deployment with lockgate's app, router and controller; each variant a Ray
Serve application called by handle), on a local Ray started once for the session. The same
requests, the same assertions: a backend that behaves differently fails here.

Real models saved as MLflow model folders: the logistic regression (the baseline), a weakly
fitted one (a different, worse candidate), and a pyfunc that fails on half its calls (a broken
candidate). Without Ray installed the Ray half skips, saying how to install it.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.serving.conformance import (
    AUTH,
    command,
    deploy,
    embedded_gateway,
    gateway_config,
    history_of,
    paths_of,
    send,
    spec_for,
    status_of,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    # MLflow asks the broken pyfunc for type hints when it first predicts; it needs none
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]

RAY_MISSING = "Ray Serve is not installed: pip install 'lockgate[ray]' (make test installs it)"
_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def ray_serve_port() -> Iterator[int]:
    """A local Ray with Serve's proxy on a free loopback port: started once for the session."""
    pytest.importorskip("ray.serve", reason=RAY_MISSING)
    from lockgate.serving.ray_serve import RayOptions, ray_api, serve, start_ray

    start_ray(RayOptions(num_cpus=4))  # logical CPUs: replicas reserve a quarter each
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()
    ray_api.shutdown()


@contextmanager
def ray_gateway(port: int, tmp_path: Path, **overrides: Any) -> Iterator[Any]:
    """The Ray Serve backend: lockgate's ingress application, its variants made on deploy."""
    from lockgate.serving.ray_serve import RayOptions, ingress_app, serve

    prefix = f"lockgate-{next(_prefixes)}"  # each test's variants get their own applications
    config = gateway_config(port=port, store_url=f"sqlite:///{tmp_path / 'rollouts.db'}", **overrides)
    serve.run(ingress_app(config, RayOptions(prefix=prefix)), name=prefix, route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/v2/health/ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the Ray ingress was not ready after 60 s"
        time.sleep(0.1)
    try:
        yield SimpleNamespace(url=url)
    finally:
        serve.delete(prefix)
        for name in list(serve.status().applications):
            if name.startswith(f"{prefix}."):
                serve.delete(name)


@pytest.fixture(params=["embedded", "ray"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A real server with the admin API on, a SQLite rollout store and a fast controller."""
    if request.param == "embedded":
        with embedded_gateway(tmp_path) as handle:
            yield handle
        return
    port = request.getfixturevalue("ray_serve_port")
    with ray_gateway(port, tmp_path) as handle:
        yield handle


@pytest.fixture(params=["embedded", "ray"])
def retiring_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A gateway that unloads a variant 1 s after it lost its traffic (30 s by default)."""
    if request.param == "embedded":
        with embedded_gateway(tmp_path, retire_grace_s=1.0) as handle:
            yield handle
        return
    port = request.getfixturevalue("ray_serve_port")
    with ray_gateway(port, tmp_path, retire_grace_s=1.0) as handle:
        yield handle


def _until(check: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def test_a_canary_steps_up_and_promotes(gateway: Any, models: dict[str, Path], logged_model: Any) -> None:
    url = gateway.url
    strategy = {
        "type": "canary",
        "steps": [{"weight_percent": 20, "min_requests": 20}, {"weight_percent": 60, "min_requests": 20}],
    }
    created = deploy(url, spec_for("churn", models, "weak", strategy))
    assert created["phase"] == "pending"
    assert created["variants"]["stable"]["weight_percent"] == 100.0
    # before the start every request is the baseline's
    assert paths_of(send(url, "churn", logged_model, 20)) == {"stable"}
    assert command(url, "churn", "start", actor="alice", reason="ship the weak").status_code == 200
    assert status_of(url, "churn")["variants"]["next"]["weight_percent"] == 20.0
    responses = send(url, "churn", logged_model, 400)
    assert all(r.status_code == 200 for r in responses)
    assert paths_of(responses) == {"stable", "next"}
    status = wait_for(url, "churn", {"promoted"}, logged_model)
    assert status["variants"]["next"]["weight_percent"] == 100.0
    assert status["variants"]["next"]["requests"] > 0
    events = history_of(url, "churn")
    assert [e["action"] for e in events][:3] == ["deploy", "start", "advance"]
    assert events[1]["actor"] == "alice" and events[1]["reason"] == "ship the weak"
    assert events[-1]["action"] == "promote" and events[-1]["numbers"]["candidate_requests"] > 0
    after = send(url, "churn", logged_model, 10)
    assert paths_of(after) == {"next"}


def test_a_failing_candidate_is_rolled_back_on_its_own(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 100_000}]}
    deploy(url, spec_for("fraud", models, "flaky", strategy))
    command(url, "fraud", "start")
    deadline = time.monotonic() + 30
    while status_of(url, "fraud")["phase"] == "stepping" and time.monotonic() < deadline:
        responses = send(url, "fraud", logged_model, 100)
        assert {r.status_code for r in responses} <= {200, 500}
    status = status_of(url, "fraud")
    assert status["phase"] == "rolled_back"
    assert status["reason"].startswith("policy: ")
    rollback = history_of(url, "fraud")[-1]
    assert rollback["action"] == "rollback" and rollback["actor"] == "controller"
    assert rollback["numbers"]["candidate_errors"] > 0
    assert rollback["numbers"]["baseline_errors"] == 0
    # every request is the baseline's again, and succeeds
    after = send(url, "fraud", logged_model, 50)
    assert all(r.status_code == 200 for r in after) and paths_of(after) == {"stable"}


def test_a_shadow_is_compared_and_never_answers(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "shadow", "fraction": 1.0, "min_requests": 60, "min_duration_s": 0}
    deploy(url, spec_for("mirror", models, "weak", strategy))
    command(url, "mirror", "start")
    responses = send(url, "mirror", logged_model, 120)
    assert paths_of(responses) == {"stable"}  # the shadow's answers are never returned
    status = wait_for(url, "mirror", {"completed"}, logged_model)
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
    deploy(url, spec_for("bg", models, "weak", strategy))
    command(url, "bg", "start")
    assert status_of(url, "bg")["phase"] == "warming"
    warming = send(url, "bg", logged_model, 10)  # fewer than the warm-up needs
    assert paths_of(warming) == {"stable"}
    assert status_of(url, "bg")["shadow"]["fraction"] == 1.0
    wait_for(url, "bg", {"baking", "promoted"}, logged_model)
    baking = send(url, "bg", logged_model, 30)
    assert paths_of(baking) == {"next"}  # all at once
    wait_for(url, "bg", {"promoted"}, logged_model)
    # instant switch-back is a rollback of a new rollout; the old colour is still loaded
    assert [e["action"] for e in history_of(url, "bg")][-1] == "promote"


def test_blue_green_keeps_the_old_colour_warm_and_switches_back_at_the_next_request(
    retiring_gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    """Every action on the serving side: weights, a timed pause, a promotion that keeps the previous
    version loaded for keep_previous_warm_s, a switch back inside it that loads nothing, the new
    version unloaded after it, and a switch back refused once the window is over."""
    url = retiring_gateway.url
    strategy = {
        "type": "blue_green",
        "warmup": {"shadow_fraction": 1.0, "min_requests": 20, "min_duration_s": 0},
        "bake_s": 0,
        "bake_min_requests": 20,
        "keep_previous_warm_s": 600,
    }
    deploy(url, spec_for("bg", models, "weak", strategy))
    loaded_at = status_of(url, "bg")["variants"]["stable"]["loaded_at"]
    command(url, "bg", "start")
    paused = command(url, "bg", "pause", duration_s=1).json()
    assert paused["phase"] == "paused" and paused["paused_until"] > time.time()
    assert paths_of(send(url, "bg", logged_model, 10)) == {"stable"}  # weights held
    wait_for(url, "bg", {"warming"})  # a timed pause resumes by itself
    promoted = wait_for(url, "bg", {"promoted"}, logged_model)
    stable = promoted["variants"]["stable"]
    assert stable["weight_percent"] == 0.0 and stable["loaded_at"] == loaded_at
    assert stable["retire_at"] == pytest.approx(time.time() + 600, abs=60)  # warm for the window
    assert paths_of(send(url, "bg", logged_model, 10)) == {"next"}

    back = command(url, "bg", "rollback", reason="p99 doubled")
    assert back.status_code == 200 and back.json()["phase"] == "rolled_back"
    assert paths_of(send(url, "bg", logged_model, 20)) == {"stable"}  # at the next request
    after = status_of(url, "bg")["variants"]
    assert after["stable"]["loaded_at"] == loaded_at and after["stable"]["retire_at"] is None  # no load
    assert [e["from_phase"] for e in history_of(url, "bg") if e["action"] == "rollback"] == ["promoted"]
    # the new colour goes once it has had no traffic for the grace period
    _until(lambda: status_of(url, "bg")["variants"]["next"]["loaded_at"] is None)
    assert status_of(url, "bg")["variants"]["next"]["model_name"]  # still named in the status

    # a window that is over: the promotion is final, and the previous version is unloaded
    short = {**strategy, "keep_previous_warm_s": 0.5}
    deploy(url, spec_for("bg2", models, "weak", short))
    command(url, "bg2", "start")
    assert command(url, "bg2", "promote").json()["phase"] == "promoted"
    _until(lambda: status_of(url, "bg2")["variants"]["stable"]["loaded_at"] is None)
    late = command(url, "bg2", "rollback")
    assert late.status_code == 409 and "kept warm for a switch back" in late.json()["detail"]
    assert paths_of(send(url, "bg2", logged_model, 10)[1::2]) == {"next"}  # /invocations is bg's


def test_ab_split_is_sticky_per_routing_key(gateway: Any, models: dict[str, Path], logged_model: Any) -> None:
    url = gateway.url
    strategy = {"type": "ab", "split_percent": 50, "min_requests": 1_000_000}
    deploy(url, spec_for("exp", models, "weak", strategy))
    command(url, "exp", "start")
    first = send(url, "exp", logged_model, 200)
    second = send(url, "exp", logged_model, 200)
    answered = [r.headers["x-lockgate-variant"] for r in first]
    assert answered == [r.headers["x-lockgate-variant"] for r in second]
    share = sum(variant == "next" for variant in answered) / len(first)
    assert 0.35 < share < 0.65
    assert status_of(url, "exp")["phase"] == "experimenting"


def test_rolling_replaces_replicas_a_batch_at_a_time(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "rolling", "replicas": 4, "batch_size": 2, "min_duration_s": 0, "min_requests": 10}
    deploy(url, spec_for("roll", models, "weak", strategy))
    command(url, "roll", "start")
    assert status_of(url, "roll")["variants"]["next"]["weight_percent"] == 50.0
    status = wait_for(url, "roll", {"promoted"}, logged_model)
    assert status["variants"]["next"]["weight_percent"] == 100.0


def test_manual_commands_take_effect_at_the_next_request(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    url = gateway.url
    strategy = {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]}
    deploy(url, spec_for("manual", models, "weak", strategy))
    command(url, "manual", "start")
    assert command(url, "manual", "pause", reason="looking at a graph").json()["phase"] == "paused"
    assert paths_of(send(url, "manual", logged_model, 60)) == {"stable", "next"}  # weights stay
    assert command(url, "manual", "resume").json()["phase"] == "stepping"
    started = time.perf_counter()
    assert command(url, "manual", "rollback", reason="by hand").json()["phase"] == "rolled_back"
    assert paths_of(send(url, "manual", logged_model, 40)) == {"stable"}
    assert time.perf_counter() - started < 5  # well under a second on a quiet machine
    # an illegal move is a 409 naming the phases, and nothing changes
    illegal = command(url, "manual", "resume")
    assert illegal.status_code == 409
    assert "rolled_back" in illegal.json()["detail"]
    # a finished deployment takes a new spec: a new rollout, this time promoted by hand
    response = httpx.put(
        f"{url}/admin/deployments/manual",
        json=spec_for("manual", models, "weak", strategy),
        headers=AUTH,
        timeout=60,
    )
    assert response.status_code == 200 and response.json()["phase"] == "pending"
    command(url, "manual", "start")
    assert command(url, "manual", "promote", actor="bob").json()["phase"] == "promoted"
    assert paths_of(send(url, "manual", logged_model, 20)) == {"next"}
    actors = [(e["action"], e["actor"]) for e in history_of(url, "manual")]
    assert ("promote", "bob") in actors and ("rollback", "admin") in actors


def test_a_variant_that_cannot_load_is_a_clear_4xx_and_nothing_is_served(
    gateway: Any, models: dict[str, Path]
) -> None:
    url = gateway.url
    missing = spec_for("ghost", {**models, "weak": Path("/nonexistent/model")}, "weak", {"type": "direct"})
    response = httpx.put(f"{url}/admin/deployments/ghost", json=missing, headers=AUTH, timeout=60)
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["error"] == "not_found" and "deployment 'ghost', variant 'next'" in body["detail"]
    assert httpx.get(f"{url}/admin/deployments", headers=AUTH).json() == {"deployments": []}


def test_on_ray_each_variant_runs_the_replicas_its_spec_asks_for(
    ray_serve_port: int, tmp_path: Path, models: dict[str, Path], logged_model: Any
) -> None:
    from lockgate.serving.ray_serve import serve

    with ray_gateway(ray_serve_port, tmp_path) as gateway:
        url = gateway.url
        spec = {
            **spec_for("sized", models, "weak", {"type": "direct"}),
            "scaling": {"next": {"replicas": 2, "num_cpus": 0.1}},
        }
        deploy(url, spec)
        apps = serve.status().applications
        sized = {name: app for name, app in apps.items() if name.endswith((".sized.stable", ".sized.next"))}
        replicas = {
            name.rsplit(".", 1)[1]: app.deployments["variant"].replica_states.get("RUNNING", 0)
            for name, app in sized.items()
        }
        assert replicas == {"stable": 1, "next": 2}
        command(url, "sized", "start")
        answers = send(url, "sized", logged_model, 20)
        assert all(r.status_code == 200 for r in answers) and paths_of(answers) == {"next"}


def test_on_ray_a_rolling_rollout_resizes_each_variant_batch_by_batch(
    ray_serve_port: int, tmp_path: Path, models: dict[str, Path], logged_model: Any
) -> None:
    from lockgate.serving.ray_serve import serve

    def running() -> dict[str, int]:
        apps = serve.status().applications
        return {
            name.rsplit(".", 1)[1]: app.deployments["variant"].replica_states.get("RUNNING", 0)
            for name, app in apps.items()
            if name.endswith((".rolled.stable", ".rolled.next")) and "variant" in app.deployments
        }

    with ray_gateway(ray_serve_port, tmp_path, retire_grace_s=1.0) as gateway:
        url = gateway.url
        strategy = {"type": "rolling", "replicas": 4, "batch_size": 2, "min_requests": 1_000_000}
        spec = {**spec_for("rolled", models, "weak", strategy), "scaling": {"next": {"num_cpus": 0.1}}}
        deploy(url, spec)
        assert running() == {"stable": 1, "next": 1}
        command(url, "rolled", "start")
        _until(lambda: running() == {"stable": 2, "next": 2})  # the first batch: 2 of 4 replaced
        assert all(r.status_code == 200 for r in send(url, "rolled", logged_model, 20))
        command(url, "rolled", "promote")
        # the spec's own scaling again for the new version; the old one is unloaded
        _until(lambda: running() == {"next": 1})
