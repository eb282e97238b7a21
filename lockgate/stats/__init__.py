"""Statistics that decide: mergeable accumulators, sequential tests, SRM, guardrails, power."""

from __future__ import annotations

from lockgate.stats.accumulators import (
    LatencyHistogram,
    Moments,
    Proportion,
    VariantStats,
)
from lockgate.stats.analysis import Analysis, VariantAnalysis, analyze_variants
from lockgate.stats.decision import DECISION_CODES, ArmBatch, PrimaryMetric, SequentialPolicy
from lockgate.stats.fixed import (
    FixedResult,
    mann_whitney_binary,
    mann_whitney_u,
    two_proportion_z_p,
    two_proportion_z_test,
    welch_t_test,
)
from lockgate.stats.multiple import MultipleResult, bonferroni, holm
from lockgate.stats.power import (
    power_two_means,
    power_two_proportions,
    sample_size_two_means,
    sample_size_two_proportions,
)
from lockgate.stats.sequential import (
    BernoulliSPRT,
    MixtureSPRT,
    RateRatioSPRT,
    SequentialResult,
)
from lockgate.stats.simulation import (
    DeciderOutcome,
    IntervalMannWhitney,
    NaivePeeking,
    PolicyDecider,
    StaticThreshold,
    StreamDecider,
    StreamSpec,
    peeking_false_alarm_rate,
    simulate_streams,
)
from lockgate.stats.srm import SequentialSRM, SRMResult, srm_chi2
from lockgate.stats.verdict import Decision, Policy, Verdict

__all__ = [
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
