"""The gate end to end on a real MLflow store: the CLI's exit codes, outputs and what it records."""

from __future__ import annotations

import importlib
import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.errors import IntegrityError, ValidationError
from lockgate.gates.gate import TAG_KINDS, TAG_POLICY_SHA256, TAG_VERDICT, validate
from lockgate.gates.kinds import CHECK_KINDS
from lockgate.gates.policy import parse_policy
from lockgate.gates.report import MARKDOWN_MARKER
from lockgate.tracking.connection import connect
from lockgate.tracking.registry import get_model_version

from .conftest import GateWorld

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str]]


def _write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lockgate.yaml"
    path.write_text(text)
    return path


def test_an_equal_model_passes_and_the_verdict_is_recorded(
    gate_home: GateWorld, run_cli: Cli, tmp_path: Path
) -> None:
    policy = _write_policy(tmp_path, gate_home.policy())
    junit, markdown = tmp_path / "out" / "gate.xml", tmp_path / "out" / "gate.md"
    code, out = run_cli(
        "validate",
        gate_home.equal,
        "--policy",
        str(policy),
        "--junit",
        str(junit),
        "--markdown",
        str(markdown),
    )
    assert code == 0, out
    assert "PASS" in out and "0 failed" in out

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    names = [case.get("name") for case in suite.iter("testcase")]
    assert "champion accuracy (mcnemar)" in names and "provenance" in names and "data skew" in names
    assert markdown.read_text().splitlines()[0] == MARKDOWN_MARKER

    conn = connect()
    version = get_model_version(conn, gate_home.equal)
    assert version.tags[TAG_VERDICT] == "pass"
    assert version.tags[TAG_POLICY_SHA256] == parse_policy(policy.read_text()).sha256
    # the kinds that ran, for the checklist's rubric (every kind of the policy ran here)
    ran = set(version.tags[TAG_KINDS].split(","))
    assert {"champion", "provenance"} <= ran, ran
    artifacts = [a.path for a in conn.client.list_artifacts(version.run_id, "gates")]
    assert len(artifacts) == 1 and artifacts[0].endswith(".json")


def test_a_worse_model_fails_with_exit_1_naming_the_checks(
    gate_home: GateWorld, run_cli: Cli, tmp_path: Path
) -> None:
    policy = _write_policy(tmp_path, gate_home.policy())
    junit = tmp_path / "gate.xml"
    code, out = run_cli("validate", gate_home.worse, "--policy", str(policy), "--junit", str(junit))
    assert code == 1, out
    assert "FAIL" in out and "champion accuracy (mcnemar)" in out.split("failed:")[-1]
    failures = {
        case.get("name"): case.find("failure")
        for case in ET.parse(junit).getroot().iter("testcase")
        if case.find("failure") is not None
    }
    assert {"metric accuracy", "champion accuracy (mcnemar)", "champion roc_auc (bootstrap)"} <= set(failures)
    mcnemar = failures["champion accuracy (mcnemar)"]
    assert mcnemar is not None and "baseline_only=" in (mcnemar.text or "")
    assert get_model_version(connect(), gate_home.worse).tags[TAG_VERDICT] == "fail"


def test_a_changed_signature_fails(gate_home: GateWorld, run_cli: Cli, tmp_path: Path) -> None:
    policy = _write_policy(tmp_path, gate_home.policy())
    json_path = tmp_path / "report.json"
    code, out = run_cli(
        "validate", gate_home.renamed, "--policy", str(policy), "--no-record", "--json", str(json_path)
    )
    assert code == 1, out
    assert "signature" in out.split("failed:")[-1]
    checks = {c["name"]: c for c in json.loads(json_path.read_text())["checks"]}
    assert "requires new column(s) radius_mean" in checks["signature"]["message"]
    assert "could not be scored on the holdout" in checks["metric accuracy"]["message"]
    assert checks["provenance"]["status"] == "passed"


def test_the_same_seed_gives_the_same_verdict_and_numbers(gate_home: GateWorld) -> None:
    policy = parse_policy(gate_home.policy(**{"seed: 42 ": "seed: 7 "}))
    conn = connect()
    first = validate(conn, gate_home.worse, policy)
    second = validate(conn, gate_home.worse, policy)

    def stable(report_checks: list[dict[str, object]]) -> list[dict[str, object]]:
        return [c for c in report_checks if c["kind"] != "budgets"]

    assert first.verdict == second.verdict == "fail"
    assert stable(first.to_dict()["checks"]) == stable(second.to_dict()["checks"])
    boot = next(r for r in first.results if r.name == "champion roc_auc (bootstrap)")
    assert boot.numbers["seed"] == 7


def test_without_a_champion_the_comparisons_are_skipped(
    gate_home: GateWorld, run_cli: Cli, tmp_path: Path
) -> None:
    policy = _write_policy(tmp_path, gate_home.policy(**{"against: champion": "against: first-release"}))
    json_path = tmp_path / "report.json"
    code, out = run_cli(
        "validate", gate_home.champion, "--policy", str(policy), "--json", str(json_path), "--no-record"
    )
    assert code == 0, out
    report = json.loads(json_path.read_text())
    skipped = {c["name"] for c in report["checks"] if c["status"] == "skipped"}
    assert {"champion accuracy (mcnemar)", "prediction drift", "signature"} <= skipped
    assert report["baseline"].endswith("@first-release is not set")


