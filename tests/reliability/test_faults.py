"""Faults against real processes (issue 12, items 7-11): the server keeps serving and loses nothing
it acknowledged.

The faulty models are real: a pyfunc wrapping the real logistic regression that sleeps while it
loads, fails to load, sleeps per call or fails a share of its calls. Covered elsewhere and not
repeated here: SIGTERM with requests queued in the batcher (tests/serving/test_lifecycle.py),
SIGKILL mid-canary resuming with the same counts and users (tests/serving/test_deployment_crash.py),
one controller at a time and the lease passing on SIGKILL (tests/serving/test_gateways.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import TOKEN
from tests.support import free_port, start_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]

AUTH = {"authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]
ROW = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [15.0] * 30}]}
STUCK = 7777.0  # the first feature of a request the "stuck" model sleeps on (its warm-up does not)
STUCK_ROW = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [STUCK] * 30}]}


@pytest.fixture(scope="session")
def fault_models(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders by fault: ``good`` (the logistic regression), ``other`` (a second, safe
    scikit-learn version), and pyfuncs around the same model that misbehave."""
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("fault-models")
    data = load_breast_cancer()
    frame = pd.DataFrame(data.data, columns=list(data.feature_names))
    real = LogisticRegression(max_iter=3000).fit(frame, data.target)
    signature = infer_signature(frame, real.predict(frame))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        class Faulty(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
            """The real model, with injected faults (defined here so it pickles by value)."""

            def __init__(self, model, load_s=0.0, load_fails=False, delay_s=0.0, error_rate=0.0):  # type: ignore[no-untyped-def]
                self.model, self.load_s, self.load_fails = model, load_s, load_fails
                self.delay_s, self.error_rate = delay_s, error_rate

            def load_context(self, context):  # type: ignore[no-untyped-def]
                time.sleep(self.load_s)
                if self.load_fails:
                    raise RuntimeError("injected: this version cannot load")

            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                import random

                if self.delay_s < 60 or float(model_input.iloc[0, 0]) == STUCK:  # the warm-up passes
                    time.sleep(self.delay_s)
                if random.random() < self.error_rate:
                    raise RuntimeError("injected: the canary failed")
                return self.model.predict(model_input)

        other = LogisticRegression(C=0.01, max_iter=3000).fit(frame, data.target)
        mlflow.sklearn.save_model(other, str(root / "other"), signature=signature)
        faults = {
            "slow_load": {"load_s": 4.0},
            "broken_load": {"load_fails": True},
            "slow": {"delay_s": 0.04},
            "errors": {"error_rate": 0.3},
            "stuck": {"delay_s": 600.0},
        }
        for name, kwargs in faults.items():
            mlflow.pyfunc.save_model(
                str(root / name), python_model=Faulty(real, **kwargs), signature=signature
            )
    return {"good": model_dir, "other": root / "other", **{name: root / name for name in faults}}


@pytest.fixture
def trusting_gateway(tmp_path: Path) -> Iterator[Any]:
    """A real server whose fault models (pickled pyfuncs made by this suite) are trusted."""
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread

    config = ServeConfig(
        "",
        admin_token=TOKEN,
        tick_s=0.05,
        follow_registry=False,
        allow_unverified=True,
        allow_unsafe_load=True,
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    handle = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    yield handle
    handle.stop()
    store.close()


class _Traffic:
    """Requests from a background thread until stopped: every status and model version seen."""

    def __init__(self, url: str, path: str) -> None:
        self.url, self.path = url, path
        self.statuses: Counter[int | str] = Counter()
        self.versions: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                try:
                    response = client.post(
                        f"{self.url}{self.path}", json=ROW, headers={"x-routing-key": f"u{i}"}
                    )
                except httpx.TransportError as exc:
                    self.statuses[type(exc).__name__] += 1
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions.append((time.monotonic(), response.headers["x-model-version"]))

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


def _spec(name: str, models: dict[str, Path], candidate: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "variants": {"stable": str(models["good"]), "next": str(models[candidate])},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "direct"},
        **extra,
    }


def _put(url: str, spec: dict[str, Any]) -> httpx.Response:
    return httpx.put(f"{url}/admin/deployments/{spec['name']}", json=spec, headers=AUTH, timeout=120)


def _status(url: str, name: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/admin/deployments/{name}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


# ---------------------------------------------------------------------- 8: slow and failing loads


def test_a_slow_or_failing_new_version_never_interrupts_the_old_one(
    trusting_gateway: Any, fault_models: dict[str, Path], reliability_report: dict[str, Any]
) -> None:
    """The served variant (a direct deployment serves its baseline) gets a new model that takes
    4 s to load, then one that cannot load: 0 failed requests throughout."""
    url = trusting_gateway.url

    def spec(served: str) -> dict[str, Any]:
        return {
            "name": "steady",
            "variants": {"stable": str(fault_models[served]), "next": str(fault_models["good"])},
            "baseline": "stable",
            "candidate": "next",
            "strategy": {"type": "direct"},
        }

    assert _put(url, spec("other")).status_code == 201
    old_version = _status(url, "steady")["variants"]["stable"]["model_version"]
    with _Traffic(url, "/v2/models/steady/infer") as traffic:
        time.sleep(0.5)
        started = time.monotonic()
        slow = _put(url, spec("slow_load"))
        ready_at = time.monotonic()
        assert slow.status_code == 200, slow.text
        new_version = slow.json()["variants"]["stable"]["model_version"]
        time.sleep(0.5)
        broken = _put(url, spec("broken_load"))
        time.sleep(0.5)
    assert broken.status_code == 422, broken.text
    assert broken.json()["error"] == "model_load_failed"
    assert "injected: this version cannot load" in broken.json()["detail"]
    assert traffic.failed == 0, traffic.statuses
    assert ready_at - started >= 4.0  # it really was slow
    # while the slow one loaded (its first 4 s at least), the old one answered; then the new one
    during = {v for at, v in traffic.versions if started <= at < started + 3.5}
    after = {v for at, v in traffic.versions if at > ready_at + 0.2}
    assert during == {old_version}, during
    assert after == {new_version}, after
    status = _status(url, "steady")
    assert status["variants"]["stable"]["model_uri"] == str(fault_models["slow_load"])
    reliability_report["acknowledged"] += sum(traffic.statuses.values())


# ---------------------------------------------------------------------- 11: a faulty canary


@pytest.mark.parametrize(
    ("candidate", "analysis", "why"),
    [
        ("errors", {"policy": "threshold", "min_requests": 100, "max_p99_latency_ratio": None}, "error rate"),
        ("slow", {"policy": "threshold", "min_requests": 100, "max_p99_latency_ratio": 3.0}, "p99"),
    ],
)
def test_a_canary_with_injected_faults_is_rolled_back_within_its_analysis_window(
    trusting_gateway: Any,
    fault_models: dict[str, Path],
    candidate: str,
    analysis: dict[str, Any],
    why: str,
) -> None:
    """The threshold policy judges once both sides have ``min_requests``: the rollback comes at
    that first look (a tick later at most), with the candidate's count near the window."""
    url = trusting_gateway.url
    strategy = {
        "type": "canary",
        "steps": [{"weight_percent": 50, "min_requests": 10**6}, {"weight_percent": 100}],
    }
    spec = {
        **_spec(f"faulty-{candidate}", fault_models, candidate),
        "strategy": strategy,
        "analysis": analysis,
    }
    assert _put(url, spec).status_code == 201
    assert httpx.post(f"{url}/admin/deployments/{spec['name']}/start", headers=AUTH).status_code == 200
    deadline = time.monotonic() + 120
    status = _status(url, spec["name"])
    with httpx.Client(timeout=30) as client:
        i = 0
        while status["phase"] != "rolled_back" and time.monotonic() < deadline:
            for _ in range(20):
                i += 1
                client.post(
                    f"{url}/v2/models/{spec['name']}/infer", json=ROW, headers={"x-routing-key": f"k{i}"}
                )
            status = _status(url, spec["name"])
    assert status["phase"] == "rolled_back", status
    assert status["variants"]["next"]["weight_percent"] == 0.0
    assert why in (status["reason"] or ""), status["reason"]
    # judged at the first look with min_requests on both sides: a tick of traffic (20 requests a
    # round, a round per status poll) past the window at most, on any machine
    assert status["variants"]["next"]["requests"] <= analysis["min_requests"] + 200, status["variants"]
    history = httpx.get(f"{url}/admin/deployments/{spec['name']}/history", headers=AUTH).json()["events"]
    assert history[-1]["actor"] == "controller" and history[-1]["to_phase"] == "rolled_back"


# ---------------------------------------------------------------------- processes


def _serve(args: list[str], port: int, home: Path) -> subprocess.Popen[bytes]:
    """``lockgate serve`` in its own process, its log in ``home/server.log``; once it is ready."""
    return start_server(args, port=port, token=TOKEN, home=home, log_to=home / "server.log").proc


def _log(home: Path) -> str:
    return (home / "server.log").read_text(errors="replace")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)


# ---------------------------------------------------------------------- 7: SIGTERM


def test_sigterm_refuses_new_requests_and_exits_within_the_grace_period(
    fault_models: dict[str, Path], tmp_path: Path
) -> None:
    """A request stuck in the model for ten minutes cannot finish: the process still exits
    within its grace period (2 s here), and nothing new is taken on meanwhile."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(fault_models["stuck"]), "--name", "stuck", "--allow-unsafe-load", "--graceful-timeout-s", "2"]
    proc = _serve(args, port, tmp_path / "home")
    try:
        results: list[Any] = []

        def call() -> None:
            try:
                answer = httpx.post(f"{url}/v2/models/stuck/infer", json=STUCK_ROW, timeout=120)
                results.append(answer.status_code)
            except httpx.TransportError as exc:
                results.append(type(exc).__name__)

        stuck = threading.Thread(target=call, daemon=True)
        stuck.start()
        time.sleep(1.0)  # the request is inside the model's 600 s sleep
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        try:
            late = httpx.post(f"{url}/v2/models/stuck/infer", json=ROW, timeout=5)
            refused: Any = late.status_code
        except httpx.TransportError as exc:
            refused = type(exc).__name__
        code = proc.wait(60)
        elapsed = time.monotonic() - signalled
        stuck.join(30)
    finally:
        _kill(proc)
    assert refused in ("ConnectError", "RemoteProtocolError", "ReadError", 503), refused
    assert code == 0, _log(tmp_path / "home")[-2000:]
    # the grace period, plus the interpreter's own exit: far from the model's 600 s
    assert elapsed < 2 + 30, elapsed
    assert results and results[0] != 200, results


# ---------------------------------------------------------------------- 9: SIGKILL at each step


def _command(url: str, name: str, verb: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/admin/deployments/{name}/{verb}", json=body, headers=AUTH, timeout=30)


def _weights(status: dict[str, Any]) -> dict[str, float]:
    return {name: v["weight_percent"] for name, v in status["variants"].items()}


def test_sigkill_at_each_rollout_step_comes_back_in_the_step_it_was_in(
    fault_models: dict[str, Path], tmp_path: Path, reliability_report: dict[str, Any]
) -> None:
    """Kill -9 right after each acknowledged step (a weight change, a pause with its clock, a
    promotion, a rollback) and in the middle of one; after each restart the state is the one that
    was acknowledged (or, for the interrupted one, exactly the state before or after it), the
    audit log agrees with it, and the counters that reached the store are still there."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home = tmp_path / "home"
    args = ["--store", f"sqlite:///{tmp_path / 'rollouts.db'}"]
    strategy = {
        "type": "canary",
        "steps": [
            {"weight_percent": 20, "min_requests": 10**6},
            {"weight_percent": 60, "min_requests": 10**6},
            {"weight_percent": 100},
        ],
    }
    specs = {
        name: {
            **_spec(name, fault_models, "other"),
            "strategy": strategy,
            "analysis": {"policy": "sequential", "guardrails": {"latency": None}},
        }
        for name in ("up", "back")
    }
    proc = _serve(args, port, home)
    acknowledged: dict[str, dict[str, Any]] = {}
    try:
        for spec in specs.values():
            assert _put(url, spec).status_code == 201
        for name in specs:  # a weight change: 0 -> 20 %
            response = _command(url, name, "start", reason="try it")
            assert response.status_code == 200, response.text
            acknowledged[name] = response.json()
        with httpx.Client(timeout=30) as client:
            for i in range(200):
                client.post(f"{url}/v2/models/up/infer", json=ROW, headers={"x-routing-key": f"u{i}"})
        time.sleep(1.0)  # a few ticks: the counters reach the store
        counted = _status(url, "up")["variants"]
        _kill(proc)

        proc = _serve(args, port, home)
        for name in specs:
            status = _status(url, name)
            assert (status["phase"], status["stage"]) == ("stepping", 1), status
            assert _weights(status) == _weights(acknowledged[name]) == {"stable": 80.0, "next": 20.0}
        again = _status(url, "up")["variants"]
        assert {n: again[n]["requests"] for n in again} == {n: counted[n]["requests"] for n in counted}

        # a pause with a clock: the clock survives
        paused = _command(url, "up", "pause", reason="look closer", duration_s=3600)
        assert paused.status_code == 200, paused.text
        _kill(proc)
        proc = _serve(args, port, home)
        status = _status(url, "up")
        assert status["phase"] == "paused" and _weights(status) == {"stable": 80.0, "next": 20.0}
        history = httpx.get(f"{url}/admin/deployments/up/history", headers=AUTH).json()["events"]
        assert history[-1]["action"] == "pause"
        pause_until = _pause_until(tmp_path / "rollouts.db", "up")
        assert pause_until is not None and pause_until > time.time() + 3000
        assert _command(url, "up", "resume").status_code == 200

        # kill in the middle of a promotion: the state is the one before it or the one after it
        promoting = threading.Thread(target=lambda: _try(lambda: _command(url, "up", "promote")), daemon=True)
        promoting.start()
        time.sleep(0.01)
        _kill(proc)
        promoting.join(30)
        proc = _serve(args, port, home)
        status = _status(url, "up")
        history = httpx.get(f"{url}/admin/deployments/up/history", headers=AUTH).json()["events"]
        if status["phase"] == "promoted":
            assert _weights(status) == {"stable": 0.0, "next": 100.0} and history[-1]["action"] == "promote"
        else:
            assert status["phase"] == "stepping" and _weights(status) == {"stable": 80.0, "next": 20.0}
            assert history[-1]["action"] != "promote"
            assert _command(url, "up", "promote").status_code == 200
        # a promotion acknowledged, then killed
        _kill(proc)
        proc = _serve(args, port, home)
        status = _status(url, "up")
        assert status["phase"] == "promoted" and _weights(status) == {"stable": 0.0, "next": 100.0}

        # a rollback acknowledged, then killed
        assert _command(url, "back", "rollback", reason="not today").status_code == 200
        _kill(proc)
        proc = _serve(args, port, home)
        status = _status(url, "back")
        assert status["phase"] == "rolled_back" and _weights(status) == {"stable": 100.0, "next": 0.0}
        actions = [
            e["action"]
            for e in httpx.get(f"{url}/admin/deployments/back/history", headers=AUTH).json()["events"]
        ]
        assert actions == ["deploy", "start", "rollback"], actions
        # and the one controller carries on: nothing steps a finished rollout
        time.sleep(1.0)
        assert _status(url, "back")["phase"] == "rolled_back"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        _kill(proc)
    reliability_report["acknowledged"] += 200 + 6


def _try(call: Any) -> None:
    with contextlib.suppress(httpx.TransportError):  # the server died mid-request, on purpose
        call()


def _pause_until(database: Path, name: str) -> float | None:
    from lockgate.rollout.sqlstore import SqlStore

    store = SqlStore(f"sqlite:///{database}")
    try:
        return store.get_deployment(name).state.pause_until
    finally:
        store.close()


# ---------------------------------------------------------------------- 10: the store goes away


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A Postgres of this test's own (it is stopped and started again): (URL, pg_ctl runner)."""
    if _postgres_bin() is None or (shutil.which("runuser") is None and os.geteuid() == 0):
        pytest.skip("no PostgreSQL server here (scripts/postgres installs one as root)")
    out = subprocess.run(
        [str(ROOT / "scripts" / "postgres"), "start"], capture_output=True, text=True, check=True
    )
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line
    )
    url, folder = exports["LOCKGATE_TEST_POSTGRES_URL"], exports["LOCKGATE_PG_DIR"]
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    bin_dir = _postgres_bin()
    assert bin_dir is not None

    def pg_ctl(*command: str) -> None:
        owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [
                *owner,
                str(bin_dir / "pg_ctl"),
                "-D",
                f"{folder}/data",
                "-l",
                f"{folder}/log",
                "-w",
                "-o",
                options,
                *command,
            ],
            check=True,
            capture_output=True,
        )

    yield url, pg_ctl
    subprocess.run([str(ROOT / "scripts" / "postgres"), "stop", folder], capture_output=True, check=False)


