"""Mergeable sufficient statistics for what each variant serves.

Every accumulator can absorb one value (``add``), a vector of values (``update``), and another
accumulator of the same kind (``merge`` in place, ``+`` for a new one), so several worker processes or
gateways add up exactly. ``to_dict``/``from_dict`` give the small snapshot the store keeps.

Mean and variance merge with the pairwise formulas of Chan, Golub and LeVeque (1979), "Updating
formulae and a pairwise algorithm for computing sample variances".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError

__all__ = ["LatencyHistogram", "Moments", "Proportion", "VariantStats", "default_latency_bounds_ms"]


@dataclass
class Moments:
    """Count, mean and sum of squared deviations (``m2``) of a numeric stream."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def update(self, values: npt.ArrayLike) -> None:
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return
        batch_mean = float(arr.mean())
        batch = Moments(int(arr.size), batch_mean, float(((arr - batch_mean) ** 2).sum()))
        self.merge(batch)

    def merge(self, other: Moments) -> None:
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean, other.m2
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total

    def __add__(self, other: Moments) -> Moments:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> Moments:
        return Moments(self.count, self.mean, self.m2)

    @property
    def variance(self) -> float:
        """Sample variance (``n - 1`` in the denominator); 0 below two observations."""
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moments:
        return cls(int(data["count"]), float(data["mean"]), float(data["m2"]))


@dataclass
class Proportion:
    """Trials and successes of a binary outcome (a conversion, an error)."""

    trials: int = 0
    successes: int = 0

    def add(self, success: bool) -> None:
        self.trials += 1
        self.successes += int(success)

    def update(self, outcomes: npt.ArrayLike) -> None:
        arr = np.asarray(outcomes).ravel()
        self.trials += int(arr.size)
        self.successes += int(np.count_nonzero(arr))

    def merge(self, other: Proportion) -> None:
        self.trials += other.trials
        self.successes += other.successes

    def __add__(self, other: Proportion) -> Proportion:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> Proportion:
        return Proportion(self.trials, self.successes)

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "successes": self.successes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proportion:
        return cls(int(data["trials"]), int(data["successes"]))


def default_latency_bounds_ms() -> tuple[float, ...]:
    """Log-spaced bucket upper bounds from 50 µs to 60 s: about 4% relative error on a quantile."""
    return tuple(float(b) for b in np.geomspace(0.05, 60_000.0, 360))


@dataclass
class LatencyHistogram:
    """Counts of latencies (milliseconds) in fixed buckets; the last bucket takes everything above."""

    bounds_ms: tuple[float, ...] = field(default_factory=default_latency_bounds_ms)
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sum_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.counts.size == 0:
            self.counts = np.zeros(len(self.bounds_ms) + 1, dtype=np.int64)
        self._edges = np.asarray(self.bounds_ms, dtype=np.float64)

    def add(self, latency_ms: float) -> None:
        self.counts[int(np.searchsorted(self._edges, latency_ms, side="left"))] += 1
        self.sum_ms += latency_ms

    def update(self, latencies_ms: npt.ArrayLike) -> None:
        arr = np.asarray(latencies_ms, dtype=np.float64).ravel()
        idx = np.searchsorted(self._edges, arr, side="left")
        self.counts += np.bincount(idx, minlength=self.counts.size).astype(np.int64)
        self.sum_ms += float(arr.sum())

    def merge(self, other: LatencyHistogram) -> None:
        if other.bounds_ms != self.bounds_ms:
            raise UserError(
                "cannot merge latency histograms with different bucket bounds",
                hint="create both with the same bounds_ms (the default is shared by all workers)",
            )
        self.counts += other.counts
        self.sum_ms += other.sum_ms

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> LatencyHistogram:
        return LatencyHistogram(self.bounds_ms, self.counts.copy(), self.sum_ms)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    @property
    def mean_ms(self) -> float:
        n = self.count
        return self.sum_ms / n if n else 0.0

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding quantile ``q`` (0 when empty)."""
        if not 0.0 <= q <= 1.0:
            raise UserError(f"quantile {q} is outside [0, 1]", hint="pass e.g. 0.99 for p99")
        n = self.count
        if n == 0:
            return 0.0
        rank = max(1, int(np.ceil(q * n)))
        idx = int(np.searchsorted(np.cumsum(self.counts), rank, side="left"))
        return self.bounds_ms[min(idx, len(self.bounds_ms) - 1)]

    def to_dict(self) -> dict[str, Any]:
        nonzero = np.flatnonzero(self.counts)
        return {
            "bounds_ms": list(self.bounds_ms),
            "buckets": {str(int(i)): int(self.counts[i]) for i in nonzero},
            "sum_ms": self.sum_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        hist = cls(tuple(float(b) for b in data["bounds_ms"]))
        for index, count in data["buckets"].items():
            hist.counts[int(index)] = int(count)
        hist.sum_ms = float(data["sum_ms"])
        return hist


@dataclass
class VariantStats:
    """Everything counted for one variant: requests, errors, latency and outcomes."""

    requests: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    outcome: Moments = field(default_factory=Moments)
    conversions: Proportion = field(default_factory=Proportion)

    def record(self, latency_ms: float, *, is_error: bool = False) -> None:
        self.requests += 1
        self.errors += int(is_error)
        self.latency.add(latency_ms)

    def record_outcome(self, value: float) -> None:
        """A numeric outcome (a score, revenue); 0/1 outcomes also count as conversions."""
        self.outcome.add(value)
        if value in (0.0, 1.0):
            self.conversions.add(bool(value))

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def merge(self, other: VariantStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency.merge(other.latency)
        self.outcome.merge(other.outcome)
        self.conversions.merge(other.conversions)

    def __add__(self, other: VariantStats) -> VariantStats:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> VariantStats:
        return VariantStats(
            self.requests,
            self.errors,
            self.latency.copy(),
            self.outcome.copy(),
            self.conversions.copy(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency": self.latency.to_dict(),
            "outcome": self.outcome.to_dict(),
            "conversions": self.conversions.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantStats:
        return cls(
            int(data["requests"]),
            int(data["errors"]),
            LatencyHistogram.from_dict(data["latency"]),
            Moments.from_dict(data["outcome"]),
            Proportion.from_dict(data["conversions"]),
        )
