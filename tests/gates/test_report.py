from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from lockgate.gates.report import MARKDOWN_MARKER, to_json, to_junit_xml, to_markdown
from lockgate.gates.result import CheckResult, GateReport

REPORT = GateReport(
    model="clf@2",
    baseline="clf@1",
    policy_sha256="ab" * 32,
    results=(
        CheckResult(
            "metric accuracy", True, {"candidate": 0.98, "threshold": 0.9}, "accuracy 0.98", "metrics"
        ),
        CheckResult(
            "champion accuracy (mcnemar)",
            False,
            {"difference": -0.05, "ci_low": -0.08, "baseline_only": 30},
            "worse than the champion | by more than 0.02",
            "champion",
        ),
        CheckResult("prediction drift", True, {}, "no baseline", "drift", is_skipped=True),
    ),
    started_ms=1_700_000_000_000,
    duration_s=1.5,
    seed=42,
)


def test_junit_has_one_testcase_per_check_with_numbers_on_failures() -> None:
    root = ET.fromstring(to_junit_xml(REPORT))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = list(suite.iter("testcase"))
    assert [c.get("name") for c in cases] == [r.name for r in REPORT.results]
    assert cases[1].get("classname") == "lockgate.gate.champion"
    failure = cases[1].find("failure")
    assert failure is not None and "baseline_only=30" in (failure.text or "")
    assert failure.get("message") == "worse than the champion | by more than 0.02"
    assert cases[2].find("skipped") is not None and cases[0].find("failure") is None
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["verdict"] == "fail" and props["baseline"] == "clf@1"


def test_markdown_starts_with_the_marker_and_escapes_pipes() -> None:
    text = to_markdown(REPORT)
    lines = text.splitlines()
    assert lines[0] == MARKDOWN_MARKER
    assert lines[1] == "## ❌ lockgate validate: clf@2 failed 1 of 3 checks"
    assert "**Failed:** `champion accuracy (mcnemar)`" in text
    row = next(line for line in lines if line.startswith("| ❌"))
    assert "champion \\| by more" in row and row.count(" | ") == 3
    passing = GateReport("clf@2", None, "cd" * 32, REPORT.results[:1])
    assert "## ✅ lockgate validate: clf@2 passed 1 of 1 checks (0 skipped)" in to_markdown(passing)


def test_json_report() -> None:
    doc = json.loads(to_json(REPORT))
    assert doc["verdict"] == "fail" and doc["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert doc["checks"][1]["status"] == "failed" and doc["checks"][1]["numbers"]["ci_low"] == -0.08
    nan = GateReport("m@1", None, "0" * 64, (CheckResult("x", True, {"v": float("nan")}),))
    assert json.loads(to_json(nan))["checks"][0]["numbers"]["v"] is None
