"""Mergeable sufficient statistics for what each variant serves.

Every accumulator can absorb one value (``add``), a vector of values (``update``), and another
accumulator of the same kind (``merge`` in place, ``+`` for a new one), so several worker processes
or gateways add up exactly. ``to_dict``/``from_dict`` give the small snapshot the store keeps.

Counts that cannot be (negative, more errors than requests, a NaN latency) raise
:class:`~lockgate.errors.ValidationError` naming the field, at construction and on update.

Mean and variance merge with the pairwise formulas of Chan, Golub and LeVeque (1979), "Updating
formulae and a pairwise algorithm for computing sample variances".
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import UserError, ValidationError
from lockgate.stats.units import UNITS, UnitTotals

if TYPE_CHECKING:
    from lockgate.stats.generation import GenerationStats

__all__ = ["LatencyHistogram", "Moments", "Proportion", "VariantStats", "default_latency_bounds_ms"]


@dataclass
class Moments:
    """Count, mean and sum of squared deviations (``m2``) of a numeric stream."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValidationError(f"Moments.count is {self.count}", hint="a count is 0 or more")
        if not (math.isfinite(self.mean) and math.isfinite(self.m2)) or self.m2 < 0:
            raise ValidationError(
                f"Moments mean={self.mean} m2={self.m2} are not valid",
                hint="mean must be finite and m2 (sum of squared deviations) finite and >= 0",
            )

    def add(self, value: float) -> None:
        if not math.isfinite(value):
            raise ValidationError(f"outcome {value} is not finite", hint="record numbers only")
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def update(self, values: npt.ArrayLike) -> None:
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return
        if not np.isfinite(arr).all():
            raise ValidationError("outcomes contain NaN or infinity", hint="record numbers only")
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

    def __post_init__(self) -> None:
        if self.trials < 0 or self.successes < 0 or self.successes > self.trials:
            raise ValidationError(
                f"Proportion has {self.successes} successes in {self.trials} trials",
                hint="both are counts >= 0 and successes cannot exceed trials",
            )

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


