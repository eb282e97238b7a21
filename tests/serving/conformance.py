"""What every serving backend must do for rollouts, over HTTP: the shared helpers and gateways.

A gateway is a real server with the admin API on, a SQLite rollout store and a fast controller
(ticks every 50 ms): :func:`embedded_gateway` serves every variant in this process;
``tests/serving/test_conformance.py`` also runs the same tests on Ray Serve. The helpers deploy
through ``PUT /admin/deployments/{name}``, send traffic with routing keys and read the status and
the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread
from tests.support import AUTH, TOKEN


def gateway_config(**overrides: Any) -> ServeConfig:
    """The conformance gateways' settings (the broken candidates are pickled pyfuncs made by the
    fixtures: trusted, so loaded unverified)."""
    settings: dict[str, Any] = {
        "admin_token": TOKEN,
        "tick_s": 0.05,
        "follow_registry": False,
        "allow_unverified": True,
        "allow_unsafe_load": True,
        **overrides,
    }
    return ServeConfig("", **settings)


@contextmanager
def embedded_gateway(tmp_path: Path, **overrides: Any) -> Iterator[Any]:
    """The embedded backend: one process, every variant loaded in it."""
    config = gateway_config(**overrides)
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    manager = build_deployments(config, store)
    handle = run_server_in_thread(build_app(config=config, deployments=manager))
    try:
        yield handle
    finally:
        handle.stop()
        store.close()


# These tests are about the rollout's mechanics; the sequential policy judges errors as usual, with
# a wide margin (5 points) so that a stage's evidence comes within a few hundred requests, and no
# latency guardrail, so that a busy machine's latency noise cannot decide a test.
MECHANICS = {
    "policy": "sequential",
    "guardrails": {"errors": {"max_increase": {"absolute_pp": 5}}, "latency": None},
}


def spec_for(name: str, models: dict[str, Path], candidate: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "variants": {"stable": str(models["good"]), "next": str(models[candidate])},
        "baseline": "stable",
        "candidate": "next",
        "strategy": strategy,
        "analysis": MECHANICS,
    }


def deploy(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = httpx.put(f"{url}/admin/deployments/{spec['name']}", json=spec, headers=AUTH, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def command(url: str, name: str, verb: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/admin/deployments/{name}/{verb}", json=body, headers=AUTH, timeout=30)


def status_of(url: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/admin/deployments/{name}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# Requests in flight at once: on Ray Serve each one crosses three processes (proxy, ingress,
# replica), so one at a time leaves the CPUs waiting on the hops; the answers keep their order.
SENDERS = 4


def send(url: str, name: str, logged_model: Any, n: int, *, keyed: bool = True) -> list[httpx.Response]:
    row = {"dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}}
    v2 = {
        "inputs": [
            {"name": "x", "shape": [1, 30], "datatype": "FP64", "data": logged_model.features[0].tolist()}
        ]
    }
    limits = httpx.Limits(max_connections=SENDERS)
    with httpx.Client(timeout=30, limits=limits) as client, ThreadPoolExecutor(SENDERS) as pool:

        def one(i: int) -> httpx.Response:
            headers = {"x-routing-key": f"user-{i}"} if keyed else {}
            if i % 2:
                return client.post(f"{url}/v2/models/{name}/infer", json=v2, headers=headers)
            return client.post(f"{url}/invocations", json=row, headers=headers)

        return list(pool.map(one, range(n)))


def wait_for(
    url: str, name: str, phases: set[str], model: Any = None, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Poll the status (sending a little traffic each time, given a model) until a phase."""
    deadline = time.monotonic() + timeout_s
    now = status_of(url, name)
    while now["phase"] not in phases and time.monotonic() < deadline:
        if model is not None:
            send(url, name, model, 10)
        time.sleep(0.05)
        now = status_of(url, name)
    assert now["phase"] in phases, now
    return now


def history_of(url: str, name: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/admin/deployments/{name}/history", headers=AUTH)
    assert response.status_code == 200
    return list(response.json()["events"])


def paths_of(responses: list[httpx.Response]) -> set[str]:
    """The variants that answered, by the header every answer from a deployment carries."""
    assert all("x-lockgate-variant" in r.headers for r in responses), [r.text for r in responses][:3]
    return {r.headers["x-lockgate-variant"] for r in responses}
