"""Is it ready to ship? The deployment checklist and the ML Test Score rubric, as data and pure checks."""

from __future__ import annotations

from lockgate.readiness.checklist import (
    CHECKLIST,
    ChecklistItem,
    DeploymentFacts,
    ItemResult,
    VersionFacts,
    check_deployment,
    rubric_evidence,
)
from lockgate.readiness.rubric import RUBRIC, SECTIONS, RubricScore, RubricTest, score_rubric

__all__ = [
    "CHECKLIST",
    "RUBRIC",
    "SECTIONS",
    "ChecklistItem",
    "DeploymentFacts",
    "ItemResult",
    "RubricScore",
    "RubricTest",
    "VersionFacts",
    "check_deployment",
    "rubric_evidence",
    "score_rubric",
]
