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

:class:`DriftHook` runs it on the deployment loop: it gives each deployment its :class:`LiveDrift`,
computes the reference of predictions with the baseline, folds the samples after every tick and
audits each variant's first drift (a ``drift`` event, passed on to the alerts and retraining).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lockgate.errors import LockgateError, UserError, ValidationError
from lockgate.monitor.drift import DriftReport, DriftThresholds, FeatureDrift, drift_report, feature_drift
from lockgate.monitor.predictions import (
    model_inputs,
    output_kind,
    primary_output,
    reference_sketch,
    sketch_update,
)
from lockgate.monitor.reference import Reference
from lockgate.monitor.sketch import Sketch
from lockgate.rollout.state import RecordEvent
from lockgate.rollout.store import Store

if TYPE_CHECKING:
    # types only: the serving package imports this module, so it cannot import serving back
    from lockgate.serving.live import LiveDeployment

__all__ = ["DriftHook", "LiveDrift", "drift_to_dict", "feature_to_dict"]

_log = logging.getLogger("lockgate.serving")

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


DriftListener = Callable[[str, str], None]
"""Told (deployment, variant) when a variant's drift is first audited."""


class DriftHook:
    """Live drift on the deployment loop: one request in ``sample_every`` sketched per variant and
    compared with ``reference``; each variant's first drift is a ``drift`` audit event, and every
    listener hears of it (the alerts, the retraining trigger)."""

    def __init__(
        self, reference: Reference, *, sample_every: int = 10, listeners: Iterable[DriftListener] = ()
    ) -> None:
        self.reference = reference
        self.sample_every = sample_every
        self.listeners = list(listeners)
        self._background: set[asyncio.Task[None]] = set()  # references of predictions being computed

    def attach(self, live: LiveDeployment, previous: LiveDeployment | None) -> None:
        live.drift = LiveDrift(self.reference, sample_every=self.sample_every)
        task = asyncio.get_running_loop().create_task(
            self._reference_predictions(live), name=f"lockgate-reference-{live.spec.name}"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def tick(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        await asyncio.to_thread(self._fold, dict(deployments), store)

    async def close(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reference_predictions(self, live: LiveDeployment, chunk_rows: int = 256) -> None:
        """The baseline's outputs on the reference's rows, as the reference of predictions.

        Through the baseline's own batcher (a model is never called from two threads), in chunks,
        so live requests interleave with it; the sketch is built in a worker thread.
        """
        from lockgate.serving.payload import InferenceRequest  # serving imports this module

        drift, reference = live.drift, self.reference
        if drift is None:
            return
        baseline = live.variants[live.spec.baseline]
        if reference.rows is None or not len(reference.rows):
            drift.set_output_error("the drift reference keeps no rows to run the baseline on")
            return
        try:
            inputs = model_inputs(reference.rows, baseline.predictor.signature)
            answers = []
            for start in range(0, len(inputs), chunk_rows):
                part = inputs[start : start + chunk_rows]
                outputs = await baseline.infer(InferenceRequest(part, len(part)))
                answer = primary_output(outputs, baseline.predictor.primary_output)
                if answer is None:
                    raise UserError(f"the baseline '{live.spec.baseline}' returned no output")
                answers.append(answer)
            output_name = answers[0][0]
            values = np.concatenate([a[1] for a in answers])
            kind = output_kind(values, output_name)
            if kind is None:
                raise UserError(
                    f"output '{output_name}' of shape {values.shape[1:]} and dtype {values.dtype} has no "
                    "sketch (labels, one number per row or embeddings have)"
                )
            sketch = await asyncio.to_thread(reference_sketch, values, kind)
        except asyncio.CancelledError:
            raise
        # the reference is an extra: whatever stops it is shown in the status, never fatal
        except Exception as exc:  # noqa: BLE001
            message = exc.message if isinstance(exc, LockgateError) else f"{type(exc).__name__}: {exc}"
            drift.set_output_error(message)
            _log.warning("deployment '%s': no reference of predictions: %s", live.spec.name, message)
            return
        source = f"{live.spec.baseline} on {len(values)} rows of {reference.dataset or 'the reference'}"
        drift.set_output_reference(sketch, name=output_name, source=source)

    def _fold(self, deployments: Mapping[str, LiveDeployment], store: Store) -> None:
        """Sketch the sampled inputs and outputs; audit each variant's first drift (a worker thread)."""
        for name, live in deployments.items():
            if live.drift is None or not live.drift.fold():
                continue
            outputs = live.drift.output_reports()
            for variant, report in live.drift.reports().items():
                output = outputs.get(variant)
                drifted = [*report.drifted]
                features = [f for f in report.features if f.is_drifted]
                if output is not None and output.is_drifted:
                    drifted.append(
                        "predictions" if output.name == "predictions" else f"predictions ({output.name})"
                    )
                    features.append(output)
                if not drifted or variant in live.drift_flagged:
                    continue
                live.drift_flagged.add(variant)
                worst = {
                    f"{f.name}.{k}": v
                    for f in features
                    for k, v in f.numbers.items()
                    if k in ("psi", "js", "cosine_distance") and np.isfinite(v)
                }
                what = "inputs" if report.has_drift else "predictions"
                if report.has_drift and output is not None and output.is_drifted:
                    what = "inputs and predictions"
                reason = f"{what} of variant '{variant}' drifted from the reference: {', '.join(drifted)}"
                event = RecordEvent(time.time(), "monitor", "drift", reason, live.phase, live.phase, worst)
                store.append_events(name, [event])
                _log.warning("deployment '%s': %s", name, reason)
                for listener in self.listeners:
                    listener(name, variant)
