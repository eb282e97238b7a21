"""The generation accumulator: what a generative variant's answers cost and how fast they came."""

from __future__ import annotations

import pytest

from lockgate.rollout.state import stats_since
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.generation import GENERATION_METRICS, GenerationStats, generation_values


def _one(stats: GenerationStats, **overrides: object) -> None:
    values: dict[str, object] = {
        "prompt_tokens": 20,
        "completion_tokens": 11,
        "ttft_ms": 40.0,
        "last_token_ms": 140.0,
        "duration_ms": 150.0,
        "price_per_1k_tokens": 0.002,
    }
    values.update(overrides)
    stats.add(**values)  # type: ignore[arg-type]


def test_values_are_the_guardrail_metrics() -> None:
    stats = GenerationStats()
    assert stats.values() == {}
    _one(stats)
    _one(stats, completion_tokens=0, ttft_ms=None, last_token_ms=None, is_empty=True)
    _one(stats, is_timeout=True)
    _one(stats, is_error=True)
    values = stats.values()
    assert set(values) == set(GENERATION_METRICS)
    assert values["ttft_ms"] == pytest.approx(40.0, rel=0.3)  # a histogram's quantile
    assert values["inter_token_ms"] == pytest.approx(10.0, rel=0.3)  # 100 ms over 10 gaps
    assert values["output_tokens_per_s"] == pytest.approx(11 / 0.150)
    assert values["prompt_tokens"] == 20 and values["completion_tokens"] == pytest.approx(33 / 4)
    assert values["timeout_rate"] == 0.25 and values["error_rate"] == 0.5
    assert values["empty_answer_rate"] == 0.5  # of the two answered
    assert values["cost_per_1k_tokens"] == pytest.approx(0.002)
    assert values["cost_per_request"] == pytest.approx(0.002 * (80 + 33) / 1000 / 4)


def test_it_merges_round_trips_and_rides_in_the_variant_snapshot() -> None:
    a, b = GenerationStats(), GenerationStats()
    _one(a)
    _one(b, ttft_ms=400.0, price_per_1k_tokens=None)
    merged = a + b
    assert merged.requests == 2 and merged.ttft.count == 2 and merged.priced_tokens == 31
    assert GenerationStats.from_dict(merged.to_dict()) == merged
    plain = VariantStats(requests=3)
    assert "generation" not in plain.to_dict()  # other models' snapshots are unchanged
    generative = VariantStats(requests=1, generation=a)
    assert VariantStats.from_dict(generative.to_dict()) == generative
    assert (plain + generative).generation == a and (generative + generative).generation == a + a


def test_since_the_rollout_began_and_judged_from_a_minimum() -> None:
    start = VariantStats(requests=1, generation=GenerationStats())
    assert start.generation is not None
    _one(start.generation, is_empty=True)
    now = start.copy()
    assert now.generation is not None
    for _ in range(25):
        now.requests += 1
        _one(now.generation)
    since = stats_since(now, start).generation
    assert since is not None and since.requests == 25 and since.empty == 0
    assert generation_values("empty_answer_rate", {"a": since, "b": start.generation, "c": None}) == {
        "a": 0.0
    }
