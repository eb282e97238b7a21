"""Timing a generation as it streams, for the LLM metrics: one clock read per chunk.

:func:`observe` passes a generation's chunks through unchanged and, when it ends, adds one
generation to the variant's :class:`~lockgate.stats.generation.GenerationStats`: time to the first
token, time to the last, tokens, cost at the variant's price, and whether it timed out, failed or
answered nothing. A generation the client abandoned (the stream closed early) is not counted.

:class:`GenerationCollector` exports those counters on ``/metrics`` for every served generative
variant, a plain model's (``deployment=""``) and each deployment variant's (two variants of one
model with two prompt versions are told apart by ``variant``):

- ``lockgate_llm_generations_total``, ``lockgate_llm_errors_total``, ``lockgate_llm_timeouts_total``,
  ``lockgate_llm_empty_answers_total``;
- ``lockgate_llm_tokens_total{kind="prompt"|"completion"}`` and ``lockgate_llm_cost_total``;
- histograms ``lockgate_llm_time_to_first_token_seconds`` and ``lockgate_llm_inter_token_seconds``;
- ``lockgate_llm_output_tokens_per_second`` (mean over generations).

With several worker processes the families reach Prometheus as shared gauges, which cannot carry a
histogram: the two histograms are then ``..._seconds_mean`` gauges, one per worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from lockgate.stats.accumulators import LatencyHistogram
from lockgate.stats.generation import GenerationStats

if TYPE_CHECKING:
    from lockgate.llm.decoding import Chunk, Usage
    from lockgate.serving.app import ServingApp
    from lockgate.serving.variant import Variant

__all__ = ["GenerationCollector", "observe", "record_failure"]

_GATEWAY_TIMEOUT = 504


async def observe(
    chunks: AsyncIterator[Chunk],
    stats: GenerationStats,
    *,
    price_per_1k_tokens: float | None,
    started: float | None = None,
) -> AsyncIterator[Chunk]:
    """``chunks``, counted into ``stats`` when the generation ends (``started``: perf_counter).
    The token counts are the last chunk's ``usage`` (a local model's or an upstream's)."""
    began = time.perf_counter() if started is None else started
    first = last = None
    usage: Usage | None = None
    has_text = False
    try:
        async for chunk in chunks:
            if chunk.text:
                last = time.perf_counter()
                if first is None:
                    first = last
                has_text = has_text or not chunk.text.isspace()
            if chunk.usage is not None:
                usage = chunk.usage
            yield chunk
    except (GeneratorExit, asyncio.CancelledError):
        raise  # the client went away: not a generation to judge the variant by
    except Exception as exc:
        _add(stats, began, first, last, usage, has_text, exc, price_per_1k_tokens)
        raise
    else:
        _add(stats, began, first, last, usage, has_text, None, price_per_1k_tokens)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def record_failure(
    stats: GenerationStats, failure: Exception, *, started: float, price_per_1k_tokens: float | None
) -> None:
    """A generation that failed before its first chunk (an upstream's 502 or 504); a client's
    mistake (a 4xx) is not the variant's and is not counted."""
    _add(stats, started, None, None, None, False, failure, price_per_1k_tokens)


def _add(
    stats: GenerationStats,
    began: float,
    first: float | None,
    last: float | None,
    usage: Usage | None,
    has_text: bool,
    failure: Exception | None,
    price_per_1k_tokens: float | None,
) -> None:
    status = getattr(failure, "http_status", 500)
    if failure is not None and status < 500:
        return
    now = time.perf_counter()
    is_timeout = failure is not None and (isinstance(failure, TimeoutError) or status == _GATEWAY_TIMEOUT)
    stats.add(
        prompt_tokens=usage.prompt_tokens if usage is not None else 0,
        completion_tokens=usage.completion_tokens if usage is not None else 0,
        ttft_ms=None if first is None else (first - began) * 1000.0,
        last_token_ms=None if last is None else (last - began) * 1000.0,
        duration_ms=(now - began) * 1000.0,
        is_empty=not has_text,
        is_error=failure is not None and not is_timeout,
        is_timeout=is_timeout,
        price_per_1k_tokens=price_per_1k_tokens,
    )


