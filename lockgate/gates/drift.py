"""How far one sample of predictions has moved from another: PSI and the two-sample KS test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import ks_2samp

from lockgate.errors import ValidationError
from lockgate.stats.psi import psi_from_counts

__all__ = ["DriftResult", "ks_statistic", "population_stability_index", "prediction_drift"]


def _sample(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise ValidationError(f"the {what} sample has no finite values", hint="check the predictions")
    return arr


def population_stability_index(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> float:
    """PSI = Σ (c - r) ln(c / r) over bins cut at the reference's quantiles.

    0 for identical samples; the usual reading is < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted.
    Quantile edges that coincide (a reference with few distinct values, such as class labels) merge,
    so a binary prediction gets two bins.
    """
    if bins < 2:
        raise ValidationError(f"bins={bins} must be 2 or more", hint="10 is the usual choice")
    ref, cur = _sample(reference, "reference"), _sample(current, "current")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    return psi_from_counts(ref_counts, cur_counts)


def ks_statistic(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """The two-sample Kolmogorov-Smirnov statistic and its p-value (scipy's ``ks_2samp``)."""
    result = ks_2samp(_sample(reference, "reference"), _sample(current, "current"))
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class DriftResult:
    psi: float
    ks_statistic: float
    ks_p_value: float
    reference_mean: float
    current_mean: float


def prediction_drift(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> DriftResult:
    """PSI and KS between two samples of predictions (the champion's and the candidate's)."""
    ref, cur = _sample(reference, "reference"), _sample(current, "current")
    ks, p = ks_statistic(ref, cur)
    return DriftResult(
        population_stability_index(ref, cur, bins=bins), ks, p, float(np.mean(ref)), float(np.mean(cur))
    )
