"""What lockgate costs in front of an upstream: the same request sent to the upstream directly and
through a lockgate gateway (a deployment whose variant is ``upstream:NAME``), alternately, one at
a time, each over its own kept-alive connection; the overhead is the difference of the medians.

``benchmarks/bench_llm.py`` reports :func:`measure_gateway_overhead`'s ``overhead_ms_p50`` as
``gateway_overhead_ms_p50`` (issue 21's target: at most 1 ms).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from lockgate.errors import UpstreamError

__all__ = ["Overhead", "measure_gateway_overhead", "overhead_from"]

DEFAULT_BODY: Mapping[str, Any] = {"prompt": "The server", "max_tokens": 1, "temperature": 0}


@dataclass(frozen=True)
class Overhead:
    """Median latency direct and through the gateway (ms), their difference, and how many pairs."""

    direct_p50_ms: float
    gateway_p50_ms: float
    overhead_ms_p50: float
    pairs: int

    def to_dict(self) -> dict[str, float]:
        return {
            "direct_p50_ms": self.direct_p50_ms,
            "gateway_p50_ms": self.gateway_p50_ms,
            "overhead_ms_p50": self.overhead_ms_p50,
            "pairs": self.pairs,
        }


def overhead_from(direct_ms: Sequence[float], gateway_ms: Sequence[float]) -> Overhead:
    """The medians of the two sets of timings and their difference."""
    if not direct_ms or len(direct_ms) != len(gateway_ms):
        raise ValueError("give one timing through the gateway for each direct one, at least one")
    direct, gateway = statistics.median(direct_ms), statistics.median(gateway_ms)
    return Overhead(direct, gateway, gateway - direct, len(direct_ms))


def measure_gateway_overhead(
    direct_url: str,
    direct_model: str,
    gateway_url: str,
    gateway_model: str,
    *,
    requests: int = 200,
    warmup: int = 20,
    path: str = "/v1/completions",
    body: Mapping[str, Any] = DEFAULT_BODY,
    timeout_s: float = 60.0,
) -> Overhead:
    """Send ``body`` (with each side's model name) ``requests`` times to ``direct_url + path`` and
    to ``gateway_url + path``, alternating (after ``warmup`` untimed pairs), and compare the medians.

    Both sides should answer the same work (a fixed seed or temperature 0, few tokens), so the
    difference is the gateway's own: routing, the checks, the second HTTP hop.
    """
    direct_ms: list[float] = []
    gateway_ms: list[float] = []
    with httpx.Client(timeout=timeout_s) as direct, httpx.Client(timeout=timeout_s) as gateway:
        sides = (
            (direct, f"{direct_url}{path}", {**body, "model": direct_model}, direct_ms),
            (gateway, f"{gateway_url}{path}", {**body, "model": gateway_model}, gateway_ms),
        )
        for index in range(warmup + requests):
            # alternate which goes first, so neither always follows the other's work
            for client, url, payload, timings in sides if index % 2 == 0 else sides[::-1]:
                started = time.perf_counter()
                response = client.post(url, json=payload)
                elapsed_ms = (time.perf_counter() - started) * 1000.0
                if response.status_code != 200:
                    raise UpstreamError(f"{url} answered {response.status_code}: {response.text[:300]}")
                if index >= warmup:
                    timings.append(elapsed_ms)
    return overhead_from(direct_ms, gateway_ms)
