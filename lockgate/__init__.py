"""lockgate: carry a machine-learning model from experiment to production through gates."""

from __future__ import annotations

from lockgate.tracking.tracker import (
    TrackedRun,
    active_run,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    track,
)

__version__ = "0.1.0"

__all__ = [
    "TrackedRun",
    "__version__",
    "active_run",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "track",
]
