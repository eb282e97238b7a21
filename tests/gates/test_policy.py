from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lockgate.errors import NotFound, ValidationError
from lockgate.gates.policy import load_policy, parse_policy
from lockgate.gates.specs import ChampionSpec, MetricSpec

GOOD = textwrap.dedent(
    """\
    holdout:
      dataset: breast-cancer-holdout@1
      target: target
    seed: 7
    checks:
      metrics:
        - metric: accuracy
          threshold: 0.9
        - metric: roc_auc
          min_absolute_change: 0.001
      champion:
        metric: accuracy
        test: mcnemar
        margin: 0.02
      slices:
        - name: large
          query: "`mean radius` > 15"
      signature: true
      budgets: {latency_p95_ms: 50, size_bytes: 1000000}
      data: {}
      drift: {max_psi: 0.25}
      provenance: {require_clean: false}
    """
)


def _error(text: str) -> str:
    with pytest.raises(ValidationError) as info:
        parse_policy(text)
    assert info.value.exit_code == 2
    return info.value.message


def test_a_good_policy_parses_into_typed_settings() -> None:
    policy = parse_policy(GOOD)
    assert policy.kinds == (
        "metrics", "champion", "slices", "signature", "budgets", "data", "drift", "provenance",
    )  # fmt: skip
    settings = {kind.name: value for kind, value in policy.checks}
    assert settings["metrics"][1] == MetricSpec(metric="roc_auc", min_absolute_change=0.001)
    assert settings["champion"] == [ChampionSpec(metric="accuracy", test="mcnemar", margin=0.02)]
    assert policy.settings.seed == 7 and policy.settings.against == "champion"
    assert policy.needs == {"holdout", "baseline", "signature", "latency", "size", "profiles", "run_tags"}
    assert len(policy.sha256) == 64
    assert parse_policy(GOOD).sha256 == policy.sha256
    assert parse_policy(GOOD + "\n# a comment\n").sha256 != policy.sha256


def test_a_wrong_type_names_the_key_and_line() -> None:
    text = GOOD.replace("min_absolute_change: 0.001", "min_absolute_change: lots")
    assert _error(text) == "lockgate.yaml line 10: checks.metrics[1].min_absolute_change: must be a number"


def test_an_unknown_key_names_the_known_ones() -> None:
    message = _error(GOOD.replace("min_absolute_change: 0.001", "min_delta: 0.001"))
    assert message.startswith("lockgate.yaml line 10: checks.metrics[1].min_delta: is not a known key")
    assert "min_absolute_change" in message


def test_a_missing_key_points_at_its_parent() -> None:
    message = _error(GOOD.replace("  target: target\n", ""))
    assert message == "lockgate.yaml line 1: holdout.target: is required"


def test_every_problem_is_reported_in_line_order() -> None:
    text = GOOD.replace("threshold: 0.9", "threshold: high").replace("test: mcnemar", "test: t-test")
    lines = _error(text).splitlines()
    assert lines[0] == "lockgate.yaml line 8: checks.metrics[0].threshold: must be a number"
    assert lines[1].startswith(
        "lockgate.yaml line 13: checks.champion.test: must be 'mcnemar' or 'bootstrap'"
    )


def test_rules_between_keys() -> None:
    assert "test 'mcnemar' compares accuracy" in _error(
        GOOD.replace("metric: accuracy\n    test", "metric: f1\n    test")
    )
    assert "give at least one of threshold" in _error(
        GOOD.replace("threshold: 0.9", "greater_is_better: true")
    )
    assert "must be greater than 0" in _error(
        GOOD.replace("min_absolute_change: 0.001", "min_absolute_change: -1")
    )
    assert "give exactly one of column, query" in _error(GOOD.replace("- name: large", "- column: x"))
    message = _error(GOOD.replace("holdout:", "task: regression\nholdout:"))
    assert "line 8: checks.metrics[0].metric: metric 'accuracy' is for classification" in message


def test_unknown_kinds_duplicates_and_refs() -> None:
    assert "checks.fairness: is not a known check kind (known: budgets" in _error(GOOD + "  fairness: {}\n")
    twice = "seed: 1\nchecks: {signature: true}\n\n\nseed: 2\n"
    assert "line 5: seed: is given twice" in _error(twice)
    message = _error(GOOD.replace("breast-cancer-holdout@1", "breast-cancer-holdout@latest"))
    assert message.startswith("lockgate.yaml line 2: holdout.dataset: 'latest'")
    needs = _error("checks:\n  metrics:\n    - {metric: accuracy, threshold: 0.5}\n")
    assert needs == (
        "lockgate.yaml line 2: checks.metrics: needs a holdout; "
        "add `holdout: {dataset: NAME@VERSION, target: COLUMN}`"
    )


def test_bad_yaml_and_bad_shapes() -> None:
    assert _error("checks: [\n").startswith("lockgate.yaml line 2: not valid YAML")
    assert "must be a mapping" in _error("- 1\n- 2\n")
    assert "checks: must name at least one check kind" in _error("checks: {}\n")
    assert "line 1: checks: is required" in _error("seed: 1\n")
    assert "signature: must be a mapping of settings, not a list" in _error("checks:\n  signature: [1]\n")


def test_switching_a_kind_off() -> None:
    policy = parse_policy("checks:\n  signature: true\n  provenance: false\n")
    assert policy.kinds == ("signature",)


def test_load_policy_reads_a_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("checks:\n  signature: {strict: 1}\n")
    with pytest.raises(
        ValidationError, match=r"^gate.yaml line 2: checks.signature.strict: is not a known key"
    ):
        load_policy(path)
    with pytest.raises(NotFound, match="does not exist"):
        load_policy(tmp_path / "missing.yaml")
