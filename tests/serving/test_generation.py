"""Timing generations as they stream, and their LLM metrics on /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lockgate.errors import LockgateError, UpstreamError, UpstreamTimeout, UserError
from lockgate.llm.decoding import Chunk, Usage
from lockgate.serving.generation import GenerationCollector, observe, record_failure
from lockgate.serving.predictor import FunctionPredictor
from lockgate.serving.signature import Signature
from lockgate.serving.variant import Variant
from lockgate.stats.generation import GenerationStats


async def _chunks(texts: list[str], *, fail: bool = False, timeout: bool = False) -> AsyncIterator[Chunk]:
    for text in texts:
        await asyncio.sleep(0.001)
        yield Chunk(text)
    if timeout:
        raise TimeoutError("the upstream did not answer in time")
    if fail:
        raise LockgateError("the model failed")
    yield Chunk("", "length", Usage(7, len(texts)))


async def _drain(chunks: AsyncIterator[Chunk], stats: GenerationStats, **kwargs: Any) -> str:
    out = []
    async for chunk in observe(chunks, stats, price_per_1k_tokens=kwargs.get("price")):
        out.append(chunk.text)
    return "".join(out)


def test_a_generation_is_counted_when_it_ends() -> None:
    stats = GenerationStats()
    assert asyncio.run(_drain(_chunks(["a", "b", "c"]), stats, price=1.0)) == "abc"
    assert (stats.requests, stats.prompt_tokens, stats.completion_tokens) == (1, 7, 3)
    assert stats.ttft.count == 1 and stats.inter_token.count == 1 and stats.cost == pytest.approx(0.01)
    asyncio.run(_drain(_chunks([" ", "\n"]), stats))
    assert stats.empty == 1
    for kwargs, attribute in (({"fail": True}, "errors"), ({"timeout": True}, "timeouts")):
        with pytest.raises((LockgateError, TimeoutError)):
            asyncio.run(_drain(_chunks(["x"], **kwargs), stats))
        assert getattr(stats, attribute) >= 1
    assert (stats.requests, stats.errors, stats.timeouts) == (4, 2, 1)


def test_a_failure_before_the_first_chunk_counts_unless_it_is_the_clients() -> None:
    stats = GenerationStats()
    timeout = UpstreamTimeout("upstream 'hosted' did not answer in 30 s")
    record_failure(stats, timeout, started=0.0, price_per_1k_tokens=None)
    record_failure(
        stats, UpstreamError("upstream 'hosted' answered 500"), started=0.0, price_per_1k_tokens=None
    )
    record_failure(stats, UserError("max_tokens is too many"), started=0.0, price_per_1k_tokens=None)
    assert (stats.requests, stats.errors, stats.timeouts) == (2, 2, 1)


def test_a_generation_the_client_abandoned_is_not_counted() -> None:
    async def abandon() -> None:
        stream = observe(_chunks(["a", "b", "c"]), stats, price_per_1k_tokens=None)
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]

    stats = GenerationStats()
    asyncio.run(abandon())
    assert stats.requests == 0


@pytest.mark.parametrize("histograms", [True, False])
def test_the_collector_exports_each_generative_variant(histograms: bool) -> None:
    variant = Variant("tiny", "1", FunctionPredictor(lambda x: x, Signature("any")))
    plain = Variant("iris", "2", FunctionPredictor(lambda x: x, Signature("any")))
    asyncio.run(_drain(_chunks(["a", "b"]), variant.generation_stats(), price=2.0))
    app = SimpleNamespace(variants={"tiny": variant, "iris": plain}, deployments=None)
    registry = CollectorRegistry()
    registry.register(GenerationCollector(app, histograms=histograms))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    labels = 'deployment="",model="tiny",variant="tiny",version="1"'  # sorted by Prometheus
    assert f"lockgate_llm_generations_total{{{labels}}} 1.0" in text
    completion = labels.replace('deployment=""', 'deployment="",kind="completion"')
    assert f"lockgate_llm_tokens_total{{{completion}}} 2.0" in text
    assert f"lockgate_llm_cost_total{{{labels}}} 0.018" in text
    assert 'variant="iris"' not in text  # no generation: nothing to export
    if histograms:
        assert "lockgate_llm_time_to_first_token_seconds_count{" + labels + "} 1.0" in text
    else:
        assert f"lockgate_llm_time_to_first_token_seconds_mean{{{labels}}}" in text
