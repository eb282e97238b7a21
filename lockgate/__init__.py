"""lockgate: carry a machine-learning model from experiment to production through gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    "data",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "track",
]


def __getattr__(name: str) -> Any:
    """The tracking API and ``lockgate.data``, imported on first use: ``lockgate --help`` and the
    commands that do not track stay clear of them (PEP 562)."""
    if name == "data":
        import importlib

        return importlib.import_module("lockgate.data")
    if name in __all__ and name != "__version__":
        from lockgate.tracking import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module 'lockgate' has no attribute {name!r}")
