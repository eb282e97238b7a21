from __future__ import annotations

import subprocess
from pathlib import Path

from lockgate.tracking.digest import sha256_file
from lockgate.tracking.environment import capture_code, capture_environment, packages_digest
from lockgate.tracking.outputs import MANIFEST_NAME, read_manifest, record_output


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "trunk")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "train.py").write_text("print(1)\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    return tmp_path


def test_clean_repository(tmp_path: Path) -> None:
    code = capture_code(_repo(tmp_path))
    assert code.commit is not None and len(code.commit) == 40
    assert code.branch == "trunk"
    assert not code.is_dirty
    assert code.diff_sha256 is None
    assert code.tags()["mlflow.source.git.commit"] == code.commit


def test_dirty_repository_digests_the_diff(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "train.py").write_text("print(2)\n")
    first = capture_code(repo)
    assert first.is_dirty
    assert first.diff_sha256 is not None
    assert "print(2)" in first.diff
    (repo / "train.py").write_text("print(3)\n")
    assert capture_code(repo).diff_sha256 != first.diff_sha256


def test_untracked_file_makes_it_dirty(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "new.py").write_text("x = 1\n")
    assert capture_code(repo).is_dirty


def test_outside_a_repository(tmp_path: Path) -> None:
    code = capture_code(tmp_path)
    assert code.commit is None
    assert code.tags()["lockgate.git.commit"] == "none"


def test_environment_lists_packages() -> None:
    env = capture_environment()
    names = {line.split("==")[0].lower() for line in env.packages}
    assert {"mlflow", "numpy", "lockgate"} <= names
    assert env.packages_sha256 == packages_digest(list(reversed(env.packages)))
    assert env.requirements_text().count("\n") == len(env.packages)


def test_a_report_lockgate_wrote_is_not_a_change_until_someone_edits_it(tmp_path: Path) -> None:
    """`lockgate validate --junit gate.xml` made the next run dirty (issue 20)."""
    repo = _repo(tmp_path)
    report = repo / "reports" / "gate.xml"
    report.parent.mkdir()
    report.write_text("<testsuites/>\n")
    assert capture_code(repo).is_dirty  # written by someone else: a change like any other
    record_output(report)
    code = capture_code(repo / "reports")  # from a subfolder too
    assert not code.is_dirty and code.diff_sha256 is None
    report.write_text("<testsuites tests='9'/>\n")
    assert capture_code(repo).is_dirty


def test_a_tracked_file_lockgate_rewrote_leaves_the_diff(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "gate.xml").write_text("<old/>\n")
    _git(repo, "add", "gate.xml")
    _git(repo, "commit", "-qm", "report")
    (repo / "gate.xml").write_text("<new/>\n")
    (repo / "train.py").write_text("print(2)\n")
    record_output(repo / "gate.xml")
    code = capture_code(repo)
    assert code.is_dirty  # train.py still counts
    assert "print(2)" in code.diff and "gate.xml" not in code.diff
    (repo / "train.py").write_text("print(1)\n")
    assert not capture_code(repo).is_dirty


def test_the_manifest_lives_in_the_git_folder(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "plot.png").write_bytes(b"\x89PNG")
    record_output(repo / "plot.png")
    assert read_manifest(repo / ".git" / MANIFEST_NAME) == {"plot.png": sha256_file(repo / "plot.png")}
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("x")
    record_output(outside)  # outside any repository: nothing to keep clean, no error
    assert not capture_code(repo).is_dirty
