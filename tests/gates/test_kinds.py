"""Check kinds run on plain inputs: the whole gate's logic without MLflow, and a kind plugged in."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lockgate.errors import Conflict, UserError, ValidationError
from lockgate.gates.gate import parse_model_uri
from lockgate.gates.kinds import (
    CHECK_KINDS,
    CheckKind,
    GateInputs,
    Predictions,
    register_check_kind,
    run_check,
)
from lockgate.gates.policy import parse_policy
from lockgate.gates.result import CheckResult, check_failed
from lockgate.gates.specs import Spec
from lockgate.tracking.refs import Ref

POLICY = """
holdout: {dataset: d@1, target: y}
seed: 3
checks:
  metrics: [{metric: accuracy, threshold: 0.8}]
  champion:
    - {metric: accuracy, test: mcnemar, margin: 0.02}
    - {metric: roc_auc, margin: 0.02, resamples: 200}
  slices: [{column: group, margin: 0.05, min_rows: 10}]
  drift: {}
"""


def _inputs(candidate_flips: int) -> GateInputs:
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n).astype(float)
    scores = np.clip(y * 0.7 + rng.normal(0.15, 0.1, n), 0, 1)
    labels = (scores >= 0.5).astype(float)
    worse_scores = scores.copy()
    worse_scores[:candidate_flips] = 1 - worse_scores[:candidate_flips]
    frame = pd.DataFrame({"group": np.where(np.arange(n) % 2 == 0, "a", "b"), "y": y})
    return GateInputs(
        y_true=y,
        frame=frame,
        candidate=Predictions((worse_scores >= 0.5).astype(float), worse_scores),
        baseline=Predictions(labels, scores),
        baseline_ref="m@1",
        seed=3,
    )


def _run(inputs: GateInputs) -> list[CheckResult]:
    policy = parse_policy(POLICY)
    return [r for kind, settings in policy.checks for r in run_check(kind, settings, inputs)]


def test_an_identical_candidate_passes_every_check() -> None:
    results = _run(_inputs(candidate_flips=0))
    assert all(r.passed and not r.is_skipped for r in results), [r.message for r in results if not r.passed]
    assert [r.name for r in results] == [
        "metric accuracy",
        "champion accuracy (mcnemar)",
        "champion roc_auc (bootstrap)",
        "slice group=a accuracy",
        "slice group=b accuracy",
        "prediction drift",
    ]
    assert {r.kind for r in results} == {"metrics", "champion", "slices", "drift"}


def test_a_worse_candidate_fails_the_comparisons() -> None:
    failed = {r.name for r in _run(_inputs(candidate_flips=40)) if not r.passed}
    assert {"champion accuracy (mcnemar)", "champion roc_auc (bootstrap)", "slice group=a accuracy"} <= failed


def test_no_baseline_skips_and_no_predictions_fail() -> None:
    no_baseline = dataclasses.replace(_inputs(0), baseline=None, baseline_ref="m@champion is not set")
    results = _run(no_baseline)
    assert all(r.passed for r in results)
    assert [r.name for r in results if r.is_skipped] == [
        "champion accuracy (mcnemar)", "champion roc_auc (bootstrap)", "prediction drift",
    ]  # fmt: skip
    broken = dataclasses.replace(_inputs(0), candidate=None, candidate_error="missing column x")
    assert all(not r.passed and "missing column x" in r.message for r in _run(broken))


def test_a_bad_slice_rule_is_bad_input() -> None:
    policy = parse_policy("holdout: {dataset: d@1, target: y}\nchecks:\n  slices: [{query: 'nope > 1'}]\n")
    ((kind, settings),) = policy.checks
    with pytest.raises(ValidationError, match=r"checks.slices\[0\].query 'nope > 1' cannot run"):
        run_check(kind, settings, _inputs(0))


class _FairnessSpec(Spec):
    max_gap: float = 0.1


def _fairness(spec: _FairnessSpec, inputs: GateInputs) -> Sequence[CheckResult]:
    assert inputs.candidate is not None and inputs.frame is not None and inputs.y_true is not None
    correct = inputs.candidate.labels == inputs.y_true
    rates = [float(correct[inputs.frame["group"] == g].mean()) for g in ("a", "b")]
    gap = abs(rates[0] - rates[1])
    return [check_failed("fairness gap", f"gap {gap:.3f}", gap=gap)] if gap > spec.max_gap else []


def test_a_new_kind_plugs_in() -> None:
    kind = CheckKind("fairness", _FairnessSpec, frozenset({"holdout"}), _fairness)
    register_check_kind(kind)
    try:
        with pytest.raises(Conflict, match="already registered"):
            register_check_kind(kind)
        policy = parse_policy("holdout: {dataset: d@1, target: y}\nchecks:\n  fairness: {max_gap: -1}\n")
        ((plugged, settings),) = policy.checks
        assert plugged is kind and settings == _FairnessSpec(max_gap=-1)
        (result,) = run_check(plugged, settings, _inputs(0))
        assert result.kind == "fairness" and not result.passed
        with pytest.raises(ValidationError, match=r"checks\.fairness\.max_gap: must be a number"):
            parse_policy("checks:\n  fairness: {max_gap: wide}\n")
    finally:
        del CHECK_KINDS["fairness"]


def test_each_built_in_kind_is_one_module_holding_its_spec_and_runner() -> None:
    """Adding a kind means adding one module: its settings, its decision and its runner live together."""
    import lockgate.gates.checks

    built_in = {name: kind for name, kind in CHECK_KINDS.items() if isinstance(kind, CheckKind)}
    assert len(built_in) >= 11
    for name, kind in built_in.items():
        module = kind.runner.__module__
        assert module.startswith(lockgate.gates.checks.__name__ + "."), name
        assert kind.spec.__module__ == module, f"{name}: spec in {kind.spec.__module__}, runner in {module}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/clf/3", Ref("clf", version=3)),
        ("models:/clf@champion", Ref("clf", alias="champion")),
        ("clf@2", Ref("clf", version=2)),
        ("clf", Ref("clf")),
    ],
)
def test_parse_model_uri(text: str, expected: Any) -> None:
    assert parse_model_uri(text) == expected


def test_parse_model_uri_refuses_runs_and_bad_versions() -> None:
    with pytest.raises(UserError, match="not a registered model"):
        parse_model_uri("runs:/abc/model")
    with pytest.raises(UserError, match="names no version number"):
        parse_model_uri("models:/clf/latest")
