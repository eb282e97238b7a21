"""The breast-cancer example's pipeline end to end, as the CI files run it, and the CI files themselves."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "breast_cancer"
CI_FILES = [
    ROOT / ".github/workflows/ml.yml",
    ROOT / ".gitlab-ci.yml",
    *sorted((ROOT / "examples/ci").glob("*.yml")),
]

Cli = Callable[..., tuple[int, str, str]]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_ci_files_run_the_example_pipeline(path: Path) -> None:
    text = path.read_text()
    yaml.safe_load(text)
    assert "lockgate pipeline run examples/breast_cancer/pipeline.yaml" in text
    assert "examples/breast_cancer/build/gate-junit.xml" in text
    assert (ROOT / "examples/breast_cancer/pipeline.yaml").is_file()


@pytest.mark.integration
@pytest.mark.slow
def test_the_example_pipeline_runs_end_to_end_then_reruns_only_what_changed(
    lockgate_home: Path, tmp_path: Path, cli: Cli
) -> None:
    repo = tmp_path / "project"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("build", "data", "__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the example")
    pipeline = str(repo / "pipeline.yaml")

    code, out, err = cli("pipeline", "run", pipeline)
    assert code == 0, out + err
    assert "pipeline done: 4 ran, 0 skipped" in out
    report = json.loads((repo / "build" / "gate.json").read_text())
    assert report["verdict"] == "pass" and report["model"] == "breast-cancer-classifier@1"
    assert {c["name"]: c["status"] for c in report["checks"]}["provenance"] == "passed"
    assert (repo / "build" / "gate-junit.xml").is_file() and (repo / "build" / "gate.md").is_file()

    code, out, _ = cli("pipeline", "run", pipeline)
    assert code == 0 and "pipeline done: 0 ran, 4 skipped" in out

    policy = repo / "lockgate.yaml"
    policy.write_text(policy.read_text().replace("threshold: 0.93", "threshold: 0.92"))
    _git(repo, "commit", "-q", "-am", "loosen the accuracy threshold")
    code, out, _ = cli("pipeline", "run", pipeline, "--dry-run")
    assert code == 0 and "input changed: lockgate.yaml" in out
    code, out, _ = cli("pipeline", "run", pipeline)
    assert code == 0 and "pipeline done: 1 ran, 3 skipped" in out
    assert "[4/4] validate: ✓ ran" in out
