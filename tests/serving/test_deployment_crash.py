"""A real ``lockgate serve`` process killed with SIGKILL mid-canary comes back where it was.

Driven through the CLI (``lockgate rollout ...``) as an operator would: start, traffic, kill -9,
restart on the same SQLite store, check phase, weights and counts, then promote.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lockgate.rollout.sqlstore import SqlStore
from tests.support import TOKEN, free_port, start_server

pytestmark = pytest.mark.integration


def _traffic(url: str, logged_model: Any, n: int) -> list[str]:
    body = {"dataframe_split": {"columns": logged_model.columns, "data": [logged_model.features[0].tolist()]}}
    with httpx.Client(timeout=30) as client:
        responses = [
            client.post(f"{url}/invocations", json=body, headers={"x-routing-key": f"u{i}"}) for i in range(n)
        ]
    assert all(r.status_code == 200 for r in responses)
    return [r.headers["x-model-name"] for r in responses]


def test_sigkill_mid_canary_resumes_in_the_same_state(
    tmp_path: Path,
    models: dict[str, Path],
    logged_model: Any,
    cli: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec_file = tmp_path / "canary.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "crashy",
                "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
                "baseline": "stable",
                "candidate": "next",
                "strategy": {
                    "type": "canary",
                    "steps": [{"weight_percent": 30, "min_requests": 1_000_000}, {"weight_percent": 100}],
                },
                # mechanics, not statistics: latency noise on a busy machine must not end the canary
                "analysis": {"policy": "sequential", "guardrails": {"latency": None}},
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store_url = f"sqlite:///{tmp_path / 'rollouts.db'}"
    args = ["--deployment", str(spec_file), "--store", store_url]
    monkeypatch.setenv("LOCKGATE_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("LOCKGATE_URL", url)

    proc = start_server(args, port=port, home=tmp_path / "home").proc
    try:
        code, out, err = cli("rollout", "start", "crashy", "--reason", "try the weak one", "--actor", "ops")
        assert code == 0, err
        assert "stepping" in out
        served = _traffic(url, logged_model, 300)
        assert set(served) == {"stable", "next"}
        time.sleep(1.0)  # a few controller ticks: the counters reach the store
        store = SqlStore(store_url)
        before = store.load_snapshot("crashy")
        store.close()
        assert before["stable"].requests + before["next"].requests == 300
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()

    proc = start_server(args, port=port, home=tmp_path / "home").proc
    try:
        code, out, _ = cli("rollout", "status", "crashy", "--json")
        assert code == 0
        status = json.loads(out)
        assert status["phase"] == "stepping"
        assert status["variants"]["next"]["weight_percent"] == 30.0
        assert status["variants"]["stable"]["requests"] >= before["stable"].requests
        assert status["variants"]["next"]["requests"] >= before["next"].requests
        # the same users stay on the same variants after the restart
        assert _traffic(url, logged_model, 300) == served
        code, out, _ = cli("rollout", "promote", "crashy", "--reason", "looks fine")
        assert code == 0 and "promoted" in out
        assert set(_traffic(url, logged_model, 20)) == {"next"}
        code, out, _ = cli("rollout", "history", "crashy", "--json")
        actions = [(e["action"], e["actor"]) for e in json.loads(out)]
        assert actions[:2] == [("deploy", "serve"), ("start", "ops")]
        assert actions[-1][0] == "promote"
        # the status --watch view ends by itself once the rollout has finished
        code, out, _ = cli("rollout", "status", "crashy", "--watch", "--interval", "0.1")
        assert code == 0 and "promoted" in out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_cli_says_what_is_wrong(
    cli: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LOCKGATE_ADMIN_TOKEN", raising=False)
    code, _, err = cli("rollout", "status", "x")
    assert code == 2 and "LOCKGATE_ADMIN_TOKEN" in err
    port = free_port()
    code, _, err = cli("rollout", "status", "x", "--url", f"http://127.0.0.1:{port}", "--token", "t")
    assert code == 3 and "cannot reach lockgate" in err and "lockgate serve" in err  # an outage
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: {a: m1}\n")
    code, _, err = cli("deploy", str(bad), "--token", "t")
    assert code == 2 and "variants" in err
    code, _, err = cli("serve", "--port", str(port))
    assert code == 2 and "nothing to serve" in err
