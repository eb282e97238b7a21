"""Two gateways on one store: one rollout, counters added up, one controller at a time.

Two real servers (each its own event loop and thread) share a SQLite file, or the throwaway
Postgres that ``make test`` starts. A deployment made through one gateway is served by the other;
a weight change reaches the other within a second; the merged counters equal what both served;
when the lease holder stops, the other steps the rollout, and no event is doubled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread
from tests.support import AUTH, TOKEN, start_server

pytestmark = pytest.mark.integration

POSTGRES_URL = os.environ.get("LOCKGATE_TEST_POSTGRES_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=pytest.mark.skipif(POSTGRES_URL is None, reason="set LOCKGATE_TEST_POSTGRES_URL"),
        ),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rollouts.db'}"
        return
    assert POSTGRES_URL is not None
    store = SqlStore(POSTGRES_URL)
    with store._engine.begin() as connection:
        for table in ("feedback_joins", "accumulator_snapshots", "rollout_events", "deployments"):
            connection.exec_driver_sql(f"DELETE FROM {table}")
    store.close()
    yield POSTGRES_URL


def _gateway(url: str) -> tuple[Any, SqlStore]:
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False)
    store = SqlStore(url)
    return run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store))), store


def _send(url: str, logged_model: Any, n: int) -> None:
    body = {"dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}}
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            response = client.post(f"{url}/invocations", json=body, headers={"x-routing-key": f"u{i}"})
            assert response.status_code == 200, response.text


def _until(check: Any, timeout_s: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def test_two_gateways_share_one_rollout(store_url: str, models: dict[str, Path], logged_model: Any) -> None:
    (a, a_store), (b, b_store) = _gateway(store_url), _gateway(store_url)
    manager_b = b.app.deployments
    try:
        spec = {
            "name": "shared",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {
                "type": "canary",
                "steps": [
                    {"weight_percent": 30, "min_requests": 150},
                    {"weight_percent": 60, "min_requests": 10**9},
                ],
            },
            "analysis": {"policy": "threshold", "min_requests": 10**6},  # judged by its limits only
        }
        created = httpx.put(f"{a.url}/admin/deployments/shared", json=spec, headers=AUTH, timeout=60)
        assert created.status_code == 201, created.text
        # the other gateway serves it too, from the store
        _until(lambda: "shared" in manager_b.live, timeout_s=10)
        started = httpx.post(f"{a.url}/admin/deployments/shared/start", json={}, headers=AUTH)
        assert started.status_code == 200
        # the weight change reaches the other gateway's routing table within a second
        waited = _until(lambda: manager_b.live["shared"].table.weight_of("next") == 3000, timeout_s=5)
        assert waited < 1.0

        _send(a.url, logged_model, 60)
        _send(b.url, logged_model, 80)

        def merged() -> int:
            stats = a_store.load_snapshot("shared")
            return sum(s.requests for s in stats.values())

        _until(lambda: merged() == 140, timeout_s=5)  # both gateways' counters, added up
        status = httpx.get(f"{b.url}/admin/deployments/shared", headers=AUTH).json()
        assert sum(v["requests"] for v in status["variants"].values()) == 140
        assert status["phase"] == "stepping" and status["stage"] == 1

        # the lease holder goes away; the other gateway takes over within the lease time
        a.stop()
        _send(b.url, logged_model, 400)
        _until(
            lambda: httpx.get(f"{b.url}/admin/deployments/shared", headers=AUTH).json()["stage"] == 2,
            timeout_s=15,
        )
        events = httpx.get(f"{b.url}/admin/deployments/shared/history", headers=AUTH).json()["events"]
        assert [e["action"] for e in events] == ["deploy", "start", "advance"]  # nothing doubled
        assert manager_b.live["shared"].table.weight_of("next") == 6000
    finally:
        a.stop()
        b.stop()
        a_store.close()
        b_store.close()


def _process(store: str, home: Path) -> tuple[Any, str]:
    server = start_server(["--store", store, "--no-follow-registry"], token=TOKEN, home=home)
    return server.proc, server.url


@pytest.mark.skipif(POSTGRES_URL is None, reason="set LOCKGATE_TEST_POSTGRES_URL (make test does)")
def test_sigkill_of_the_lease_holder_hands_the_rollout_to_the_other_gateway(
    tmp_path: Path, models: dict[str, Path], logged_model: Any
) -> None:
    import signal

    assert POSTGRES_URL is not None
    store = SqlStore(POSTGRES_URL)
    with store._engine.begin() as connection:
        for table in ("feedback_joins", "accumulator_snapshots", "rollout_events", "deployments"):
            connection.exec_driver_sql(f"DELETE FROM {table}")
    (proc_a, url_a), (proc_b, url_b) = (
        _process(POSTGRES_URL, tmp_path / "a"),
        _process(POSTGRES_URL, tmp_path / "b"),
    )
    procs = {proc_a.pid: (proc_a, url_a), proc_b.pid: (proc_b, url_b)}
    try:
        spec = {
            "name": "failover",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {
                "type": "canary",
                "steps": [
                    {"weight_percent": 30, "min_requests": 100},
                    {"weight_percent": 60, "min_requests": 100},
                ],
            },
            "analysis": {"policy": "threshold", "min_requests": 10**6},
        }
        assert (
            httpx.put(f"{url_a}/admin/deployments/failover", json=spec, headers=AUTH, timeout=60).status_code
            == 201
        )
        _until(lambda: httpx.get(f"{url_b}/admin/deployments/failover", headers=AUTH).status_code == 200, 15)
        assert (
            httpx.post(f"{url_a}/admin/deployments/failover/start", json={}, headers=AUTH).status_code == 200
        )
        _send(url_a, logged_model, 50)
        _send(url_b, logged_model, 70)
        _until(lambda: sum(s.requests for s in store.load_snapshot("failover").values()) == 120, 10)

        def holder() -> int:
            with store._engine.connect() as connection:
                value = connection.exec_driver_sql(
                    "SELECT lease_holder FROM deployments WHERE name = 'failover'"
                ).scalar()
            return int(str(value).split(":")[1])

        _until(lambda: holder() in procs, 5)
        dead = holder()
        survivor_proc, survivor_url = next(v for pid, v in procs.items() if pid != dead)
        procs[dead][0].send_signal(signal.SIGKILL)
        procs[dead][0].wait(30)
        killed_at = time.monotonic()
        _until(lambda: holder() == survivor_proc.pid, timeout_s=15)
        assert time.monotonic() - killed_at <= 5.0 + 1.0  # the lease (5 s) and a tick

        def promoted() -> bool:  # traffic keeps flowing while the survivor steps the stages
            _send(survivor_url, logged_model, 50)
            status = httpx.get(f"{survivor_url}/admin/deployments/failover", headers=AUTH).json()
            return bool(status["phase"] == "promoted")

        _until(promoted, timeout_s=60)
        events = httpx.get(f"{survivor_url}/admin/deployments/failover/history", headers=AUTH).json()[
            "events"
        ]
        assert [e["action"] for e in events] == ["deploy", "start", "advance", "promote"]
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        store.close()


def test_feedback_counts_once_on_any_gateway_with_persisted_joins(
    tmp_path: Path, models: dict[str, Path], logged_model: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'rollouts.db'}"
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False, persist_joins=True)
    stores = [SqlStore(url), SqlStore(url)]
    a, b = (
        run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
        for store in stores
    )
    try:
        spec = {
            "name": "fb",
            "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "ab", "split_percent": 50, "min_requests": 10**9},
        }
        assert (
            httpx.put(f"{a.url}/admin/deployments/fb", json=spec, headers=AUTH, timeout=60).status_code == 201
        )
        _until(lambda: "fb" in b.app.deployments.live, timeout_s=10)
        httpx.post(f"{a.url}/admin/deployments/fb/start", json={}, headers=AUTH).raise_for_status()
        body = {
            "dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}
        }
        answered = httpx.post(f"{a.url}/invocations", json=body, headers={"x-routing-key": "user-7"})
        request_id, variant = answered.headers["x-request-id"], answered.headers["x-model-name"]
        time.sleep(0.5)  # a few ticks: the join reaches the store
        first = httpx.post(f"{b.url}/v2/models/fb/feedback", json={"request_id": request_id, "label": 1})
        assert first.status_code == 200, first.text
        assert first.json()["variant"] == variant and first.json()["counted"] is True
        again = httpx.post(f"{a.url}/v2/models/fb/feedback", json={"request_id": request_id, "label": 1})
        assert again.json()["duplicate"] is True
        other = httpx.post(f"{a.url}/v2/models/fb/feedback", json={"request_id": request_id, "label": 0})
        assert other.status_code == 409
        unknown = httpx.post(f"{b.url}/v2/models/fb/feedback", json={"request_id": "nope", "label": 1})
        assert unknown.status_code == 404
        # the one outcome reaches the merged counters once
        _until(lambda: sum(s.conversions.trials for s in stores[0].load_snapshot("fb").values()) == 1, 5)
        time.sleep(0.3)
        assert sum(s.conversions.trials for s in stores[0].load_snapshot("fb").values()) == 1
    finally:
        a.stop()
        b.stop()
        for store in stores:
            store.close()
