"""``lockgate simulate-stats --plot``: how often each way of watching a canary rolls back, look by look."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lockgate.figures.canvas import pyplot, save_figure
from lockgate.stats.simulation import _ROLLBACK, DeciderOutcome

__all__ = ["plot_peeking"]

_LABELS = {
    "naive": "naive peeking (fixed-horizon z test at every look)",
    "threshold": "static threshold (1.5x baseline, 5 failed looks)",
    "mann_whitney": "Mann-Whitney per interval",
    "lockgate": "lockgate sequential test (always valid)",
}


def rollbacks_by_look(outcome: DeciderOutcome, looks: int, requests_per_look: int) -> np.ndarray:
    """Share of runs rolled back at or before each look 1..``looks``."""
    per_arm_at_look = np.arange(1, looks + 1) * requests_per_look / 2.0
    rolled = outcome.codes == _ROLLBACK
    when = np.where(rolled, outcome.samples_per_arm, np.inf)
    return np.array([float(np.mean(when <= n + 1e-9)) for n in per_arm_at_look])


def plot_peeking(
    outcomes: Mapping[str, DeciderOutcome],
    path: Path,
    *,
    looks: int,
    requests_per_look: int,
    alpha: float,
    is_aa: bool,
    title: str = "",
) -> Path:
    """Write one line per decider: the share of simulated canaries rolled back by each look.

    With no real difference (A/A) that share is the false-alarm rate: a valid decider stays under
    ``alpha`` however many looks, naive peeking climbs far above it.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8.5, 4.6))
    x = np.arange(1, looks + 1)
    for name, outcome in outcomes.items():
        shares = rollbacks_by_look(outcome, looks, requests_per_look)
        axis.plot(x, shares, label=_LABELS.get(name, name), lw=2)
    if is_aa:
        axis.axhline(alpha, color="#111827", ls="--", lw=1)
        axis.annotate(f"alpha = {alpha:g}", (1, alpha), xytext=(2, 3), textcoords="offset points", fontsize=8)
    axis.set_xscale("log")
    axis.set_xlabel(f"looks at the numbers ({requests_per_look} requests between looks)")
    axis.set_ylabel("false rollbacks (share of runs)" if is_aa else "rollbacks (share of runs)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    if is_aa:
        axis.set_title(title or "no real difference: false rollbacks as looks grow")
    else:
        axis.set_title(title or "a real regression: rollbacks as looks grow")
    figure.tight_layout()
    return save_figure(figure, path)