_LABELS = ["deployment", "variant", "model", "version"]


class GenerationCollector:
    """The LLM metrics of an app's generative variants, read on each scrape."""

    def __init__(self, app: ServingApp, *, histograms: bool = True) -> None:
        self.app = app
        self.histograms = histograms

    def _served(self) -> Iterator[tuple[list[str], GenerationStats]]:
        def labelled(
            deployment: str, name: str, variant: Variant
        ) -> tuple[list[str], GenerationStats] | None:
            stats = variant.generation
            if stats is None:
                return None
            return [deployment, name, variant.model_name, variant.model_version], stats

        found = [labelled("", key, variant) for key, variant in sorted(self.app.variants.items())]
        deployments = self.app.deployments
        if deployments is not None:
            for deployment, live in sorted(deployments.live.items()):
                found += [labelled(deployment, n, v) for n, v in sorted(live.variants.items())]
        yield from (item for item in found if item is not None)

    def collect(self) -> Iterator[Metric]:
        counters: dict[str, tuple[str, Callable[[GenerationStats], float]]] = {
            "generations": ("Generations finished or failed.", lambda s: s.requests),
            "errors": ("Generations that failed (timeouts included).", lambda s: s.errors),
            "timeouts": ("Generations that timed out.", lambda s: s.timeouts),
            "empty_answers": ("Generations that answered no text.", lambda s: s.empty),
            "cost": ("Cost of the tokens served, at the variant's price per 1,000 tokens.", lambda s: s.cost),
        }
        families = {
            name: CounterMetricFamily(f"lockgate_llm_{name}", text, labels=_LABELS)
            for name, (text, _) in counters.items()
        }
        tokens = CounterMetricFamily("lockgate_llm_tokens", "Tokens served.", labels=[*_LABELS, "kind"])
        timings = {
            "time_to_first_token": ("Time to the first token.", _ttft),
            "inter_token": ("Mean gap between output tokens after the first, per generation.", _inter_token),
        }
        shapes = {
            name: HistogramMetricFamily(f"lockgate_llm_{name}_seconds", text, labels=_LABELS)
            if self.histograms
            else GaugeMetricFamily(f"lockgate_llm_{name}_seconds_mean", text + " Mean.", labels=_LABELS)
            for name, (text, _) in timings.items()
        }
        speed = GaugeMetricFamily(
            "lockgate_llm_output_tokens_per_second",
            "Output tokens per second of a generation, mean over generations.",
            labels=_LABELS,
        )
        for labels, stats in self._served():
            for name, (_, value) in counters.items():
                families[name].add_metric(labels, float(value(stats)))
            tokens.add_metric([*labels, "prompt"], float(stats.prompt_tokens))
            tokens.add_metric([*labels, "completion"], float(stats.completion_tokens))
            for name, (_, histogram_of) in timings.items():
                histogram = histogram_of(stats)
                family = shapes[name]
                if isinstance(family, HistogramMetricFamily):
                    family.add_metric(labels, *_buckets(histogram))
                elif histogram.count:
                    family.add_metric(labels, histogram.mean_ms / 1000.0)
            if stats.tokens_per_s.count:
                speed.add_metric(labels, stats.tokens_per_s.mean)
        yield from (*families.values(), tokens, *shapes.values(), speed)


def _ttft(stats: GenerationStats) -> LatencyHistogram:
    return stats.ttft


def _inter_token(stats: GenerationStats) -> LatencyHistogram:
    return stats.inter_token


def _buckets(histogram: LatencyHistogram) -> tuple[list[tuple[str, float]], float]:
    """Prometheus's cumulative buckets (seconds) and sum of a latency histogram (ms)."""
    counts = histogram.counts.tolist() if histogram.counts.size else [0] * (len(histogram.bounds_ms) + 1)
    out, total = [], 0
    for bound_ms, count in zip(histogram.bounds_ms, counts, strict=False):
        total += count
        out.append((floatToGoString(bound_ms / 1000.0), float(total)))  # type: ignore[no-untyped-call]
    out.append(("+Inf", float(sum(counts))))
    return out, histogram.sum_ms / 1000.0
