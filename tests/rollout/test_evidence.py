"""Planning a rollout's evidence: when each stage can advance at a given traffic."""

from __future__ import annotations

import pytest

from lockgate.errors import ValidationError
from lockgate.rollout import load_spec, parse_spec
from lockgate.rollout.evidence import evidence_plan, stage_warnings

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


def with_steps(steps: list[dict[str, float]], analysis: dict[str, object] | None = None) -> dict[str, object]:
    data = CANARY.to_dict()
    data["strategy"] = {"type": "canary", "steps": steps}
    if analysis is not None:
        data["analysis"] = analysis
    return data


def test_a_stage_asking_for_fewer_requests_than_the_policy_judges_on_is_warned_about() -> None:
    """Issue 20: min_requests 100 under min_samples 200 passed without a word."""
    spec = parse_spec(with_steps([{"weight_percent": 5, "min_requests": 100}, {"weight_percent": 50}]))
    [warning] = stage_warnings(spec)
    assert "stage 1 asks for 100 requests" in warning and "200 per arm" in warning
    assert "min_requests to at least 200" in warning
    threshold = parse_spec(with_steps([{"weight_percent": 5, "min_requests": 50}], {"policy": "threshold"}))
    [warning] = stage_warnings(threshold)
    assert "no verdict at all" in warning
    # enough requests, or none asked for (the stage waits for the evidence): nothing to say
    fine = [{"weight_percent": 5, "min_requests": 200}, {"weight_percent": 50}]
    assert stage_warnings(parse_spec(with_steps(fine))) == []
    assert stage_warnings(CANARY) == []
