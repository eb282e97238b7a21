"""Pictures of lockgate's own numbers and state machine, for the terminal's ``--plot FILE`` options,
the teaching decks and the docs. matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from lockgate.figures.canvas import save_figure
from lockgate.figures.cost import plot_cost
from lockgate.figures.peeking import plot_peeking
from lockgate.figures.statemachine import state_machine_dot, transitions
from lockgate.figures.timeline import plot_timeline

__all__ = [
    "plot_cost",
    "plot_peeking",
    "plot_timeline",
    "save_figure",
    "state_machine_dot",
    "transitions",
]