def test_the_store_going_away_mid_rollout_pauses_it_and_loses_nothing(
    own_postgres: tuple[str, Any],
    fault_models: dict[str, Path],
    tmp_path: Path,
    reliability_report: dict[str, Any],
) -> None:
    url_db, pg_ctl = own_postgres
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(["--store", url_db], port, tmp_path / "home")
    spec = {
        **_spec("outage", fault_models, "other"),
        "strategy": {
            "type": "canary",
            "steps": [{"weight_percent": 30, "min_requests": 10**6}, {"weight_percent": 100}],
        },
        "analysis": {"policy": "sequential", "guardrails": {"latency": None}},
    }
    acknowledged = Counter[str]()
    try:
        assert _put(url, spec).status_code == 201
        assert _command(url, "outage", "start").status_code == 200
        with httpx.Client(timeout=30) as client:

            def burst(n: int, offset: int) -> None:
                for i in range(offset, offset + n):
                    answer = client.post(
                        f"{url}/v2/models/outage/infer", json=ROW, headers={"x-routing-key": f"u{i}"}
                    )
                    assert answer.status_code == 200, answer.text
                    acknowledged[answer.headers["x-model-name"]] += 1
                    fed = client.post(
                        f"{url}/v2/models/outage/feedback",
                        json={"request_id": answer.headers["x-request-id"], "value": 1.0},
                    )
                    assert fed.status_code == 200, fed.text

            burst(100, 0)
            pg_ctl("stop", "-m", "immediate")
            burst(100, 100)  # serving goes on at the current weights; feedback is acknowledged
            time.sleep(1.0)  # ticks fail meanwhile
            ready = client.get(f"{url}/v2/health/ready").json()
            status = client.get(f"{url}/admin/deployments/outage", headers=AUTH)
            command = client.post(f"{url}/admin/deployments/outage/promote", json={}, headers=AUTH)
            pg_ctl("start")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "rollouts" in client.get(f"{url}/v2/health/ready").json():
                time.sleep(0.2)
            time.sleep(1.0)  # a tick or two after the store came back: the counters are flushed
            after = client.get(f"{url}/admin/deployments/outage", headers=AUTH).json()
    finally:
        _kill(proc)
    stderr = _log(tmp_path / "home")
    assert ready["ready"] is True and "cannot be reached" in ready["rollouts"], ready
    assert status.status_code == 503 and status.json()["error"] == "store_unreachable", status.text
    assert command.status_code == 503, command.text  # not acknowledged, so nothing to lose
    assert "cannot be reached" in stderr and "reachable again" in stderr, stderr[-3000:]
    assert after["phase"] == "stepping" and after["variants"]["next"]["weight_percent"] == 30.0
    counts = {name: v["requests"] for name, v in after["variants"].items()}
    outcomes = {name: v["outcomes"]["n"] for name, v in after["variants"].items()}
    assert counts == dict(acknowledged), (counts, acknowledged)
    assert outcomes == dict(acknowledged), (outcomes, acknowledged)
    lost = sum(acknowledged.values()) - sum(outcomes.values())
    reliability_report["acknowledged"] += 2 * sum(acknowledged.values())
    reliability_report["lost_acknowledged"] += max(0, lost) + max(
        0, sum(acknowledged.values()) - sum(counts.values())
    )
