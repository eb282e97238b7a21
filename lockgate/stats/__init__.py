"""Statistics that decide: mergeable accumulators, sequential tests, SRM, guardrails, power."""

from __future__ import annotations

from lockgate.stats.accumulators import (
    LatencyHistogram,
    Moments,
    Proportion,
    VariantStats,
)
from lockgate.stats.verdict import Decision, Policy, Verdict

__all__ = [
    "Decision",
    "LatencyHistogram",
    "Moments",
    "Policy",
    "Proportion",
    "VariantStats",
    "Verdict",
]
