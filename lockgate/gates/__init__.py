"""The validation gate: stop a worse, slower, bigger or incompatible model before it ships."""

from __future__ import annotations

from lockgate.gates.comparison import BootstrapResult, McNemarResult, mcnemar_exact, paired_bootstrap
from lockgate.gates.drift import DriftResult, ks_statistic, population_stability_index, prediction_drift
from lockgate.gates.gate import TAG_POLICY_SHA256, TAG_VERDICT, parse_model_uri, record_report, validate
from lockgate.gates.kinds import (
    CHECK_KINDS,
    Check,
    CheckKind,
    GateInputs,
    Predictions,
    TextModel,
    register_check_kind,
    run_check,
)
from lockgate.gates.metrics import METRICS, Metric, get_metric
from lockgate.gates.policy import Policy, load_policy, parse_policy
from lockgate.gates.report import MARKDOWN_MARKER, to_json, to_junit_xml, to_markdown
from lockgate.gates.result import CheckResult, GateReport
from lockgate.gates.text import load_text_evalset, recall_at_k, retrieval_pairs

__all__ = [
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
