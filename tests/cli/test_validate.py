"""``lockgate validate`` as CI runs it: a gate that cannot run still leaves a JUnit file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., tuple[int, str, str]]


def test_a_gate_that_cannot_run_writes_a_junit_error(cli: Cli, lockgate_home: Path, tmp_path: Path) -> None:
    """Exit 2 wrote no JUnit file, so the CI page showed nothing (issue 20)."""
    junit = tmp_path / "reports" / "gate.xml"
    code, _, err = cli(
        "validate", "churn@2", "--policy", str(tmp_path / "missing.yaml"), "--junit", str(junit)
    )
    assert code == 2 and "missing.yaml" in err
    suites = ET.parse(junit).getroot()
    assert suites.get("errors") == "1" and suites.get("tests") == "1"
    [error] = suites.iter("error")
    assert "missing.yaml" in (error.get("message") or "")
    assert error.text is not None and "hint:" in error.text
