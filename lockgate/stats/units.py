"""Analysis units: sums per group of routing keys, so that sticky users are analysed as users.

With keyed (sticky) routing the unit of randomisation is the key: one user's requests share that
user's error propensity, latency and habits, so they are not independent, and a test that treats
requests as independent is overconfident (A/A rollouts get halted and rolled back). lockgate hashes
every key into one of :data:`UNITS` analysis units (independently of the routing bucket) and keeps,
per unit and variant, the sums a ratio metric needs: requests, errors, the sum of log-latency,
outcomes. Units are random groups of users, so their sums are independent draws, and the
delta-method variance across units is cluster-robust (Deng, Lu and Litz, "Applying the delta method
in metric analytics", KDD 2018). A request without a key is its own unit: it goes to a random unit,
which gives back the request-level variance.

Memory is bounded (a few arrays of :data:`UNITS` numbers per variant) and the sums merge exactly by
addition, across worker processes and gateways, like the other accumulators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError

__all__ = ["UNITS", "UnitTotals", "log_latency", "ratio_contrast", "share_variance"]

UNITS = 256
"""Analysis units per variant: enough that the variance across them is estimated to a few percent
(255 degrees of freedom), few enough that a snapshot stays small."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_MIN_LATENCY_MS = 1e-3
_INT_FIELDS = ("requests", "errors", "outcome_count", "conversion_trials", "conversion_successes")
_FLOAT_FIELDS = ("log_latency", "outcome_sum")


def log_latency(latencies_ms: npt.ArrayLike) -> FloatArray:
    """Natural log of latencies in ms, floored at 1 µs (a zero duration has no logarithm)."""
    arr = np.asarray(latencies_ms, dtype=np.float64)
    out: FloatArray = np.log(np.maximum(arr, _MIN_LATENCY_MS))
    return out


def _zeros_int() -> IntArray:
    return np.zeros(UNITS, dtype=np.int64)


def _zeros_float() -> FloatArray:
    return np.zeros(UNITS, dtype=np.float64)


@dataclass(eq=False)
class UnitTotals:
    """Per-unit sums for one variant: requests, errors, log-latency, outcomes and conversions."""

    requests: IntArray = field(default_factory=_zeros_int)
    errors: IntArray = field(default_factory=_zeros_int)
    log_latency: FloatArray = field(default_factory=_zeros_float)
    outcome_count: IntArray = field(default_factory=_zeros_int)
    outcome_sum: FloatArray = field(default_factory=_zeros_float)
    conversion_trials: IntArray = field(default_factory=_zeros_int)
    conversion_successes: IntArray = field(default_factory=_zeros_int)

    def __post_init__(self) -> None:
        for name in (*_INT_FIELDS, *_FLOAT_FIELDS):
            arr = getattr(self, name)
            if arr.shape != (UNITS,):
                raise ValidationError(
                    f"unit totals '{name}' has shape {arr.shape}, not ({UNITS},)",
                    hint=f"keep one number per analysis unit ({UNITS})",
                )
        if (self.requests < 0).any() or (self.errors < 0).any() or (self.errors > self.requests).any():
            raise ValidationError(
                "unit totals have negative counts or more errors than requests", hint="counts are >= 0"
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnitTotals):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, name), getattr(other, name))
            for name in (*_INT_FIELDS, *_FLOAT_FIELDS)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the other accumulators

    def record_many(
        self,
        units: npt.ArrayLike,
        latencies_ms: npt.ArrayLike,
        is_error: npt.ArrayLike | None = None,
    ) -> None:
        """Count requests: the unit of each, its latency and, optionally, whether it failed."""
        idx = _units(units)
        logs = log_latency(latencies_ms).ravel()
        if logs.size != idx.size:
            raise ValidationError(f"{idx.size} units but {logs.size} latencies", hint="one per request")
        self.requests += np.bincount(idx, minlength=UNITS)
        self.log_latency += np.bincount(idx, weights=logs, minlength=UNITS)
        if is_error is not None:
            flags = np.asarray(is_error, dtype=bool).ravel()
            if flags.size != idx.size:
                raise ValidationError(
                    f"{idx.size} units but {flags.size} error flags", hint="one per request"
                )
            self.errors += np.bincount(idx[flags], minlength=UNITS)

    def record(self, unit: int, latency_ms: float, *, is_error: bool = False) -> None:
        """Count one request (scalar :meth:`record_many`)."""
        _check_unit(unit)
        self.requests[unit] += 1
        self.errors[unit] += int(is_error)
        self.log_latency[unit] += math.log(max(latency_ms, _MIN_LATENCY_MS))

    def record_outcomes(self, units: npt.ArrayLike, values: npt.ArrayLike) -> None:
        """Count outcomes (joined feedback) in their requests' units; 0/1 values are conversions too."""
        idx = _units(units)
        vals = np.asarray(values, dtype=np.float64).ravel()
        if vals.size != idx.size:
            raise ValidationError(f"{idx.size} units but {vals.size} outcomes", hint="one per request")
        if not np.isfinite(vals).all():
            raise ValidationError("outcomes contain NaN or infinity", hint="record numbers only")
        self.outcome_count += np.bincount(idx, minlength=UNITS)
        self.outcome_sum += np.bincount(idx, weights=vals, minlength=UNITS)
        binary = (vals == 0.0) | (vals == 1.0)
        self.conversion_trials += np.bincount(idx[binary], minlength=UNITS)
        self.conversion_successes += np.bincount(idx[binary & (vals == 1.0)], minlength=UNITS)

    def record_outcome(self, unit: int, *, value: float | None = None, label: bool | None = None) -> None:
        """One joined outcome: a ``value`` (score, revenue) and/or a 0/1 ``label`` (conversion)."""
        _check_unit(unit)
        if value is not None:
            if not math.isfinite(value):
                raise ValidationError(f"outcome {value} is not finite", hint="record numbers only")
            self.outcome_count[unit] += 1
            self.outcome_sum[unit] += value
        if label is not None:
            self.conversion_trials[unit] += 1
            self.conversion_successes[unit] += int(label)

    def merge(self, other: UnitTotals) -> None:
        for name in (*_INT_FIELDS, *_FLOAT_FIELDS):
            getattr(self, name).__iadd__(getattr(other, name))

    def __add__(self, other: UnitTotals) -> UnitTotals:
        out = self.copy()
        out.merge(other)
        return out

    def copy(self) -> UnitTotals:
        return UnitTotals(**{name: getattr(self, name).copy() for name in (*_INT_FIELDS, *_FLOAT_FIELDS)})

    def since(self, start: UnitTotals) -> UnitTotals:
        """What was added after ``start`` (a counter below its start counts from zero, as on a
        restart)."""
        if (self.requests < start.requests).any() or (self.conversion_trials < start.conversion_trials).any():
            return self.copy()
        out: dict[str, Any] = {}
        for name in _INT_FIELDS:
            out[name] = np.maximum(getattr(self, name) - getattr(start, name), 0)
        for name in _FLOAT_FIELDS:
            out[name] = getattr(self, name) - getattr(start, name)
        out["errors"] = np.minimum(out["errors"], out["requests"])
        out["conversion_successes"] = np.minimum(out["conversion_successes"], out["conversion_trials"])
        return UnitTotals(**out)

    @property
    def is_empty(self) -> bool:
        return not (self.requests.any() or self.outcome_count.any() or self.conversion_trials.any())

    def to_dict(self) -> dict[str, Any]:
        """Only the arrays with data, each a dense list of :data:`UNITS` numbers."""
        out: dict[str, Any] = {}
        for name in _INT_FIELDS:
            arr = getattr(self, name)
            if arr.any():
                out[name] = [int(v) for v in arr]
        for name in _FLOAT_FIELDS:
            arr = getattr(self, name)
            if arr.any():
                out[name] = [float(v) for v in arr]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitTotals:
        values: dict[str, Any] = {}
        for name in _INT_FIELDS:
            if name in data:
                values[name] = np.asarray(data[name], dtype=np.int64)
        for name in _FLOAT_FIELDS:
            if name in data:
                values[name] = np.asarray(data[name], dtype=np.float64)
        return cls(**values)


