"""Generations as MLflow traces: sampling, the off-path writer on a real MLflow store, reading them
back, and a slow store costing traces, not waiting."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.llm.traces import Generation, TraceWriter, check_rate, is_sampled, list_traces, trace_link
from lockgate.tracking.connection import connect


def _generation(request_id: str, *, deployment: str = "support", variant: str = "v2") -> Generation:
    now = time.time_ns()
    return Generation(
        request_id, deployment, variant, "tiny", "3", "user: hi", "hello there", 4, 7, now, now + 9_000_000,
        ttft_ms=1.5, finish_reason="stop", prompt_version="support@2",
    )  # fmt: skip


def test_sampling_is_decided_by_the_request_id() -> None:
    ids = [f"req-{i}" for i in range(4000)]
    picked = [i for i in ids if is_sampled(i, 0.1)]
    assert 300 < len(picked) < 500
    assert picked == [i for i in ids if is_sampled(i, 0.1)]  # every gateway chooses the same
    assert not any(is_sampled(i, 0.0) for i in ids) and all(is_sampled(i, 1.0) for i in ids)


def test_a_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(UserError, match="between 0 and 1"):
        check_rate(1.5)


def test_a_link_is_given_only_for_a_tracking_server() -> None:
    assert trace_link("sqlite:///x.db", "1", "tr-1") is None
    link = trace_link("http://127.0.0.1:5000/", "7", "tr-1")
    assert link == "http://127.0.0.1:5000/#/experiments/7/traces?selectedEvaluationId=tr-1"


@pytest.mark.integration
def test_written_generations_are_listed_per_deployment_newest_first(lockgate_home: Path) -> None:
    connection = connect()
    writer = TraceWriter(connection.settings.tracking_uri, settings=connection.settings)
    for i in range(3):
        assert writer.offer(_generation(f"r{i}"))
        time.sleep(0.002)
    writer.offer(_generation("other", deployment="search"))
    writer.close()
    assert (writer.written, writer.failed, writer.dropped) == (4, 0, 0)
    assert not (lockgate_home.parent / "mlruns").exists(), "trace artifacts stay under LOCKGATE_HOME"
    rows = list_traces(connection, "support", limit=10)
    assert [row.tags["request_id"] for row in rows] == ["r2", "r1", "r0"]
    first = rows[0]
    assert first.tags["prompt_version"] == "support@2" and first.tags["model"] == "tiny/3"
    assert first.attributes["completion_tokens"] == 7 and first.attributes["ttft_ms"] == 1.5
    assert first.duration_ms == pytest.approx(9.0) and first.status == "OK"
    assert list_traces(connection, "support", limit=2)[-1].tags["request_id"] == "r1"
    assert list_traces(connection, "nothing-here") == []


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a tracking server that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.mark.integration
def test_a_hanging_store_drops_traces_instead_of_blocking_the_offer(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    writer = TraceWriter(silent_server, capacity=2)
    accepted = [writer.offer(_generation(f"r{i}")) for i in range(10)]
    assert accepted.count(True) <= 3  # the queue's two, and one the thread may have taken
    assert writer.dropped == accepted.count(False) >= 7


@pytest.mark.integration
def test_the_traces_command_lists_and_explains_an_empty_result(cli: object, lockgate_home: Path) -> None:
    writer = TraceWriter(connect().settings.tracking_uri)
    writer.offer(_generation("r0"))
    writer.close()
    code, out, _ = cli("traces", "support")  # type: ignore[operator]
    assert code == 0 and "support@2" in out and "4/7" in out, out
    code, out, _ = cli("traces", "nobody")  # type: ignore[operator]
    assert code == 0 and "--trace-sample" in out
    code, _, err = cli("traces", "support", "--limit", "0")  # type: ignore[operator]
    assert code == 2 and "--limit" in err


@pytest.mark.integration
def test_a_served_generation_is_traced_with_its_variant_tokens_and_timings(
    tiny_model: Path, lockgate_home: Path
) -> None:
    import httpx

    from lockgate.serving.server import ServeConfig, build_app, run_server_in_thread
    from lockgate.serving.source import resolve_source

    connection = connect()  # the store exists before the server, as it does in production
    config = ServeConfig(str(tiny_model), trace_sample=1.0)
    handle = run_server_in_thread(build_app(resolve_source(str(tiny_model), name="tiny"), config=config))
    try:
        body = {"model": "tiny", "prompt": "user: What is a canary?", "max_tokens": 5, "temperature": 0}
        answer = httpx.post(handle.url + "/v1/completions", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        streamed = httpx.post(handle.url + "/v1/completions", json={**body, "stream": True}, timeout=60)
        assert streamed.status_code == 200
    finally:
        handle.stop()  # shutdown writes what is queued
    rows = list_traces(connection, "tiny")
    assert len(rows) == 2
    for row in rows:
        assert row.tags["variant"] == "tiny" and row.status == "OK"
        assert row.attributes["completion_tokens"] == 5 and row.attributes["endpoint"] == "/v1/completions"
        assert 0 < row.attributes["ttft_ms"] <= row.attributes["duration_ms"]


def test_a_server_refuses_a_sample_rate_above_one() -> None:
    from lockgate.serving.server import ServeConfig

    with pytest.raises(UserError, match="between 0 and 1"):
        ServeConfig("model", trace_sample=2.0)
