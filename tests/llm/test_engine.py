"""Decoding in a process of its own: the same answers as the decoding thread, a child that fails to
load or dies is a clear error (and the next request starts a new one), a client that leaves frees
its slot in the child's batch."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lockgate.errors import LockgateError, UserError
from lockgate.llm.engine import ProcessDecoder
from lockgate.llm.params import SamplingParams
from lockgate.llm.runtime import GenerativePredictor
from lockgate.serving.server import ServeConfig, ServerHandle, build_app, run_server_in_thread
from lockgate.serving.source import resolve_source
from tests.support import wait_until

pytestmark = pytest.mark.integration


async def _answers(predictor: GenerativePredictor, count: int, max_tokens: int = 16) -> list[str]:
    async def one(seed: int) -> str:
        params = SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=seed)
        return "".join([c.text async for c in predictor.generate(predictor.encode("The server"), params)])

    try:
        return list(await asyncio.gather(*(one(seed) for seed in range(count))))
    finally:
        await predictor.stop()


def _loaded(path: Path, engine: str) -> GenerativePredictor:
    predictor = GenerativePredictor(path, engine=engine, threads=1)  # type: ignore[arg-type]
    predictor.load()
    return predictor


def test_the_process_gives_the_threads_answers_seed_for_seed(tiny_model: Path) -> None:
    in_process = _loaded(tiny_model, "process")
    assert isinstance(in_process.scheduler, ProcessDecoder)
    assert in_process.model.model is None  # the weights are in the child only
    expected = asyncio.run(_answers(_loaded(tiny_model, "thread"), 6))
    assert asyncio.run(_answers(in_process, 6)) == expected
    assert asyncio.run(_answers(in_process, 6)) == expected  # stopped, then started again


def test_a_model_the_child_cannot_load_is_a_user_error_with_its_reason(
    tiny_model: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="decoding process could not load") as error:
        _loaded(broken, "process")
    assert "safetensors" in str(error.value).lower() or "header" in str(error.value).lower()


def test_a_child_that_dies_fails_the_requests_in_flight_and_the_next_starts_a_new_one(
    tiny_model: Path,
) -> None:
    predictor = _loaded(tiny_model, "process")
    decoder = predictor.scheduler
    assert isinstance(decoder, ProcessDecoder)

    async def scenario() -> str:
        params = SamplingParams(max_tokens=120, temperature=1.0, seed=1)
        stream = predictor.generate(predictor.encode("The server"), params)
        await anext(stream)  # decoding has started
        assert decoder._process is not None
        os.kill(decoder._process.pid, signal.SIGKILL)
        with pytest.raises(LockgateError, match="decoding process exited"):
            async for _ in stream:
                pass
        try:
            return "".join(
                [
                    c.text
                    async for c in predictor.generate(
                        predictor.encode("lockgate"), SamplingParams(max_tokens=5)
                    )
                ]
            )
        finally:
            await predictor.stop()

    assert asyncio.run(asyncio.wait_for(scenario(), 120))


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[ServerHandle]:
    source = resolve_source(str(tiny_model), name="tiny")
    handle = run_server_in_thread(
        build_app(source, config=ServeConfig(str(tiny_model), decode_engine="process"))
    )
    yield handle
    handle.stop()


def test_a_served_model_decodes_in_its_own_process_by_default(server: ServerHandle) -> None:
    predictor = server.app.variants["tiny"].predictor
    assert isinstance(predictor, GenerativePredictor) and predictor.engine == "process"
    assert ServeConfig("m").decode_engine == "process"
    body = {"model": "tiny", "prompt": "lockgate", "max_tokens": 6, "temperature": 0}
    answer = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 6
    streamed = httpx.post(server.url + "/v1/completions", json={**body, "stream": True}, timeout=60)
    assert streamed.text.endswith("data: [DONE]\n\n")


def test_a_client_that_leaves_frees_its_slot_in_the_child(server: ServerHandle) -> None:
    predictor = server.app.variants["tiny"].predictor
    decoder = predictor.scheduler
    assert isinstance(decoder, ProcessDecoder)

    def child_stats() -> tuple[int, int]:
        stats, active = decoder.child_stats_from_thread()
        return stats.tokens, active

    body = {"model": "tiny", "prompt": "lockgate", "max_tokens": 120, "temperature": 0, "stream": True}
    httpx.post(server.url + "/v1/completions", json={**body, "stream": False, "max_tokens": 1}, timeout=60)
    before, _ = child_stats()
    with decoder.hold():  # no step runs until the client has gone
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as answer:
            assert answer.status_code == 200  # the status is sent before the first token
            wait_until(
                lambda: child_stats()[1] == 1,
                timeout_s=30,
                what="the request reached the child",
                interval_s=0.01,
            )
        threading.Event().wait(0.5)  # time for the server to read the close (a wait, not an assertion)
    wait_until(lambda: child_stats()[1] == 0, timeout_s=30, what="the slot freed", interval_s=0.05)
    tokens, active = child_stats()
    assert active == 0
    assert tokens - before < 100


def test_two_concurrent_requests_decode_in_one_batch_in_the_child(server: ServerHandle) -> None:
    decoder = server.app.variants["tiny"].predictor.scheduler
    assert isinstance(decoder, ProcessDecoder)
    body = {"model": "tiny", "prompt": "lockgate", "max_tokens": 8, "temperature": 0}
    httpx.post(server.url + "/v1/completions", json=body, timeout=60)  # the child has started
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with decoder.hold():  # no step runs until both have arrived
            futures = [
                pool.submit(httpx.post, server.url + "/v1/completions", json=body, timeout=60)
                for _ in range(2)
            ]
            both = "both requests reached the child"
            wait_until(
                lambda: decoder.child_stats_from_thread()[1] == 2, timeout_s=30, what=both, interval_s=0.01
            )
        answers = [future.result() for future in futures]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["choices"] == answers[1].json()["choices"]
    assert decoder.child_stats_from_thread()[0].max_batch_size_seen >= 2


def test_a_decode_engine_that_does_not_exist_is_refused() -> None:
    with pytest.raises(UserError, match="decode engine 'gpu'"):
        ServeConfig("m", decode_engine="gpu")
