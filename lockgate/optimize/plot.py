"""The sweep's picture: quality against single-row latency and against size, Pareto-optimal marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lockgate.optimize.tradeoff import TradeOff, pareto_optimal

__all__ = ["plot_tradeoffs"]


def plot_tradeoffs(records: Sequence[TradeOff], path: Path, *, title: str = "") -> Path:
    """Write a PNG with two panels: quality against p50 latency at batch 1, and against the bytes on
    disk of the saved MLflow model folder (what is registered and served)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flags = pareto_optimal(records)
    figure, (by_latency, by_size) = plt.subplots(1, 2, figsize=(11, 4.5))
    for record, is_optimal in zip(records, flags, strict=True):
        marker = "*" if is_optimal else ("x" if not record.is_verified else "o")
        size = 160 if is_optimal else 50
        for axis, x in ((by_latency, record.latency_b1.p50_ms), (by_size, record.size_bytes / 1e6)):
            axis.scatter([x], [record.quality], marker=marker, s=size)
            axis.annotate(
                record.label, (x, record.quality), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
    metric = records[0].quality_metric if records else "quality"
    by_latency.set_xlabel("p50 latency at batch 1 (ms)")
    by_size.set_xlabel("saved MLflow model folder on disk (MB)")
    for axis in (by_latency, by_size):
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    figure.suptitle(title or "optimization trade-offs (★ Pareto-optimal, x not within tolerance)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
