"""The scheduler on the real tiny model, in process: batching, seeds, stops, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.llm.params import SamplingParams
from lockgate.llm.runtime import GenerativePredictor
from lockgate.llm.scheduler import Chunk


@pytest.fixture(scope="module")
def predictor(tiny_model: Path) -> GenerativePredictor:
    loaded = GenerativePredictor(tiny_model)
    loaded.load()
    return loaded


async def _run(predictor: GenerativePredictor, prompt: str, params: SamplingParams) -> tuple[str, Chunk]:
    text, last = "", None
    async for chunk in predictor.generate(predictor.encode(prompt), params):
        text += chunk.text
        last = chunk
    assert last is not None
    return text, last


def _complete(
    predictor: GenerativePredictor, *requests: tuple[str, SamplingParams]
) -> list[tuple[str, Chunk]]:
    """Run ``requests`` concurrently on a fresh scheduler (one event loop per test)."""
    predictor.scheduler = type(predictor.scheduler)(predictor.model)

    async def main() -> list[tuple[str, Chunk]]:
        try:
            with predictor.scheduler.hold():  # every request joins before the first step
                tasks = [asyncio.ensure_future(_run(predictor, p, params)) for p, params in requests]
                while predictor.scheduler.active < len(requests):
                    await asyncio.sleep(0.001)
            return list(await asyncio.gather(*tasks))
        finally:
            await predictor.scheduler.stop()

    return asyncio.run(main())


def test_concurrent_requests_share_the_decoding_steps(predictor: GenerativePredictor) -> None:
    params = SamplingParams(max_tokens=12, temperature=0.0)
    results = _complete(predictor, ("user: What is a canary?", params), ("The server", params))
    stats = predictor.scheduler.stats
    assert stats.max_batch_size_seen == 2
    assert stats.steps == 12  # one step per token, for both at once (24 one after the other)
    for _, last in results:
        assert last.finish_reason == "length"
        assert last.usage is not None and last.usage.completion_tokens == 12


def test_a_batch_neighbour_does_not_change_a_greedy_answer(predictor: GenerativePredictor) -> None:
    params = SamplingParams(max_tokens=10, temperature=0.0)
    alone = _complete(predictor, ("user: Where are models stored?", params))[0][0]
    beside = _complete(
        predictor, ("user: Where are models stored?", params), ("a much longer prompt " * 3, params)
    )[0][0]
    assert alone == beside


def test_a_seed_makes_sampling_repeatable(predictor: GenerativePredictor) -> None:
    params = SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=42)
    first = _complete(predictor, ("lockgate", params))[0][0]
    second = _complete(predictor, ("lockgate", params), ("other", SamplingParams(max_tokens=5, seed=1)))[0][0]
    assert first == second


def test_a_stop_string_ends_the_answer_before_it(predictor: GenerativePredictor) -> None:
    free = _complete(
        predictor, ("user: How does a rollout end?", SamplingParams(max_tokens=16, temperature=0.0))
    )
    text = free[0][0]
    stop = text[4:6]
    assert stop and stop in text
    stopped, last = _complete(
        predictor,
        ("user: How does a rollout end?", SamplingParams(max_tokens=16, temperature=0.0, stop=(stop,))),
    )[0]
    assert stopped == text[: text.index(stop)]
    assert last.finish_reason == "stop"


def test_a_request_over_the_context_is_refused(predictor: GenerativePredictor) -> None:
    with pytest.raises(UserError, match="context"):
        predictor.scheduler.check_fits(100, predictor.context)


def test_chunks_queued_behind_a_slow_reader_are_sent_as_one() -> None:
    from lockgate.llm.decoding import Usage
    from lockgate.llm.scheduler import _joined

    pending: asyncio.Queue[Chunk] = asyncio.Queue()
    for chunk in (Chunk(" b"), Chunk(" c", "length", Usage(3, 3)), Chunk(" never")):
        pending.put_nowait(chunk)
    joined = _joined(Chunk("a"), pending)
    assert (joined.text, joined.finish_reason, joined.usage) == ("a b c", "length", Usage(3, 3))
    assert pending.qsize() == 1  # nothing after the last chunk is taken
    assert _joined(Chunk("x"), asyncio.Queue()) == Chunk("x")
    failing: asyncio.Queue[Chunk] = asyncio.Queue()
    failing.put_nowait(Chunk("", error="the model failed"))
    assert _joined(Chunk("y"), failing).error == "the model failed"
