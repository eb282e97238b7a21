"""A gate report in the forms CI systems read: JUnit XML, a pull-request Markdown comment, JSON."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from lockgate.gates.result import CheckResult, GateReport, Number

__all__ = [
    "MARKDOWN_MARKER",
    "error_junit_xml",
    "format_number",
    "format_numbers",
    "to_json",
    "to_junit_xml",
    "to_markdown",
]

MARKDOWN_MARKER = "<!-- lockgate-validate -->"
_ICONS = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}


def format_number(value: Number) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_numbers(numbers: Mapping[str, Number]) -> str:
    return ", ".join(f"{k}={format_number(v)}" for k, v in numbers.items())


def _title(report: GateReport) -> str:
    counts = report.to_dict()["counts"]
    total = len(report.results)
    if report.passed:
        return f"{report.model} passed {counts['passed']} of {total} checks ({counts['skipped']} skipped)"
    return f"{report.model} failed {counts['failed']} of {total} checks"


def error_junit_xml(model: str, error_type: str, message: str, hint: str | None) -> str:
    """A gate that could not run (bad input, exit 2) as one errored ``<testcase>``, so a CI page
    shows why instead of nothing."""
    attrs = {"tests": "1", "failures": "0", "errors": "1", "skipped": "0", "time": "0"}
    suites = ET.Element("testsuites", {"name": "lockgate validate", **attrs})
    suite = ET.SubElement(suites, "testsuite", {"name": f"lockgate validate {model}", **attrs})
    case = ET.SubElement(
        suite, "testcase", {"classname": "lockgate.gate", "name": "run the gate", "time": "0"}
    )
    error = ET.SubElement(case, "error", {"message": message, "type": error_type})
    error.text = message + (f"\nhint: {hint}" if hint else "")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def to_junit_xml(report: GateReport) -> str:
    """One ``<testcase>`` per check; a failed check's ``<failure>`` carries its message and numbers."""
    counts = report.to_dict()["counts"]
    attrs = {
        "tests": str(len(report.results)),
        "failures": str(counts["failed"]),
        "errors": "0",
        "skipped": str(counts["skipped"]),
        "time": f"{report.duration_s:.3f}",
    }
    suites = ET.Element("testsuites", {"name": "lockgate validate", **attrs})
    suite = ET.SubElement(suites, "testsuite", {"name": f"lockgate validate {report.model}", **attrs})
    if report.started_ms:
        started = dt.datetime.fromtimestamp(report.started_ms / 1000, tz=dt.UTC)
        suite.set("timestamp", started.strftime("%Y-%m-%dT%H:%M:%S"))
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("model", report.model),
        ("baseline", report.baseline or "none"),
        ("verdict", report.verdict),
        ("policy_sha256", report.policy_sha256),
        ("seed", str(report.seed)),
    ):
        ET.SubElement(properties, "property", {"name": key, "value": value})
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"lockgate.gate.{result.kind or 'check'}", "name": result.name, "time": "0"},
        )
        numbers = format_numbers(result.numbers)
        if result.is_skipped:
            ET.SubElement(case, "skipped", {"message": result.message})
        elif not result.passed:
            failure = ET.SubElement(case, "failure", {"message": result.message, "type": "GateFailure"})
            failure.text = f"{result.message}\n{numbers}"
        out = ET.SubElement(case, "system-out")
        out.text = f"{result.message}\n{numbers}"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(result: CheckResult) -> str:
    cells = (_ICONS[result.status], result.name, result.message, format_numbers(result.numbers))
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def to_markdown(report: GateReport) -> str:
    """A pull-request comment; the first line is a marker so CI edits one comment per pull request."""
    icon = "✅" if report.passed else "❌"
    lines = [
        MARKDOWN_MARKER,
        f"## {icon} lockgate validate: {_title(report)}",
        "",
        f"Against `{report.baseline or 'no baseline'}` · policy `{report.policy_sha256[:12]}` · "
        f"seed {report.seed} · {report.duration_s:.1f} s",
        "",
    ]
    failures = report.failures
    if failures:
        lines.append("**Failed:** " + "; ".join(f"`{r.name}`" for r in failures))
        lines.append("")
    lines += ["| | check | result | numbers |", "|---|---|---|---|"]
    lines += [_row(r) for r in report.results]
    return "\n".join(lines) + "\n"


def to_json(report: GateReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"
