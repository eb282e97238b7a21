from __future__ import annotations

import lockgate.monitor


def test_monitor_all() -> None:
    assert sorted(lockgate.monitor.__all__) == sorted(
        [
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
    )
    for name in lockgate.monitor.__all__:
        assert hasattr(lockgate.monitor, name)
