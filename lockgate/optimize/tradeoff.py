"""The trade-off record: what an optimization gained (size, latency, throughput) and what it lost (quality).

Pure: plain values in, plain values out. The timing and the model calls happen in
:mod:`lockgate.optimize.measure`; here the samples become percentiles, records become the metrics
MLflow stores, and a set of records becomes its Pareto front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Latency",
    "TradeOff",
    "cosine_rows",
    "latency_summary",
    "max_abs_diff",
    "pareto_optimal",
]


@dataclass(frozen=True)
class Latency:
    """Percentiles of the time one call took, in milliseconds, at one batch size."""

    batch_size: int
    p50_ms: float
    p95_ms: float

    @property
    def rows_per_s(self) -> float:
        """Rows scored per second at the median call time."""
        return self.batch_size * 1000.0 / self.p50_ms if self.p50_ms > 0 else float("inf")


def latency_summary(samples_ms: Sequence[float], batch_size: int) -> Latency:
    """p50 and p95 of ``samples_ms`` (one entry per call of ``batch_size`` rows)."""
    if not samples_ms:
        raise ValueError("latency_summary needs at least one sample")
    p50, p95 = np.percentile(np.asarray(samples_ms, dtype=np.float64), [50, 95])
    return Latency(batch_size, float(p50), float(p95))


def max_abs_diff(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """The largest absolute element-wise difference; ``inf`` when the shapes differ."""
    a = np.asarray(expected, dtype=np.float64)
    b = np.asarray(actual, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def cosine_rows(expected: npt.ArrayLike, actual: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Cosine similarity of each row of ``actual`` to the same row of ``expected``."""
    a = np.asarray(expected, dtype=np.float64)
    b = np.asarray(actual, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare embeddings of shapes {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12), dtype=np.float64)


@dataclass(frozen=True)
class TradeOff:
    """One model's measured trade-off: the parent's, or an optimized candidate's.

    ``size_bytes`` is the bytes on disk of the model's saved MLflow model folder (model files,
    ``MLmodel``, requirements); ``quality`` is the task metric named by ``quality_metric``
    (``accuracy`` on held-out labels, or ``cosine_mean`` to the parent's embeddings); ``max_abs_diff``
    is the largest output difference to the parent on the same inputs (``None`` for the parent
    itself); ``is_verified`` says whether the candidate stayed within ``tolerance`` of the parent.
    """

    label: str
    method: str
    params: Mapping[str, Any]
    size_bytes: int
    latency_b1: Latency
    latency_b32: Latency
    quality_metric: str
    quality: float
    max_abs_diff: float | None = None
    is_verified: bool = True
    tolerance: float | None = None
    extra: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    cpu: str = ""  # the CPU it was measured on (model, cores, relevant flags)

    @property
    def throughput_per_s(self) -> float:
        """Rows per second at batch 32."""
        return self.latency_b32.rows_per_s

    def metrics(self) -> dict[str, float]:
        """The record as MLflow metrics (flat names, floats)."""
        out = {
            "size_bytes": float(self.size_bytes),
            "latency_b1_p50_ms": self.latency_b1.p50_ms,
            "latency_b1_p95_ms": self.latency_b1.p95_ms,
            "latency_b32_p50_ms": self.latency_b32.p50_ms,
            "latency_b32_p95_ms": self.latency_b32.p95_ms,
            "throughput_per_s": self.throughput_per_s,
            self.quality_metric: self.quality,
        }
        if self.max_abs_diff is not None:
            out["max_abs_diff"] = self.max_abs_diff
        out.update({k: float(v) for k, v in self.extra.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "method": self.method,
            "params": dict(self.params),
            "is_verified": self.is_verified,
            "tolerance": self.tolerance,
            "quality_metric": self.quality_metric,
            "notes": list(self.notes),
            "cpu": self.cpu,
            **self.metrics(),
        }


def pareto_optimal(records: Sequence[TradeOff]) -> list[bool]:
    """For each record, whether no other record is at least as good on every axis and better on one.

    The axes: quality (higher is better), single-row p50 latency and the saved model folder's bytes
    on disk (lower is better).
    Records that failed verification are never optimal, and do not dominate others.
    """

    def axes(r: TradeOff) -> tuple[float, float, float]:
        return (-r.quality, r.latency_b1.p50_ms, float(r.size_bytes))

    points = [axes(r) for r in records]
    flags = []
    for i, record in enumerate(records):
        if not record.is_verified:
            flags.append(False)
            continue
        dominated = any(
            j != i
            and records[j].is_verified
            and all(o <= m for o, m in zip(points[j], points[i], strict=True))
            and any(o < m for o, m in zip(points[j], points[i], strict=True))
            for j in range(len(records))
        )
        flags.append(not dominated)
    return flags
