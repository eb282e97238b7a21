from __future__ import annotations

import lockgate.readiness


def test_readiness_all() -> None:
    assert sorted(lockgate.readiness.__all__) == sorted(
        [
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
    )
    for name in lockgate.readiness.__all__:
        assert hasattr(lockgate.readiness, name)