def test_a_bad_policy_exits_2_naming_the_key_and_line(
    gate_home: GateWorld, run_cli: Cli, tmp_path: Path
) -> None:
    policy = _write_policy(tmp_path, gate_home.policy(**{"margin: 0.02": "margin: two-percent"}))
    code, out = run_cli("validate", gate_home.equal, "--policy", str(policy))
    assert code == 2
    assert "lockgate.yaml line 22: checks.champion[0].margin: must be a number" in out


def test_a_tampered_artifact_is_refused(gate_home: GateWorld, run_cli: Cli, tmp_path: Path) -> None:
    conn = connect()
    version = get_model_version(conn, gate_home.renamed)
    policy = parse_policy(gate_home.policy())
    conn.client.set_model_version_tag(
        version.name, str(version.version), "lockgate.artifact_sha256", "0" * 64
    )
    try:
        with pytest.raises(IntegrityError, match="does not match its checksum"):
            validate(conn, gate_home.renamed, policy)
        code, out = run_cli(
            "validate", gate_home.renamed, "--policy", str(_write_policy(tmp_path, gate_home.policy()))
        )
        assert code == 2 and "does not match its checksum" in out
    finally:
        conn.client.set_model_version_tag(
            version.name, str(version.version), "lockgate.artifact_sha256", str(version.artifact_sha256)
        )


def test_unknown_models_and_datasets_exit_2(gate_home: GateWorld, run_cli: Cli, tmp_path: Path) -> None:
    policy = _write_policy(tmp_path, gate_home.policy())
    code, out = run_cli("validate", f"{gate_home.name}@99", "--policy", str(policy))
    assert code == 2 and "has no version 99" in out
    policy = _write_policy(tmp_path, gate_home.policy(**{gate_home.holdout_ref: gate_home.holdout_ref + "9"}))
    code, out = run_cli("validate", gate_home.equal, "--policy", str(policy))
    assert code == 2 and "has no version" in out


def test_the_gates_own_report_does_not_make_the_next_run_dirty(
    mlflow_home: Path, run_cli: Cli, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train → validate --junit gate.xml in the project → train again: still a clean tree (issue 20)."""
    import subprocess

    from .conftest import load_example

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    repo = tmp_path / "project"
    repo.mkdir()
    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "init")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("LOCKGATE_ARTIFACT_ROOT", (mlflow_home / "artifacts").as_uri())
    example = load_example()
    train_ref, _ = example.snapshot_data(tmp_path / "data", prefix=f"{unique}-")
    train_csv = tmp_path / "data" / "train.csv"
    policy = _write_policy(tmp_path, "version: 1\nagainst: none\nchecks:\n  provenance: {}\n")

    first = example.train_and_register(train_ref, train_csv, name=f"clean-{unique}")
    code, out = run_cli("validate", first, "--policy", str(policy), "--junit", "gate.xml")
    assert code == 0, out
    assert (repo / "gate.xml").is_file()

    second = example.train_and_register(train_ref, train_csv, name=f"clean-{unique}")
    run = connect().client.get_run(get_model_version(connect(), second).run_id)
    assert run.data.tags["lockgate.git.dirty"] == "false"
    code, out = run_cli("validate", second, "--policy", str(policy), "--junit", "gate.xml")
    assert code == 0, out  # provenance: commit, clean tree, dataset digest
    provenance = next(c for c in ET.parse(repo / "gate.xml").getroot().iter("testcase"))
    assert provenance.get("name") == "provenance" and provenance.find("failure") is None

    (repo / "gate.xml").write_text("<testsuites/>\n")  # an edited report is a change again
    run_id = example.train_run(train_ref, train_csv)
    assert connect().client.get_run(run_id).data.tags["lockgate.git.dirty"] == "true"


_PLUGIN_KIND = '''
"""A check kind in one module: its settings, its decision and its runner, registered on import."""

from collections.abc import Sequence

from pydantic import Field

from lockgate.gates.kinds import CheckKind, GateInputs, Spec, register_check_kind
from lockgate.gates.result import CheckResult, check_failed, check_passed


class CommitSpec(Spec):
    min_length: int = Field(default=7, ge=1)


def commit_recorded(commit: str, *, min_length: int) -> CheckResult:
    if len(commit) < min_length:
        return check_failed("commit recorded", f"commit {commit!r} is shorter than {min_length}")
    return check_passed("commit recorded", f"commit {commit[:12]}", length=len(commit))


def run(spec: CommitSpec, inputs: GateInputs) -> Sequence[CheckResult]:
    commit = inputs.run_tags.get("lockgate.git.commit", "")
    return [commit_recorded(commit, min_length=spec.min_length)]


KIND = register_check_kind(CheckKind("commit_recorded", CommitSpec, frozenset({"run_tags"}), run))
'''


def test_a_kind_written_as_one_module_runs_through_the_gate(
    gate_home: GateWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "commit_kind.py").write_text(_PLUGIN_KIND)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("commit_kind")
        policy = parse_policy("checks:\n  commit_recorded: {min_length: 40}\n")
        report = validate(connect(), gate_home.equal, policy)
        (result,) = report.results
        assert result.kind == "commit_recorded" and result.passed, result
        assert result.numbers["length"] == 40
        failing = validate(
            connect(), gate_home.equal, parse_policy("checks:\n  commit_recorded: {min_length: 41}\n")
        )
        assert failing.verdict == "fail"
        with pytest.raises(ValidationError, match=r"line 2: checks\.commit_recorded\.min_length"):
            parse_policy("checks:\n  commit_recorded: {min_length: 0}\n")
    finally:
        CHECK_KINDS.pop("commit_recorded", None)
        sys.modules.pop("commit_kind", None)
