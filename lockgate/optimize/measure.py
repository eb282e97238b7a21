"""Time a model's calls and weigh its files: the I/O half of the trade-off record."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.optimize.tradeoff import Latency, latency_summary

__all__ = ["MeasureConfig", "folder_bytes", "measure_latency"]


@dataclass(frozen=True)
class MeasureConfig:
    """How many calls to time at batch 1 and 32 (after ``warmup`` untimed ones)."""

    calls_b1: int = 50
    calls_b32: int = 10
    warmup: int = 2

    @classmethod
    def quick(cls) -> MeasureConfig:
        return cls(calls_b1=5, calls_b32=2, warmup=1)


def measure_latency(
    predict: Callable[[Any], Any],
    batch: Any,
    calls: int,
    *,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> Latency:
    """p50/p95 of ``calls`` timed calls of ``predict(batch)``."""
    for _ in range(warmup):
        predict(batch)
    samples = []
    for _ in range(max(1, calls)):
        started = clock()
        predict(batch)
        samples.append((clock() - started) * 1000.0)
    return latency_summary(samples, len(batch))


def folder_bytes(path: Path, *, skip: Sequence[str] = ()) -> int:
    """Total size of the files under ``path`` (or of ``path`` itself), leaving out names in ``skip``."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name not in skip)
