"""Replay captured traffic against a candidate model: does it answer as the served one did?

:func:`replay` runs each captured request's inputs through ``predict`` (the candidate, called in
this process) and folds the pairs (recorded answer, candidate answer) into a
:class:`~lockgate.rollout.shadow.ShadowComparison` with the shadow mirror's own comparison
(:func:`lockgate.rollout.shadow.compare_outputs`): labels give agreement and flips, numbers
the mean and max absolute difference, embeddings the cosine. Latency is side by side: recorded is
the server's time for the whole request, candidate is the model call alone. The clock is passed
in; the caller loads the model and reads the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lockgate.monitor.capture import decode_inputs, decode_outputs
from lockgate.rollout.shadow import ShadowComparison, compare_outputs
from lockgate.rollout.store import CapturedRequest
from lockgate.serving.protocol import ModelInput, Outputs

__all__ = ["ReplayReport", "replay"]


@dataclass
class ReplayReport:
    """What replaying captured requests against a candidate showed."""

    captured: int = 0
    replayed: int = 0
    compared: int = 0
    candidate_errors: int = 0
    recorded_errors: int = 0
    first_error: str | None = None
    recorded_by: dict[str, int] = field(default_factory=dict)  # "variant (model vN)" -> requests
    comparison: ShadowComparison = field(default_factory=ShadowComparison)
    recorded_ms: list[float] = field(default_factory=list)  # per compared request, both sides
    candidate_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON: the counts, the agreement numbers that apply, and the latency quantiles."""
        c = self.comparison
        document: dict[str, Any] = {
            "captured": self.captured,
            "replayed": self.replayed,
            "compared": self.compared,
            "candidate_errors": self.candidate_errors,
            "recorded_errors": self.recorded_errors,
            "first_error": self.first_error,
            "recorded_by": dict(self.recorded_by),
            "labels": None,
            "numbers": None,
            "embeddings": None,
            "latency_ms": None,
        }
        if c.labels_compared:
            top = sorted(c.flips.items(), key=lambda item: (-item[1], item[0]))[:10]
            document["labels"] = {
                "compared": c.labels_compared,
                "agreement": c.agreement,
                "flip_rate": c.flip_rate,
                "flips": dict(top),
            }
        if c.abs_difference.count:
            document["numbers"] = {
                "compared": c.abs_difference.count,
                "mean_abs_difference": c.abs_difference.mean,
                "max_abs_difference": c.max_abs_difference,
            }
        if c.cosine.count:
            document["embeddings"] = {
                "compared": c.cosine.count,
                "mean_cosine": c.cosine.mean,
                "min_cosine": c.min_cosine,
            }
        if self.recorded_ms:
            # exact quantiles of the replayed requests (the histograms' buckets are coarser)
            recorded, candidate = np.asarray(self.recorded_ms), np.asarray(self.candidate_ms)
            document["latency_ms"] = {
                "recorded_p50": float(np.quantile(recorded, 0.5)),
                "recorded_p99": float(np.quantile(recorded, 0.99)),
                "candidate_p50": float(np.quantile(candidate, 0.5)),
                "candidate_p99": float(np.quantile(candidate, 0.99)),
            }
        return document


def replay(
    rows: Sequence[CapturedRequest],
    predict: Callable[[ModelInput], Outputs],
    *,
    primary_output: str | None,
    clock: Callable[[], float] = time.perf_counter,
) -> ReplayReport:
    """Run each captured request through ``predict`` and compare with what was answered.

    A request whose recorded answer was an error is replayed (the candidate's failure counts) but
    not compared. A candidate that raises on a request is counted, and its first error kept.
    """
    report = ReplayReport(captured=len(rows))
    for row in rows:
        who = f"{row.variant} ({row.model_name} v{row.model_version})"
        report.recorded_by[who] = report.recorded_by.get(who, 0) + 1
        if row.outputs is None:
            report.recorded_errors += 1
        inputs = decode_inputs(row.inputs)
        started = clock()
        try:
            answer = predict(inputs)
        # the candidate's failure is a number in the report, never the end of the replay
        except Exception as exc:  # noqa: BLE001
            report.candidate_errors += 1
            if report.first_error is None:
                report.first_error = f"{type(exc).__name__}: {exc}"
            continue
        elapsed_ms = (clock() - started) * 1000.0
        report.replayed += 1
        if row.outputs is None:
            continue
        compare_outputs(report.comparison, decode_outputs(row.outputs), answer, primary_output)
        report.comparison.record_latency([row.latency_ms], [elapsed_ms])
        report.recorded_ms.append(row.latency_ms)
        report.candidate_ms.append(elapsed_ms)
        report.compared += 1
    return report
