"""Where every figure is saved: SVG or PNG, byte-for-byte the same for the same numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lockgate.errors import UserError

__all__ = ["SUFFIXES", "check_plot_path", "pyplot", "save_figure"]

SUFFIXES = (".svg", ".png")


def check_plot_path(path: Path, option: str = "--plot") -> Path:
    """``path`` when it ends in .svg or .png; a :class:`UserError` naming the option otherwise."""
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(
            f"{option} file '{path}' must end in .svg or .png",
            hint=f"for example {option} figure.svg (vector, for slides) or {option} figure.png",
        )
    return path


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed), with SVG ids that do not change
    between runs, so a regenerated figure differs only when its numbers do."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "lockgate"
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, smaller, sharp
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> Path:
    """Write ``figure`` to ``path`` (.svg or .png) without a creation date, then close it."""
    check_plot_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Date": None} if path.suffix.lower() == ".svg" else {"Software": None}
    figure.savefig(path, dpi=110, metadata=metadata, bbox_inches="tight")
    pyplot().close(figure)
    return path
