"""The built-in check kinds, one module each: its settings, its pure decision and its runner.

Each module registers its kind with :func:`lockgate.gates.kinds.register_check_kind` when it is
imported; a new kind is one more module like them (or a plug-in's own module). The pure decisions take
plain values (numbers, arrays, profiles, schemas, tags) and return one frozen
:class:`~lockgate.gates.result.CheckResult`: no I/O, no clock, no MLflow. They are re-exported here,
so ``from lockgate.gates.checks import metric_threshold`` keeps working; importing this package
registers every built-in kind.
"""

from __future__ import annotations

# the task kinds have no decision of their own to re-export; imported to register them
from lockgate.gates.checks import (  # noqa: F401
    embedding_retrieval,
    generation,
    prompt,
    text_classification,
)
from lockgate.gates.checks.budgets import latency_budget, size_budget
from lockgate.gates.checks.champion import champion_bootstrap, champion_mcnemar
from lockgate.gates.checks.data import data_nulls, data_ranges, data_schema, data_skew
from lockgate.gates.checks.drift import prediction_drift
from lockgate.gates.checks.lineage import provenance
from lockgate.gates.checks.metrics import metric_threshold
from lockgate.gates.checks.signature import signature_compatibility
from lockgate.gates.checks.slices import slice_against_baseline
from lockgate.gates.checks.task import task_metric

__all__ = [
    "champion_bootstrap",
    "champion_mcnemar",
    "data_nulls",
    "data_ranges",
    "data_schema",
    "data_skew",
    "latency_budget",
    "metric_threshold",
    "prediction_drift",
    "provenance",
    "signature_compatibility",
    "size_budget",
    "slice_against_baseline",
    "task_metric",
]
