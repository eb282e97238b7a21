from __future__ import annotations

import subprocess
from pathlib import Path

from lockgate.tracking.environment import capture_code, capture_environment, packages_digest


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
