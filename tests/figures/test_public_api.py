"""The public API of lockgate.figures, pinned: a change here is a decision."""

from __future__ import annotations

import lockgate.figures


def test_figures_all() -> None:
    assert sorted(lockgate.figures.__all__) == [
        "plot_cost",
        "plot_peeking",
        "plot_timeline",
        "save_figure",
        "state_machine_dot",
        "transitions",
    ]
