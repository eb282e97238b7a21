"""Live drift of one deployment: sampled inputs of served requests, sketched per variant.

The request path only counts and, for one request in ``sample_every``, appends a reference to
its already-decoded inputs to a bounded deque (full: dropped and counted); it never sketches
and never waits. The controller's tick folds the samples into per-variant sketches cut like the
reference's (:meth:`LiveDrift.fold`, in a worker thread), and :meth:`LiveDrift.report` compares
each variant with the reference (PSI, KS and Jensen-Shannon per feature, from
:mod:`lockgate.monitor.drift`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from lockgate.errors import ValidationError
from lockgate.monitor.drift import DriftReport, DriftThresholds, drift_report
from lockgate.monitor.reference import Reference
from lockgate.monitor.sketch import Sketch

__all__ = ["LiveDrift", "drift_to_dict"]


def drift_to_dict(report: DriftReport) -> dict[str, Any]:
    """A report as JSON: each feature's numbers and status, and the drifted features."""
    return {
        "drifted": list(report.drifted),
        "features": {
            f.name: {
                "kind": f.kind,
                "status": f.status,
                "live_count": f.live_count,
                **{k: v for k, v in f.numbers.items() if np.isfinite(v)},
            }
            for f in report.features
        },
    }


class LiveDrift:
    """Sketches of sampled live inputs per variant, compared with ``reference``."""

    def __init__(
        self,
        reference: Reference,
        *,
        sample_every: int = 10,
        max_pending: int = 1024,
        thresholds: DriftThresholds | None = None,
    ) -> None:
        if sample_every < 1:
            raise ValidationError(f"sample_every must be >= 1, got {sample_every}", hint="e.g. 10")
        self.reference = reference
        self.sample_every = sample_every
        self.thresholds = thresholds or DriftThresholds()
        self.seen = 0
        self.sampled = 0
        self.dropped = 0
        self._pending: deque[tuple[str, Any, Sequence[str]]] = deque()
        self._max_pending = max_pending
        self._live: dict[str, dict[str, Sketch]] = {}
        self._lock = threading.Lock()

    def offer(self, variant: str, inputs: Any, columns: Sequence[str]) -> None:
        """Keep one request in ``sample_every`` for the next fold (request path: O(1), no copy)."""
        self.seen += 1
        if self.seen % self.sample_every:
            return
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        self._pending.append((variant, inputs, columns))

    def fold(self) -> int:
        """Sketch what was sampled since the last fold; returns how many requests that was."""
        folded = 0
        while self._pending:
            variant, inputs, columns = self._pending.popleft()
            frame = _columns(inputs, columns)
            with self._lock:
                sketches = self._live.get(variant)
                if sketches is None:
                    sketches = self._live[variant] = self.reference.empty_live()
                for name, sketch in sketches.items():
                    values = frame.get(name)
                    if values is not None:
                        sketch.update(values.tolist() if sketch.kind == "categorical" else values)
            folded += 1
        self.sampled += folded
        return folded

    def reports(self) -> dict[str, DriftReport]:
        """Each variant that has samples, compared with the reference."""
        with self._lock:
            return {
                variant: drift_report(self.reference.sketches, sketches, self.thresholds)
                for variant, sketches in self._live.items()
            }

    def summary(self) -> dict[str, Any]:
        """JSON for the status and the dashboard."""
        return {
            "reference": {"dataset": self.reference.dataset, "digest": self.reference.digest},
            "sample_every": self.sample_every,
            "seen": self.seen,
            "sampled": self.sampled,
            "dropped": self.dropped,
            "variants": {variant: drift_to_dict(report) for variant, report in self.reports().items()},
        }


def _columns(inputs: Any, columns: Sequence[str]) -> dict[str, np.ndarray[Any, Any]]:
    """The request's values by column name: a DataFrame's own, or a 2-D array's by ``columns``."""
    if hasattr(inputs, "columns") and hasattr(inputs, "to_numpy"):
        return {str(name): inputs[name].to_numpy() for name in inputs.columns}
    array = np.asarray(inputs)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != len(columns):
        return {}
    return {name: array[:, i] for i, name in enumerate(columns)}
