"""``lockgate plan --cost --plot``: each strategy's price, duration and exposure side by side."""

from __future__ import annotations

import math
from pathlib import Path

from lockgate.figures.canvas import pyplot, save_figure
from lockgate.rollout.cost import CostEstimate

__all__ = ["plot_cost"]


def plot_cost(estimate: CostEstimate, path: Path, *, title: str = "") -> Path:
    """Three bar panels, one bar per strategy (the spec's own darker): extra cost in $, how long the
    rollout takes in minutes, and the requests the unproven candidate answers (its risk)."""
    plt = pyplot()
    rows = list(estimate.strategies)
    names = [row.strategy for row in rows]
    colours = ["#1d4ed8" if row.is_spec_strategy else "#93c5fd" for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    panels = (
        ("extra cost ($)", [row.cost for row in rows]),
        ("duration (min)", [row.duration_s / 60.0 for row in rows]),
        ("risk exposure (requests)", [row.risk_requests for row in rows]),
    )
    for axis, (label, values) in zip(axes, panels, strict=True):
        finite = [v for v in values if math.isfinite(v)]
        top = max(finite, default=1.0) or 1.0
        shown = [v if math.isfinite(v) else top * 1.1 for v in values]
        bars = axis.barh(names, shown, color=colours)
        for bar, value in zip(bars, values, strict=True):
            if not math.isfinite(value):
                text = "all, unjudged"
            else:
                is_small = value < 10 and not label.startswith("risk")
                text = f"{value:,.2f}" if is_small else f"{value:,.0f}"
            axis.annotate(
                text,
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        axis.set_title(label, fontsize=10)
        axis.set_xlim(0, top * 1.45)
        axis.invert_yaxis()
        axis.grid(alpha=0.3, axis="x")
    for axis in axes[1:]:
        axis.set_yticklabels([])
    inputs = estimate.inputs
    figure.suptitle(
        title
        or (
            f"rollout cost at {inputs.traffic_rps:g} req/s, ${inputs.price_per_replica_hour:g}/replica-hour "
            f"(dark: the spec's strategy)"
        )
    )
    figure.tight_layout()
    return save_figure(figure, path)
