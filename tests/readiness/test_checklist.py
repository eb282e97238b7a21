"""The deployment checklist decided from facts alone: no registry, no store."""

from __future__ import annotations

from lockgate.readiness.checklist import (
    CHECKLIST,
    DeploymentFacts,
    VersionFacts,
    check_deployment,
    rubric_evidence,
)
from lockgate.rollout.spec import DeploymentSpec, parse_spec


def _spec(strategy: str = "canary") -> DeploymentSpec:
    steps = {"steps": [{"weight_percent": 10}]} if strategy == "canary" else {}
    return parse_spec(
        {
            "name": "fraud",
            "variants": {"stable": "models:/fraud/3", "canary": "models:/fraud/4"},
            "baseline": "stable",
            "candidate": "canary",
            "strategy": {"type": strategy, **steps},
        }
    )


GOOD = VersionFacts("models:/fraud/4", True, "ab" * 32, "pass", (), "run1", "c0ffee", True)
OLD = VersionFacts("models:/fraud/3", True, "cd" * 32, "pass", ("champion",), "run0", "c0ffee", True)


def _status(spec: DeploymentSpec, facts: DeploymentFacts) -> dict[str, str]:
    return {r.item.id: r.status for r in check_deployment(spec, facts)}


def test_a_ready_deployment_has_only_the_manual_items_left() -> None:
    facts = DeploymentFacts({"stable": OLD, "canary": GOOD}, is_store_checked=True, has_rollback_event=True)
    status = _status(_spec(), facts)
    assert [i.stage for i in CHECKLIST] == sorted(
        (i.stage for i in CHECKLIST), key=["before", "during", "after"].index
    )
    for item in CHECKLIST:
        expected = {"manual"} if not item.is_checked else {"done", "unchecked"}
        assert status[item.id] in expected, item.id
    assert status["champion"] == "unchecked"  # not promoted yet


def test_each_missing_fact_is_left() -> None:
    unregistered = VersionFacts("models:/fraud/4", is_registered=False)
    facts = DeploymentFacts({"stable": OLD, "canary": unregistered})
    status = _status(_spec("direct"), facts)
    for item in ("registered", "checksum", "gate", "strategy", "analysis"):
        assert status[item] == "left", item
    assert status["rollback"] == "unchecked"  # no store given


def test_a_failed_gate_is_left_and_a_promotion_without_the_alias_too() -> None:
    failed = VersionFacts("models:/fraud/4", True, "ab" * 32, "fail")
    facts = DeploymentFacts({"stable": OLD, "canary": failed}, is_store_checked=True, phase="promoted")
    status = _status(_spec(), facts)
    assert status["gate"] == "left" and status["rollback"] == "left" and status["champion"] == "left"


def test_facts_become_rubric_evidence() -> None:
    facts = DeploymentFacts({"stable": OLD, "canary": GOOD}, is_store_checked=True, has_rollback_event=True)
    evidence = rubric_evidence(_spec(), facts)
    assert evidence == {
        "D1": "automated",
        "I1": "automated",
        "I4": "automated",
        "I5": "automated",
        "I6": "automated",
        "I7": "automated",
        "M1": "automated",
        "N7": "automated",
    }
    bare = rubric_evidence(
        _spec("direct"), DeploymentFacts({"stable": OLD, "canary": VersionFacts("x", False)})
    )
    assert bare == {"I7": "manual"}


def test_the_gates_budgets_and_slices_count_when_the_gate_ran_them() -> None:
    """Issue 20: budgets and slices scored "missing" although the gate had run both."""
    from dataclasses import replace

    from lockgate.readiness.checklist import rubric_evidence

    plain = rubric_evidence(_spec(), DeploymentFacts({"stable": OLD, "canary": GOOD}))
    assert not {"D3", "N6", "M6"} & set(plain)
    gated = replace(GOOD, gate_kinds=frozenset({"metrics", "budgets", "slices"}))
    evidence = rubric_evidence(_spec(), DeploymentFacts({"stable": OLD, "canary": gated}))
    assert {evidence[t] for t in ("D3", "N6", "M6")} == {"automated"}
    ungated = replace(gated, gate_verdict=None)  # kinds without a verdict prove nothing
    assert "D3" not in rubric_evidence(_spec(), DeploymentFacts({"stable": OLD, "canary": ungated}))