def _check_unit(unit: int) -> None:
    if not 0 <= unit < UNITS:
        raise ValidationError(f"analysis unit {unit} is outside [0, {UNITS})", hint="use router.unit_of")


def _units(units: npt.ArrayLike) -> IntArray:
    idx = np.asarray(units, dtype=np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= UNITS):
        raise ValidationError(f"analysis units must be in [0, {UNITS})", hint="use router.unit_of")
    return idx


def ratio_contrast(
    candidate_sums: FloatArray,
    candidate_counts: FloatArray,
    baseline_sums: FloatArray,
    baseline_counts: FloatArray,
    *,
    baseline_factor: float = 1.0,
) -> tuple[float, float]:
    """``R_c - k * R_b`` for ratio metrics ``R = sum(y) / sum(n)`` and its cluster-robust variance.

    The inputs are per-unit sums (``y``) and counts (``n``) of each arm over the same units, so a
    unit whose users were in both arms (a canary that grew) carries its covariance. Each unit's
    influence is ``(y_c - R_c n_c) / N_c - k (y_b - R_b n_b) / N_b``; the variance is the sum of their
    squares times ``B / (B - 1)`` over the ``B`` units with data. ``(nan, 0)`` when an arm is empty.
    """
    y_c = np.asarray(candidate_sums, dtype=np.float64)
    n_c = np.asarray(candidate_counts, dtype=np.float64)
    y_b = np.asarray(baseline_sums, dtype=np.float64)
    n_b = np.asarray(baseline_counts, dtype=np.float64)
    total_c, total_b = float(n_c.sum()), float(n_b.sum())
    if total_c <= 0 or total_b <= 0:
        return math.nan, 0.0
    rate_c, rate_b = float(y_c.sum()) / total_c, float(y_b.sum()) / total_b
    influence = (y_c - rate_c * n_c) / total_c - baseline_factor * (y_b - rate_b * n_b) / total_b
    active = int(np.count_nonzero((n_c + n_b) > 0))
    if active < 2:
        return rate_c - baseline_factor * rate_b, 0.0
    variance = float((influence * influence).sum()) * active / (active - 1)
    return rate_c - baseline_factor * rate_b, variance


def share_variance(candidate_counts: FloatArray, baseline_counts: FloatArray, share: float) -> float:
    """Cluster-robust variance of the candidate's share of requests around an expected ``share``."""
    n_c = np.asarray(candidate_counts, dtype=np.float64)
    n_b = np.asarray(baseline_counts, dtype=np.float64)
    totals = n_c + n_b
    total = float(totals.sum())
    active = int(np.count_nonzero(totals > 0))
    if total <= 0 or active < 2:
        return 0.0
    influence = (n_c - share * totals) / total
    return float((influence * influence).sum()) * active / (active - 1)
