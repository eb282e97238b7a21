"""Prompt versions as variants on a real server: two prompt versions of the tiny model in an A/B
test, rendered per request, decided by thumbs up/down sent to /feedback."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.prompts import register_prompt
from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.server import (
    ServeConfig,
    ServerHandle,
    build_app,
    build_deployments,
    run_server_in_thread,
)
from lockgate.tracking.connection import connect
from tests.support import AUTH, TOKEN

pytestmark = pytest.mark.integration

V1 = "Answer: {{input}}"
V2 = "You are {{product}} support. Answer in a {{tone}} tone, in one line: {{input}}"


def _spec(prompt: str) -> dict[str, Any]:
    return {
        "strategy": {"type": "ab", "split_percent": 50, "min_requests": 60, "max_duration_s": 600},
        "analysis": {
            "policy": "sequential",
            "min_samples": 40,
            "guardrails": {"latency": None, "errors": None},  # a shared CPU's noise must not decide
            "primary": {"metric": "conversions", "direction": "increase", "scale": 0.2},
        },
        "llm": {
            "a": {"prompt": f"{prompt}@1"},
            "b": {
                "prompt": f"{prompt}@2",
                "variables": {"product": "lockgate"},
                "price_per_1k_tokens": 0.002,
            },
        },
    }


@pytest.fixture
def handle(tmp_path: Path) -> Iterator[ServerHandle]:
    """A server with an admin token and a rollout store, and no deployment yet."""
    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False, allow_unverified=True)
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    server = run_server_in_thread(build_app(config=config, deployments=build_deployments(config, store)))
    try:
        yield server
    finally:
        server.stop()
        store.close()


def test_an_ab_between_prompt_versions_is_decided_by_feedback(
    mlflow_home: Path, unique: str, tiny_model: Path, handle: ServerHandle
) -> None:
    prompt = f"support-{unique}"
    register_prompt(connect(), prompt, V1)
    register_prompt(connect(), prompt, V2)
    base = handle.url
    spec = {
        "name": "support",
        "variants": {"a": str(tiny_model), "b": str(tiny_model)},
        "baseline": "a",
        "candidate": "b",
        **_spec(prompt),
    }
    put = httpx.put(f"{base}/admin/deployments/support", json=spec, headers=AUTH, timeout=120)
    assert put.status_code == 201, put.text
    assert httpx.post(f"{base}/admin/deployments/support/start", json={}, headers=AUTH).status_code == 200

    def ask(user: int, **extra: Any) -> httpx.Response:
        body = {
            "model": "support",
            "messages": [{"role": "user", "content": "how do I roll back?"}],
            "max_tokens": 1,
            "temperature": 0,
            **extra,
        }
        return httpx.post(
            f"{base}/v1/chat/completions",
            json=body,
            headers={"x-routing-key": f"user-{user}"},
            timeout=60,
        )

    # each variant renders its own prompt version: b's is longer; b without 'tone' is a 422
    seen: dict[str, int] = {}
    user_of: dict[str, int] = {}
    for user in range(40):
        answer = ask(user, variables={"tone": "calm"})
        assert answer.status_code == 200, answer.text
        variant = answer.headers["x-lockgate-variant"]
        seen[variant] = answer.json()["usage"]["prompt_tokens"]
        user_of.setdefault(variant, user)
    assert set(seen) == {"a", "b"} and seen["b"] > seen["a"]
    missing = ask(user_of["b"])
    assert missing.status_code == 422
    error = missing.json()["error"]
    assert "tone" in error["message"] and f"{prompt}@2" in error["message"]
    assert ask(user_of["a"]).status_code == 200  # a's version takes only the user's text

    # simulated users like b's answers more often: thumbs up 0.8 against 0.2
    rng = random.Random(7)
    deadline = time.monotonic() + 120
    phase = "experimenting"
    user = 0
    while phase == "experimenting" and time.monotonic() < deadline:
        for _ in range(20):
            user = (user + 1) % 300
            answer = ask(user, variables={"tone": "calm"})
            assert answer.status_code == 200, answer.text
            liked = rng.random() < (0.8 if answer.headers["x-lockgate-variant"] == "b" else 0.2)
            feedback = httpx.post(
                f"{base}/v2/models/support/feedback",
                json={"request_id": answer.headers["x-request-id"], "label": int(liked)},
                timeout=10,
            )
            assert feedback.status_code == 200, feedback.text
        time.sleep(0.1)
        phase = httpx.get(f"{base}/admin/deployments/support", headers=AUTH).json()["phase"]
    status = httpx.get(f"{base}/admin/deployments/support", headers=AUTH).json()
    assert status["phase"] == "promoted", status
    variants = status["variants"]
    assert variants["b"]["conversions"]["rate"] > variants["a"]["conversions"]["rate"]

    # the LLM metrics of each variant: in the status (by guardrail name) and on /metrics
    llm = variants["b"]["llm"]
    assert llm["completion_tokens"] == 1 and llm["prompt_tokens"] == seen["b"]
    assert llm["ttft_ms"] > 0 and llm["error_rate"] == 0 and "empty_answer_rate" in llm
    assert llm["cost_per_1k_tokens"] == pytest.approx(0.002)
    assert "cost_per_1k_tokens" not in variants["a"]["llm"]  # a has no price
    metrics = httpx.get(f"{base}/metrics").text
    llm_lines = [line for line in metrics.splitlines() if line.startswith("lockgate_llm_generations")]
    assert any('deployment="support"' in line and 'variant="b"' in line for line in llm_lines), llm_lines
    assert "lockgate_llm_time_to_first_token_seconds_bucket{" in metrics
    assert 'kind="prompt"' in metrics and "lockgate_llm_cost_total{" in metrics


def test_a_prompt_that_is_not_registered_stops_the_deploy(
    mlflow_home: Path, unique: str, tiny_model: Path, handle: ServerHandle
) -> None:
    spec = {
        "name": "support",
        "variants": {"a": str(tiny_model), "b": str(tiny_model)},
        "baseline": "a",
        "candidate": "b",
        **_spec(f"nope-{unique}"),
    }
    put = httpx.put(f"{handle.url}/admin/deployments/support", json=spec, headers=AUTH, timeout=120)
    assert put.status_code == 404, put.text
    assert f"variant 'a': there is no prompt 'nope-{unique}'" in put.text


def test_a_shadow_prompt_version_answers_a_copy_that_is_compared(
    mlflow_home: Path, unique: str, tiny_model: Path, handle: ServerHandle, cli: Any
) -> None:
    """Shadow between two prompt versions of one model: users get a's answers; b answers copies
    with its own prompt version, off the request path, and the two answers are compared."""
    prompt = f"support-{unique}"
    register_prompt(connect(), prompt, V1)
    register_prompt(connect(), prompt, V2)
    base = handle.url
    spec = {
        "name": "support",
        "variants": {"a": str(tiny_model), "b": str(tiny_model)},
        "baseline": "a",
        "candidate": "b",
        **_spec(prompt),
        "strategy": {"type": "shadow", "fraction": 1.0, "min_requests": 100000, "min_duration_s": 600},
    }
    put = httpx.put(f"{base}/admin/deployments/support", json=spec, headers=AUTH, timeout=120)
    assert put.status_code == 201, put.text
    assert httpx.post(f"{base}/admin/deployments/support/start", json={}, headers=AUTH).status_code == 200
    for user in range(12):
        body = {
            "model": "support",
            "messages": [{"role": "user", "content": "how do I roll back?"}],
            "max_tokens": 6,
            "temperature": 0,
            "variables": {"tone": "calm"},
            "stream": user % 2 == 0,
        }
        headers = {"x-routing-key": f"user-{user}"}
        answer = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert answer.status_code == 200 and answer.headers["x-lockgate-variant"] == "a"
    shadow: dict[str, Any] = {}
    deadline = time.monotonic() + 120  # the first comparison loads MiniLM
    while time.monotonic() < deadline and shadow.get("answers_compared", 0) < 12:
        time.sleep(0.2)
        status = httpx.get(f"{base}/admin/deployments/support", headers=AUTH).json()
        shadow = status["shadow"]
    assert shadow["answers_compared"] == 12 and shadow["failed"] == 0, shadow
    assert 0.0 <= shadow["exact_match_rate"] <= 1.0 and shadow["mean_length_ratio"] > 0
    assert -1.0 <= shadow["min_answer_cosine"] <= shadow["mean_answer_cosine"] <= 1.0 + 1e-9
    llm = status["variants"]
    assert llm["b"]["llm"]["prompt_tokens"] > llm["a"]["llm"]["prompt_tokens"]  # b's own version
    assert 'lockgate_shadow_answer_cosine{deployment="support"}' in httpx.get(f"{base}/metrics").text
    code, out, err = cli("rollout", "status", "support", "--url", base, "--token", TOKEN)
    assert code == 0, err
    assert "shadow answers: 12 compared" in out and "ttft p50 ms" in out
