"""Planning a rollout's evidence: when each stage can advance at a given traffic."""

from __future__ import annotations

import pytest

from lockgate.errors import ValidationError
from lockgate.rollout import load_spec, parse_spec
from lockgate.rollout.evidence import evidence_plan

CANARY = load_spec("examples/specs/canary.yaml")


def test_enough_traffic_ends_every_stage_at_its_minimum_duration() -> None:
    stages = evidence_plan(CANARY, 1000.0, design_effect=1.3)
    assert [s.ends_s for s in stages] == [300.0, 300.0, 600.0]
    first = stages[0].evidence_s
    assert first is not None and 60 < first < 300  # the 5% step needs minutes; later ones add up
    assert stages[1].evidence_s is not None and stages[1].evidence_s < first


def test_too_little_traffic_ends_the_first_stage_as_on_inconclusive_says() -> None:
    [stage] = evidence_plan(CANARY, 100.0)
    assert stage.evidence_s is None and stage.ends_s is None and stage.max_duration_s == 900.0


def test_a_wider_margin_or_more_users_alike_needs_less_traffic() -> None:
    data = CANARY.to_dict()
    data["analysis"]["guardrails"]["errors"] = {"max_increase": {"absolute_pp": 2}}
    wide = parse_spec(data)
    assert all(s.ends_s is not None for s in evidence_plan(wide, 100.0))
    slower = evidence_plan(CANARY, 1000.0, design_effect=3.0)[0].evidence_s
    faster = evidence_plan(CANARY, 1000.0, design_effect=1.0)[0].evidence_s
    assert slower is not None and faster is not None and faster < slower


def test_a_threshold_policy_or_bad_numbers_are_refused() -> None:
    data = CANARY.to_dict()
    data["analysis"] = {"policy": "threshold"}
    with pytest.raises(ValidationError, match="only the sequential policy"):
        evidence_plan(parse_spec(data), 1000.0)
    with pytest.raises(ValidationError, match="requests_per_s"):
        evidence_plan(CANARY, 0.0)
