"""Several metrics at once: keep the chance of any false alarm across them at alpha.

- :func:`bonferroni` — valid for any dependence, and for always-valid p-values (or e-values as
  ``p = 1 / e``) checked at every look: the union bound holds for the time-uniform events too
  (Vovk & Wang, "E-values: calibration, combination and applications", Annals of Statistics 2021).
  This is what :class:`~lockgate.stats.decision.SequentialPolicy` uses across its guardrails.
- :func:`holm` — Holm's step-down procedure (Scandinavian Journal of Statistics 6, 1979), uniformly
  more powerful than Bonferroni, for a set of fixed-horizon tests in a report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError
from lockgate.stats._arguments import check_alpha

__all__ = ["MultipleResult", "bonferroni", "holm"]


@dataclass(frozen=True)
class MultipleResult:
    """Adjusted p-values (comparable with ``alpha`` directly) and which hypotheses are rejected."""

    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]
    alpha: float


def _p_values(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(p_values, dtype=np.float64).ravel()
    if arr.size == 0 or not np.all((arr >= 0.0) & (arr <= 1.0)):
        raise ValidationError(
            f"p-values {arr.tolist()} are not a non-empty list of numbers in [0, 1]",
            hint="pass one p-value per metric",
        )
    return arr


def bonferroni(p_values: npt.ArrayLike, *, alpha: float = 0.05) -> MultipleResult:
    """Reject where ``m * p <= alpha``."""
    check_alpha(alpha)
    arr = _p_values(p_values)
    adjusted = np.minimum(arr * arr.size, 1.0)
    return MultipleResult(tuple(float(p) for p in adjusted), tuple(bool(p <= alpha) for p in adjusted), alpha)


def holm(p_values: npt.ArrayLike, *, alpha: float = 0.05) -> MultipleResult:
    """Holm step-down: the i-th smallest p-value is compared with ``alpha / (m - i)``."""
    check_alpha(alpha)
    arr = _p_values(p_values)
    m = arr.size
    order = np.argsort(arr, kind="stable")
    stepped = np.maximum.accumulate(arr[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return MultipleResult(tuple(float(p) for p in adjusted), tuple(bool(p <= alpha) for p in adjusted), alpha)
