"""The population stability index (PSI) from binned counts: the one implementation that the gate's
prediction drift (``gates/drift.py``) and live drift (``monitor/drift.py``) both use."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError

__all__ = ["PSI_FLOOR", "psi_from_counts", "shares"]

PSI_FLOOR = 1e-4  # an empty bin counts as this share, so the log stays finite


def shares(counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Counts as shares of their total (all zeros stay zeros)."""
    arr = np.asarray(counts, dtype=np.float64)
    if (arr < 0).any():
        raise ValidationError("counts cannot be negative")
    total = arr.sum()
    return arr / total if total else arr


def psi_from_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Σ (c - r) ln(c / r) over bins; an empty bin counts as a share of 1e-4.

    0 for identical distributions; the usual reading is < 0.1 stable, 0.1-0.25 moderate, > 0.25
    shifted.
    """
    r = np.maximum(shares(reference), PSI_FLOOR)
    c = np.maximum(shares(current), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))
