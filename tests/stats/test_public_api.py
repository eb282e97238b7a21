"""The public API of lockgate.stats is a decision: changing it must change this test."""

from __future__ import annotations

import lockgate.stats

EXPECTED = [
    "DECISION_CODES",
    "Analysis",
    "ArmBatch",
    "BernoulliSPRT",
    "DeciderOutcome",
    "Decision",
    "FixedResult",
    "IntervalMannWhitney",
    "LatencyHistogram",
    "MixtureSPRT",
    "Moments",
    "MultipleResult",
    "NaivePeeking",
    "Policy",
    "PolicyDecider",
    "PrimaryMetric",
    "Proportion",
    "RateRatioSPRT",
    "SRMResult",
    "SequentialPolicy",
    "SequentialResult",
    "SequentialSRM",
    "StaticThreshold",
    "StreamDecider",
    "StreamSpec",
    "VariantAnalysis",
    "VariantStats",
    "Verdict",
    "analyze_variants",
    "bonferroni",
    "holm",
    "mann_whitney_binary",
    "mann_whitney_u",
    "peeking_false_alarm_rate",
    "power_two_means",
    "power_two_proportions",
    "sample_size_two_means",
    "sample_size_two_proportions",
    "simulate_streams",
    "srm_chi2",
    "two_proportion_z_p",
    "two_proportion_z_test",
    "welch_t_test",
]


def test_public_api_is_pinned() -> None:
    assert lockgate.stats.__all__ == EXPECTED


def test_every_public_name_exists() -> None:
    for name in lockgate.stats.__all__:
        assert getattr(lockgate.stats, name) is not None
