"""Drift between a reference (the training data) and live traffic, measured on sketches.

Per numeric feature: the population stability index (PSI), the Jensen-Shannon distance and a binned
two-sample Kolmogorov-Smirnov statistic with its asymptotic p-value; per categorical feature PSI and
Jensen-Shannon; per embedding the cosine distance between the centroids, and the mean cosine of
live embeddings to the reference centroid. All from counts, so live
data is never stored. Binning can only hide differences, so the binned KS statistic is never above
the exact one (a conservative test).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial.distance import jensenshannon
from scipy.special import kolmogorov

from lockgate.errors import ValidationError
from lockgate.monitor.sketch import CategoricalSketch, EmbeddingSketch, NumericSketch, Sketch
from lockgate.stats.psi import psi_from_counts
from lockgate.stats.psi import shares as _shares

__all__ = [
    "DriftReport",
    "DriftThresholds",
    "FeatureDrift",
    "drift_report",
    "feature_drift",
    "js_distance",
    "ks_from_counts",
    "psi_from_counts",
]


def js_distance(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon distance in [0, 1] (base-2 logarithms)."""
    r, c = _shares(reference), _shares(current)
    if not r.any() or not c.any():
        return 0.0
    return float(jensenshannon(r, c, base=2.0))


def ks_from_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Largest gap between the two binned CDFs, and its asymptotic p-value (Kolmogorov's law)."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    n, m = ref.sum(), cur.sum()
    if n == 0 or m == 0:
        return 0.0, 1.0
    stat = float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)))
    effective = n * m / (n + m)
    return stat, float(min(1.0, kolmogorov(stat * math.sqrt(effective))))


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted (any one of these), and how much live data it takes to say."""

    psi: float = 0.2
    # for small shifts JS distance (base 2) squared is about PSI / (8 ln 2): 0.2 matches PSI 0.22; 0.1
    # matched PSI 0.055, which iid samples of a few hundred values cross by chance
    js: float = 0.2
    ks_p_value: float = 0.001
    cosine_distance: float = 0.05
    min_count: int = 200

    def __post_init__(self) -> None:
        if self.psi <= 0 or not 0 < self.js <= 1 or not 0 < self.ks_p_value < 1 or self.min_count < 1:
            raise ValidationError(
                "drift thresholds must be positive (js in (0, 1], ks_p_value in (0, 1), min_count >= 1)",
                hint="the defaults are psi=0.2, js=0.2, ks_p_value=0.001, min_count=200",
            )


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift numbers; ``status`` is ``drift``, ``ok`` or ``insufficient data``."""

    name: str
    kind: str
    reference_count: int
    live_count: int
    numbers: Mapping[str, float] = field(default_factory=dict)
    status: str = "ok"
    reasons: tuple[str, ...] = ()

    @property
    def is_drifted(self) -> bool:
        return self.status == "drift"


def feature_drift(name: str, reference: Sketch, live: Sketch, thresholds: DriftThresholds) -> FeatureDrift:
    """Compare one feature's live sketch with its reference sketch."""
    if type(reference) is not type(live):
        raise ValidationError(f"feature '{name}': reference and live sketches are of different kinds")
    live_count, ref_count = live.count, reference.count
    numbers: dict[str, float] = {}
    reasons: list[str] = []
    if isinstance(reference, EmbeddingSketch) and isinstance(live, EmbeddingSketch):
        a, b = reference.centroid(), live.centroid()
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        distance = 1.0 - float(a @ b) / denom if denom else 0.0
        numbers["cosine_distance"] = distance
        # a centroid of unit vectors: its length is the mean cosine of the vectors to its direction,
        # and the live centroid projected on the reference's is the mean cosine of live vectors to it
        norm_a = float(np.linalg.norm(a))
        numbers["reference_mean_cosine"] = norm_a
        if norm_a and live_count:
            numbers["mean_cosine"] = float(b @ a) / norm_a
        if distance > thresholds.cosine_distance:
            reasons.append(f"centroid cosine distance {distance:.3f} > {thresholds.cosine_distance}")
    else:
        if isinstance(reference, NumericSketch) and isinstance(live, NumericSketch):
            if reference.edges != live.edges:
                raise ValidationError(f"feature '{name}': live sketch is not cut at the reference's edges")
            ref_counts, live_counts = reference.counts, live.counts
            ks, p_value = ks_from_counts(ref_counts, live_counts)
            numbers["ks"], numbers["ks_p_value"] = ks, p_value
            if p_value < thresholds.ks_p_value:
                reasons.append(f"KS {ks:.3f} (p={p_value:.2g}) < {thresholds.ks_p_value}")
        else:
            assert isinstance(reference, CategoricalSketch) and isinstance(live, CategoricalSketch)
            ref_counts, live_counts = reference.vector(), live.vector()
        psi, js = psi_from_counts(ref_counts, live_counts), js_distance(ref_counts, live_counts)
        numbers["psi"], numbers["js"] = psi, js
        if psi > thresholds.psi:
            reasons.append(f"PSI {psi:.3f} > {thresholds.psi}")
        if js > thresholds.js:
            reasons.append(f"Jensen-Shannon {js:.3f} > {thresholds.js}")
    if live_count < thresholds.min_count:
        status = "insufficient data"
        reasons = [f"{live_count} live values < {thresholds.min_count}"]
    else:
        status = "drift" if reasons else "ok"
    return FeatureDrift(name, reference.kind, ref_count, live_count, numbers, status, tuple(reasons))


@dataclass(frozen=True)
class DriftReport:
    """Every feature's drift, and the names of the drifted ones."""

    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.is_drifted)

    @property
    def has_drift(self) -> bool:
        return bool(self.drifted)


def drift_report(
    reference: Mapping[str, Sketch],
    live: Mapping[str, Sketch],
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Compare each reference feature with its live sketch (a feature never seen live counts as empty)."""
    limits = thresholds or DriftThresholds()
    rows = []
    for name in reference:
        current = live.get(name) or reference[name].empty_like()
        rows.append(feature_drift(name, reference[name], current, limits))
    return DriftReport(tuple(rows))
