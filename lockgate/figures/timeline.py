"""``lockgate simulate --plot``: a simulated rollout's weights, events and error rates over time."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from lockgate.figures.canvas import pyplot, save_figure
from lockgate.rollout.simulate import SimulationResult, TimelineEntry

__all__ = ["plot_timeline"]

_COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2")
_ACTION_COLORS = {"rollback": "#dc2626", "promote": "#16a34a", "halt": "#dc2626"}


def _steps(entries: Sequence[TimelineEntry], variant: str, end_s: float) -> tuple[list[float], list[float]]:
    """The variant's weight (%) as a step line: each value holds until the next event."""
    times: list[float] = []
    weights: list[float] = []
    for entry in entries:
        times.append(entry.at_s)
        weights.append(entry.weights_bp.get(variant, 0) / 100.0)
    times.append(end_s)
    weights.append(weights[-1] if weights else 0.0)
    return times, weights


def plot_timeline(result: SimulationResult, path: Path, *, title: str = "") -> Path:
    """Write the rollout's picture to ``path`` (.svg or .png).

    Top: the share of traffic each variant has, with a dashed line and a label at each event
    (labels of events close together go on separate rows). Bottom: each variant's error rate so
    far, at each event, with the verdict then.
    """
    plt = pyplot()
    entries = list(result.timeline)
    end_s = max([result.duration_s, *(e.at_s for e in entries)]) or 1.0
    variants = list(entries[0].weights_bp) if entries else []
    figure, (weights_axis, errors_axis) = plt.subplots(
        2, 1, figsize=(9, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for index, variant in enumerate(variants):
        times, weights = _steps(entries, variant, end_s)
        colour = _COLORS[index % len(_COLORS)]
        weights_axis.step(times, weights, where="post", color=colour, label=variant, lw=2)
    last_label_s = -float("inf")
    row = 0
    for entry in entries:
        colour = _ACTION_COLORS.get(entry.action, "#6b7280")
        for axis in (weights_axis, errors_axis):
            axis.axvline(entry.at_s, color=colour, ls="--", lw=0.8, alpha=0.7)
        # a label closer than 8% of the span to the previous one moves down a row
        row = row + 1 if entry.at_s - last_label_s < 0.08 * end_s else 0
        last_label_s = entry.at_s
        weights_axis.annotate(
            entry.action,
            (entry.at_s, 104 - 9 * (row % 3)),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=8,
            color=colour,
            va="top",
        )
    if entries:  # why it ended where it did, in the controller's words
        reason = textwrap.shorten(f"{entries[-1].action}: {entries[-1].reason}", width=140)
        weights_axis.set_title(reason, fontsize=8, color="#374151")
    weights_axis.set_ylim(-3, 108)
    weights_axis.set_ylabel("share of traffic (%)")
    weights_axis.legend(loc="center right", fontsize=8)
    weights_axis.grid(alpha=0.3)
    for index, variant in enumerate(variants):
        points = [(e.at_s, e.errors[variant] / e.requests[variant]) for e in entries if e.requests[variant]]
        if points:
            xs, ys = zip(*points, strict=True)
            errors_axis.plot(
                xs, [100 * y for y in ys], marker="o", color=_COLORS[index % len(_COLORS)], label=variant
            )
    for entry in entries:
        if entry.verdict:
            verdict = f"verdict: {entry.verdict}"
            errors_axis.annotate(verdict, (entry.at_s, 0), xytext=(3, 3), textcoords="offset points", size=7)
    errors_axis.set_ylabel("error rate so far (%)")
    errors_axis.set_xlabel("simulated time (s)")
    errors_axis.set_ylim(bottom=0)
    errors_axis.grid(alpha=0.3)
    final = result.state.phase.value
    figure.suptitle(title or f"simulated rollout: {final} after {result.requests_sent:,} requests")
    figure.tight_layout()
    return save_figure(figure, path)
