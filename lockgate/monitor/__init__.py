"""Watching models in production: drift sketches and reports (metrics, alerts and the dashboard follow)."""

from __future__ import annotations

from lockgate.monitor.drift import (
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    drift_report,
    feature_drift,
    js_distance,
    ks_from_counts,
    psi_from_counts,
)
from lockgate.monitor.reference import Reference, reference_from_frame
from lockgate.monitor.sketch import (
    CategoricalSketch,
    EmbeddingSketch,
    NumericSketch,
    Sketch,
    sketch_from_dict,
)

__all__ = [
    "CategoricalSketch",
    "DriftReport",
    "DriftThresholds",
    "EmbeddingSketch",
    "FeatureDrift",
    "NumericSketch",
    "Reference",
    "Sketch",
    "drift_report",
    "feature_drift",
    "js_distance",
    "ks_from_counts",
    "psi_from_counts",
    "reference_from_frame",
    "sketch_from_dict",
]
