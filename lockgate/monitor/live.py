"""Live drift of one deployment: sampled inputs of served requests, sketched per variant.

The request path only counts and, for one request in ``sample_every``, appends a reference to
its already-decoded inputs to a bounded deque (full: dropped and counted); it never sketches
and never waits. The controller's tick folds the samples into per-variant sketches cut like the
reference's (:meth:`LiveDrift.fold`, in a worker thread), and :meth:`LiveDrift.report` compares
each variant with the reference (PSI, KS and Jensen-Shannon per feature, from
:mod:`lockgate.monitor.drift`).

The same samples carry the variant's answer (its primary output), sketched against the reference
of predictions (:meth:`LiveDrift.set_output_reference`: the baseline's outputs on the training
rows, computed once the deployment is loaded). Outputs sampled before that reference exists wait
in a bounded buffer (4,096 rows in all) and are folded when it arrives.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from lockgate.errors import ValidationError
from lockgate.monitor.drift import DriftReport, DriftThresholds, FeatureDrift, drift_report, feature_drift
from lockgate.monitor.predictions import primary_output, sketch_update
from lockgate.monitor.reference import Reference
from lockgate.monitor.sketch import Sketch

__all__ = ["LiveDrift", "drift_to_dict", "feature_to_dict"]

_MAX_WAITING_ROWS = 4096


def feature_to_dict(feature: FeatureDrift) -> dict[str, Any]:
    """One feature's (or output's) numbers and status as JSON."""
    return {
        "kind": feature.kind,
        "status": feature.status,
        "live_count": feature.live_count,
        **{k: v for k, v in feature.numbers.items() if np.isfinite(v)},
    }


def drift_to_dict(report: DriftReport) -> dict[str, Any]:
    """A report as JSON: each feature's numbers and status, and the drifted features."""
    return {
        "drifted": list(report.drifted),
        "features": {f.name: feature_to_dict(f) for f in report.features},
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
        self._pending: deque[tuple[str, Any, Sequence[str], Any]] = deque()
        self._max_pending = max_pending
        self._live: dict[str, dict[str, Sketch]] = {}
        self._lock = threading.Lock()
        # predictions: the reference (None until computed), each variant's live sketch, and the
        # outputs sampled before the reference existed
        self.output_name: str | None = None
        self.output_reference: Sketch | None = None
        self.output_source = ""
        self.output_error: str | None = None
        self._outputs: dict[str, Sketch] = {}
        self._waiting: dict[str, list[np.ndarray[Any, Any]]] = {}
        self._waiting_rows = 0

    def offer(
        self,
        variant: str,
        inputs: Any,
        columns: Sequence[str],
        outputs: Any = None,
        output_name: str | None = None,
    ) -> None:
        """Keep one request in ``sample_every`` for the next fold (request path: O(1), no copy)."""
        self.seen += 1
        if self.seen % self.sample_every:
            return
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            return
        answer = primary_output(outputs, output_name) if outputs is not None else None
        self._pending.append((variant, inputs, columns, answer[1] if answer is not None else None))

    def fold(self) -> int:
        """Sketch what was sampled since the last fold; returns how many requests that was.

        Row arrays of one variant and columns are stacked and sketched at once: a sketch update
        costs microseconds per column whatever the rows, so one per request held the GIL long
        enough (170 µs for 30 columns) to slow the server at thousands of samples a second.
        """
        folded = 0
        stacks: dict[tuple[str, tuple[str, ...]], list[Any]] = {}
        while self._pending:
            variant, inputs, columns, answer = self._pending.popleft()
            folded += 1
            if isinstance(inputs, np.ndarray) and inputs.ndim == 2 and inputs.shape[1] == len(columns):
                stacks.setdefault((variant, tuple(columns)), []).append(inputs)
            else:
                self._sketch(variant, inputs, columns)
            if answer is not None:
                with self._lock:
                    self._fold_output(variant, np.asarray(answer))
        for (variant, columns), arrays in stacks.items():
            self._sketch(variant, arrays[0] if len(arrays) == 1 else np.concatenate(arrays), columns)
        self.sampled += folded
        return folded

    def _sketch(self, variant: str, inputs: Any, columns: Sequence[str]) -> None:
        frame = _columns(inputs, columns)
        with self._lock:
            sketches = self._live.get(variant)
            if sketches is None:
                sketches = self._live[variant] = self.reference.empty_live()
            for name, sketch in sketches.items():
                values = frame.get(name)
                if values is not None:
                    sketch.update(values.tolist() if sketch.kind == "categorical" else values)

    def _fold_output(self, variant: str, answer: np.ndarray[Any, Any]) -> None:
        if self.output_reference is None:
            if self.output_error is None and self._waiting_rows < _MAX_WAITING_ROWS:
                self._waiting.setdefault(variant, []).append(answer)
                self._waiting_rows += len(answer)
            return
        sketch = self._outputs.get(variant)
        if sketch is None:
            sketch = self._outputs[variant] = self.output_reference.empty_like()
        sketch_update(sketch, answer)

    def set_output_reference(self, sketch: Sketch, *, name: str, source: str) -> None:
        """The reference of predictions arrived: fold what waited for it."""
        with self._lock:
            self.output_reference, self.output_name, self.output_source = sketch, name, source
            waiting, self._waiting, self._waiting_rows = self._waiting, {}, 0
            for variant, answers in waiting.items():
                for answer in answers:
                    self._fold_output(variant, answer)

    def set_output_error(self, message: str) -> None:
        """No reference of predictions can be had (the reason is shown in the status)."""
        with self._lock:
            self.output_error = message
            self._waiting, self._waiting_rows = {}, 0

    def output_reports(self) -> dict[str, FeatureDrift]:
        """Each variant's predictions against the reference of predictions (empty until it exists)."""
        with self._lock:
            reference = self.output_reference
            if reference is None:
                return {}
            return {
                variant: feature_drift(self.output_name or "predictions", reference, sketch, self.thresholds)
                for variant, sketch in self._outputs.items()
            }

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
            "predictions": self.predictions_summary(),
        }

    def predictions_summary(self) -> dict[str, Any]:
        """The prediction drift part of the summary: the reference's state and each variant's numbers."""
        reference = self.output_reference
        if reference is not None:
            state = "ready"
        elif self.output_error is not None:
            state = "unavailable"
        else:
            state = "computing"
        return {
            "state": state,
            "error": self.output_error,
            "output": self.output_name,
            "kind": reference.kind if reference is not None else None,
            "source": self.output_source,
            "reference_count": reference.count if reference is not None else 0,
            "variants": {variant: feature_to_dict(f) for variant, f in self.output_reports().items()},
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
