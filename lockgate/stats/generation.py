"""What a generative variant's answers cost and how fast they came: a mergeable accumulator.

One :meth:`GenerationStats.add` per finished (or failed) generation: time to first token, the mean
gap between tokens after the first, output tokens per second, the prompt's and the answer's tokens,
the cost at the variant's price, and whether it timed out, failed or answered nothing. Workers add
up with ``+`` like every accumulator in :mod:`lockgate.stats.accumulators`; :meth:`values` gives the
numbers by the names a spec's guardrails use (:data:`GENERATION_METRICS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lockgate.stats.accumulators import LatencyHistogram, Moments

__all__ = ["GENERATION_METRICS", "MIN_GENERATIONS", "GenerationStats", "generation_values"]

GENERATION_METRICS: dict[str, str] = {
    "ttft_ms": "time to first token, median (ms)",
    "ttft_p99_ms": "time to first token, 99th percentile (ms)",
    "inter_token_ms": "mean gap between output tokens after the first, median over requests (ms)",
    "output_tokens_per_s": "output tokens per second of a generation, mean over requests",
    "prompt_tokens": "prompt tokens per request, mean",
    "completion_tokens": "completion tokens per request, mean",
    "tokens_per_request": "prompt and completion tokens per request, mean",
    "cost_per_request": "cost per request at the variant's price_per_1k_tokens, mean",
    "cost_per_1k_tokens": "cost per 1,000 tokens served",
    "timeout_rate": "share of generations that timed out",
    "error_rate": "share of generations that failed (timeouts included)",
    "empty_answer_rate": "share of answered generations with no text (or only whitespace)",
}
"""The guardrail names of generation metrics (``analysis.metrics`` entries with no ``query``)."""


@dataclass
class GenerationStats:
    """Counts and distributions of one variant's generations."""

    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    empty: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    priced_tokens: int = 0  # tokens of generations with a price: the cost's denominator
    cost: float = 0.0
    ttft: LatencyHistogram = field(default_factory=LatencyHistogram)
    inter_token: LatencyHistogram = field(default_factory=LatencyHistogram)
    tokens_per_s: Moments = field(default_factory=Moments)

    def add(
        self,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        ttft_ms: float | None,
        duration_ms: float,
        last_token_ms: float | None = None,
        is_empty: bool = False,
        is_error: bool = False,
        is_timeout: bool = False,
        price_per_1k_tokens: float | None = None,
    ) -> None:
        """One generation: ``ttft_ms`` and ``last_token_ms`` from its start (None: no token came),
        ``duration_ms`` to its end. A failed one counts its error and the tokens it used."""
        self.requests += 1
        self.errors += int(is_error or is_timeout)
        self.timeouts += int(is_timeout)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        if price_per_1k_tokens is not None:
            tokens = prompt_tokens + completion_tokens
            self.priced_tokens += tokens
            self.cost += price_per_1k_tokens * tokens / 1000.0
        if is_error or is_timeout:
            return
        self.empty += int(is_empty)
        if ttft_ms is not None:
            self.ttft.add(ttft_ms)
            if last_token_ms is not None and completion_tokens > 1:
                self.inter_token.add(max(0.0, last_token_ms - ttft_ms) / (completion_tokens - 1))
        if duration_ms > 0 and completion_tokens:
            self.tokens_per_s.add(completion_tokens * 1000.0 / duration_ms)

    def values(self) -> dict[str, float]:
        """The :data:`GENERATION_METRICS` that have data (none before the first generation)."""
        if not self.requests:
            return {}
        out: dict[str, float] = {
            "prompt_tokens": self.prompt_tokens / self.requests,
            "completion_tokens": self.completion_tokens / self.requests,
            "tokens_per_request": (self.prompt_tokens + self.completion_tokens) / self.requests,
            "timeout_rate": self.timeouts / self.requests,
            "error_rate": self.errors / self.requests,
        }
        answered = self.requests - self.errors
        if answered:
            out["empty_answer_rate"] = self.empty / answered
        if self.ttft.count:
            out["ttft_ms"] = self.ttft.quantile(0.5)
            out["ttft_p99_ms"] = self.ttft.quantile(0.99)
        if self.inter_token.count:
            out["inter_token_ms"] = self.inter_token.quantile(0.5)
        if self.tokens_per_s.count:
            out["output_tokens_per_s"] = self.tokens_per_s.mean
        if self.priced_tokens:
            out["cost_per_1k_tokens"] = self.cost * 1000.0 / self.priced_tokens
            out["cost_per_request"] = self.cost / self.requests
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def merge(self, other: GenerationStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.timeouts += other.timeouts
        self.empty += other.empty
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.priced_tokens += other.priced_tokens
        self.cost += other.cost
        self.ttft.merge(other.ttft)
        self.inter_token.merge(other.inter_token)
        self.tokens_per_s.merge(other.tokens_per_s)

    def __add__(self, other: GenerationStats) -> GenerationStats:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> GenerationStats:
        return GenerationStats(
            self.requests,
            self.errors,
            self.timeouts,
            self.empty,
            self.prompt_tokens,
            self.completion_tokens,
            self.priced_tokens,
            self.cost,
            self.ttft.copy(),
            self.inter_token.copy(),
            self.tokens_per_s.copy(),
        )

    _COUNTS: ClassVar[tuple[str, ...]] = (
        "requests",
        "errors",
        "timeouts",
        "empty",
        "prompt_tokens",
        "completion_tokens",
        "priced_tokens",
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in self._COUNTS},
            "cost": self.cost,
            "ttft": self.ttft.to_dict(),
            "inter_token": self.inter_token.to_dict(),
            "tokens_per_s": self.tokens_per_s.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationStats:
        return cls(
            **{name: int(data[name]) for name in cls._COUNTS},
            cost=float(data["cost"]),
            ttft=LatencyHistogram.from_dict(data["ttft"]),
            inter_token=LatencyHistogram.from_dict(data["inter_token"]),
            tokens_per_s=Moments.from_dict(data["tokens_per_s"]),
        )


MIN_GENERATIONS = 20
"""A generation metric is judged once a variant has generated this many answers in the rollout."""


def generation_values(name: str, generated: Mapping[str, GenerationStats | None]) -> dict[str, float]:
    """Generation metric ``name`` of each variant with at least :data:`MIN_GENERATIONS` answers."""
    out = {}
    for variant, stats in generated.items():
        if stats is not None and stats.requests >= MIN_GENERATIONS:
            value = stats.values().get(name)
            if value is not None:
                out[variant] = value
    return out