@functools.lru_cache(maxsize=32)
def _edges(bounds_ms: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """The bounds as a read-only array, checked once per distinct tuple (histograms are copied a
    few times a controller tick, always with the same bounds)."""
    edges = np.asarray(bounds_ms, dtype=np.float64)
    if edges.size == 0 or not np.all(np.diff(edges) > 0):
        raise ValidationError(
            "latency bucket bounds must be a non-empty, strictly increasing sequence",
            hint="use default_latency_bounds_ms()",
        )
    edges.setflags(write=False)
    return edges


@dataclass(eq=False)
class LatencyHistogram:
    """Counts of latencies (milliseconds) in fixed buckets; the last bucket takes all above.

    Two histograms are equal when their bounds, counts and sums are (the generated ``==`` would
    compare the count arrays element-wise and fail to give one answer).
    """

    bounds_ms: tuple[float, ...] = field(default_factory=default_latency_bounds_ms)
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sum_ms: float = 0.0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        return (
            self.bounds_ms == other.bounds_ms
            and self.sum_ms == other.sum_ms
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the other accumulators

    def __post_init__(self) -> None:
        if self.counts.size == 0:
            self.counts = np.zeros(len(self.bounds_ms) + 1, dtype=np.int64)
        self._edges = _edges(self.bounds_ms)
        if self.counts.shape != (len(self.bounds_ms) + 1,):
            raise ValidationError(
                f"latency histogram has {self.counts.size} counts for {len(self.bounds_ms)} bounds",
                hint="pass one count per bound plus one for the overflow bucket",
            )
        if self.counts.size and int(self.counts.min()) < 0:
            raise ValidationError("latency histogram has a negative count", hint="counts are >= 0")
        if not math.isfinite(self.sum_ms) or self.sum_ms < 0:
            raise ValidationError(f"latency sum_ms={self.sum_ms} is not valid", hint="use >= 0")

    def add(self, latency_ms: float) -> None:
        if not latency_ms >= 0.0 or math.isinf(latency_ms):
            raise ValidationError(
                f"latency {latency_ms} ms is not a finite duration >= 0",
                hint="measure with a monotonic clock",
            )
        self.counts[int(np.searchsorted(self._edges, latency_ms, side="left"))] += 1
        self.sum_ms += latency_ms

    def update(self, latencies_ms: npt.ArrayLike) -> None:
        arr = np.asarray(latencies_ms, dtype=np.float64).ravel()
        if arr.size and not (arr.min() >= 0.0 and np.isfinite(arr).all()):
            raise ValidationError(
                "latencies contain a negative, NaN or infinite value",
                hint="measure with a monotonic clock",
            )
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

    def log_moments(self) -> tuple[float, float]:
        """Mean and variance of ``ln(latency)``, each bucket at its geometric midpoint (0, 0 when
        empty): the request-level spread the latency guardrail never goes below."""
        n = self.count
        if n == 0:
            return 0.0, 0.0
        edges = np.log(np.maximum(self._edges, 1e-3))
        lower = np.concatenate(([edges[0] - (edges[1] - edges[0]) if edges.size > 1 else edges[0]], edges))
        upper = np.concatenate((edges, [edges[-1]]))
        mids = (lower + upper) / 2.0
        weights = self.counts / n
        mean = float((weights * mids).sum())
        return mean, float((weights * (mids - mean) ** 2).sum())

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
        counts = np.zeros(len(hist.bounds_ms) + 1, dtype=np.int64)
        for index, count in data["buckets"].items():
            if not 0 <= int(index) < counts.size:
                raise ValidationError(f"latency bucket {index} is out of range")
            counts[int(index)] = int(count)
        return cls(hist.bounds_ms, counts, float(data["sum_ms"]))


@dataclass
class VariantStats:
    """Everything counted for one variant: requests, errors, latency and outcomes, in total and per
    analysis unit (:mod:`lockgate.stats.units`).

    A request recorded without a unit (no routing key) goes to the next unit in turn: requests
    without a key are independent, so any even spread of them over the units gives the
    request-level variance.

    ``generation``: a generative variant's token counts and timings (None for other models).
    """

    requests: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    outcome: Moments = field(default_factory=Moments)
    conversions: Proportion = field(default_factory=Proportion)
    units: UnitTotals = field(default_factory=UnitTotals)
    generation: GenerationStats | None = None

    def __post_init__(self) -> None:
        if self.requests < 0 or self.errors < 0 or self.errors > self.requests:
            raise ValidationError(
                f"VariantStats has {self.errors} errors in {self.requests} requests",
                hint="both are counts >= 0 and errors cannot exceed requests",
            )

    def record(self, latency_ms: float, *, is_error: bool = False, unit: int | None = None) -> None:
        self.latency.add(latency_ms)
        self.units.record(self.requests % UNITS if unit is None else unit, latency_ms, is_error=is_error)
        self.requests += 1
        self.errors += int(is_error)

    def record_many(
        self,
        latencies_ms: npt.ArrayLike,
        is_error: npt.ArrayLike | None = None,
        units: npt.ArrayLike | None = None,
    ) -> None:
        """Vectorised :meth:`record`: a latency per request and, optionally, an error flag and an
        analysis unit each."""
        arr = np.asarray(latencies_ms, dtype=np.float64).ravel()
        errors = 0
        flags = None
        if is_error is not None:
            flags = np.asarray(is_error).ravel()
            if flags.size != arr.size:
                raise ValidationError(
                    f"{arr.size} latencies but {flags.size} error flags",
                    hint="pass one error flag per request",
                )
            errors = int(np.count_nonzero(flags))
        self.latency.update(arr)
        self.units.record_many(self._units_for(arr.size, units), arr, flags)
        self.requests += int(arr.size)
        self.errors += errors

    def _units_for(self, count: int, units: npt.ArrayLike | None) -> npt.NDArray[np.int64]:
        if units is not None:
            return np.asarray(units, dtype=np.int64).ravel()
        return (self.requests + np.arange(count, dtype=np.int64)) % UNITS

    def record_outcomes(self, values: npt.ArrayLike, units: npt.ArrayLike | None = None) -> None:
        """Vectorised :meth:`record_outcome`."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        self.outcome.update(arr)
        binary = arr[(arr == 0.0) | (arr == 1.0)]
        self.conversions.update(binary)
        if units is None:
            units = (self.outcome.count - arr.size + np.arange(arr.size, dtype=np.int64)) % UNITS
        self.units.record_outcomes(units, arr)

    def record_outcome(self, value: float, *, unit: int | None = None) -> None:
        """A numeric outcome (a score, revenue); 0/1 outcomes also count as conversions."""
        self.outcome.add(value)
        is_label = value in (0.0, 1.0)
        if is_label:
            self.conversions.add(bool(value))
        where = (self.outcome.count - 1) % UNITS if unit is None else unit
        self.units.record_outcome(where, value=value, label=bool(value) if is_label else None)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def analysis_units(self) -> UnitTotals:
        """The per-unit sums the guardrails analyse.

        Counts recorded without units (stats built from totals, or stored before units existed)
        are spread evenly over the units: that leaves no between-unit variance, so the analysis
        falls back to the request-level variance (its floor), as for independent requests.
        """
        units = self.units
        has_requests = int(units.requests.sum()) == self.requests and int(units.errors.sum()) == self.errors
        has_outcomes = int(units.outcome_count.sum()) == self.outcome.count
        has_conversions = int(units.conversion_trials.sum()) == self.conversions.trials
        if has_requests and has_outcomes and has_conversions:
            return units
        out = units.copy()
        if not has_requests:
            out.requests = _spread(self.requests)
            out.errors = _spread(self.errors)
            out.log_latency = (out.requests * self.latency.log_moments()[0]).astype(np.float64)
        if not has_outcomes:
            out.outcome_count = _spread(self.outcome.count)
            out.outcome_sum = (out.outcome_count * self.outcome.mean).astype(np.float64)
        if not has_conversions:
            out.conversion_trials = _spread(self.conversions.trials)
            out.conversion_successes = _spread(self.conversions.successes)
        return out

    def merge(self, other: VariantStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency.merge(other.latency)
        self.outcome.merge(other.outcome)
        self.conversions.merge(other.conversions)
        self.units.merge(other.units)
        if other.generation is not None:
            if self.generation is None:
                self.generation = other.generation.copy()
            else:
                self.generation.merge(other.generation)

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
            self.units.copy(),
            None if self.generation is None else self.generation.copy(),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "requests": self.requests,
            "errors": self.errors,
            "latency": self.latency.to_dict(),
            "outcome": self.outcome.to_dict(),
            "conversions": self.conversions.to_dict(),
            "units": self.units.to_dict(),
        }
        if self.generation is not None:  # only a generative variant's: other snapshots are unchanged
            out["generation"] = self.generation.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantStats:
        return cls(
            int(data["requests"]),
            int(data["errors"]),
            LatencyHistogram.from_dict(data["latency"]),
            Moments.from_dict(data["outcome"]),
            Proportion.from_dict(data["conversions"]),
            # snapshots stored before analysis units existed read back with empty units
            UnitTotals.from_dict(data.get("units") or {}),
            _generation(data.get("generation")),
        )


def _generation(data: dict[str, Any] | None) -> GenerationStats | None:
    if data is None:
        return None
    from lockgate.stats.generation import GenerationStats  # it builds on this module's histograms

    return GenerationStats.from_dict(data)


def _spread(total: int) -> npt.NDArray[np.int64]:
    """``total`` split over the units as evenly as whole numbers allow."""
    out: npt.NDArray[np.int64] = np.full(UNITS, total // UNITS, dtype=np.int64)
    out[: total % UNITS] += 1
    return out
