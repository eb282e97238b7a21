"""The public API of lockgate.gates is a decision: changing it must change this test."""

from __future__ import annotations

import lockgate.gates

EXPECTED = [
    "CHECK_KINDS",
    "MARKDOWN_MARKER",
    "METRICS",
    "TAG_POLICY_SHA256",
    "TAG_VERDICT",
    "BootstrapResult",
    "Check",
    "CheckKind",
    "CheckResult",
    "DriftResult",
    "GateInputs",
    "GateReport",
    "McNemarResult",
    "Metric",
    "Policy",
    "Predictions",
    "TextModel",
    "get_metric",
    "ks_statistic",
    "load_policy",
    "load_text_evalset",
    "mcnemar_exact",
    "paired_bootstrap",
    "parse_model_uri",
    "parse_policy",
    "population_stability_index",
    "prediction_drift",
    "recall_at_k",
    "record_report",
    "register_check_kind",
    "retrieval_pairs",
    "run_check",
    "to_json",
    "to_junit_xml",
    "to_markdown",
    "validate",
]


def test_public_api_is_pinned() -> None:
    assert lockgate.gates.__all__ == EXPECTED


def test_every_public_name_exists() -> None:
    for name in EXPECTED:
        assert hasattr(lockgate.gates, name), name


def test_the_built_in_check_kinds() -> None:
    assert sorted(lockgate.gates.CHECK_KINDS) == [
        "budgets", "champion", "data", "drift", "embedding_retrieval", "generation", "metrics", "prompt",
        "provenance", "signature", "slices", "text_classification",
    ]  # fmt: skip
