"""What it takes to reproduce a run, and whether the data on disk still matches it."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from lockgate.tracking.connection import Connection
from lockgate.tracking.digest import manifest, manifest_digest
from lockgate.tracking.environment import capture_environment
from lockgate.tracking.runs import RunSummary, get_run, summarize

__all__ = ["DataCheck", "ReproducePlan", "check_data", "plan_reproduction"]


@dataclass(frozen=True)
class DataCheck:
    """One dataset a run used, and what is on disk now: ``ok``, ``changed`` or ``missing``."""

    name: str
    version: int | None
    path: str
    recorded_digest: str
    disk_digest: str | None

    @property
    def status(self) -> str:
        if self.disk_digest is None:
            return "missing"
        return "ok" if self.disk_digest == self.recorded_digest else "changed"


@dataclass(frozen=True)
class ReproducePlan:
    """The exact code, environment and data of a run, checked against this machine."""

    run: RunSummary
    commit: str | None
    branch: str | None
    is_dirty: bool
    python_recorded: str | None
    python_now: str
    packages_recorded: str | None
    packages_now: str
    data: tuple[DataCheck, ...]

    @property
    def commands(self) -> list[str]:
        cmds = []
        if self.commit:
            cmds.append(f"git checkout {self.commit}")
            if self.is_dirty:
                cmds.append(
                    f"mlflow artifacts download -r {self.run.run_id} -a environment/git.diff -d . "
                    "&& git apply environment/git.diff   # the run had uncommitted changes"
                )
        cmds.append(
            f"mlflow artifacts download -r {self.run.run_id} -a environment/requirements.txt -d . "
            "&& pip install -r environment/requirements.txt"
        )
        return cmds

    @property
    def is_data_ok(self) -> bool:
        return all(d.status == "ok" for d in self.data)


def check_data(datasets: list[dict[str, object]], data_root: Path | None = None) -> tuple[DataCheck, ...]:
    """Digest each recorded dataset's files on disk (under ``data_root`` if given, else where the
    recorded path is relative to this project)."""
    from lockgate.tracking.datasets import locate, project_root

    project = project_root()
    checks = []
    for d in datasets:
        recorded = str(d.get("path") or "")
        path = locate(recorded, project, data_root)
        disk = manifest_digest(manifest(path)) if recorded and path.exists() else None
        version = d.get("version")
        checks.append(
            DataCheck(
                name=str(d.get("name")),
                version=int(str(version)) if version is not None else None,
                path=str(path),
                recorded_digest=str(d.get("digest")),
                disk_digest=disk,
            )
        )
    return tuple(checks)


def plan_reproduction(conn: Connection, run_ref: str, data_root: Path | None = None) -> ReproducePlan:
    run = summarize(get_run(conn, run_ref))
    tags = run.tags
    commit = tags.get("lockgate.git.commit")
    branch = tags.get("lockgate.git.branch")
    return ReproducePlan(
        run=run,
        commit=None if commit in (None, "none") else commit,
        branch=None if branch in (None, "none") else branch,
        is_dirty=tags.get("lockgate.git.dirty") == "true",
        python_recorded=tags.get("lockgate.python"),
        python_now=platform.python_version(),
        packages_recorded=tags.get("lockgate.packages_sha256"),
        packages_now=capture_environment().packages_sha256,
        data=check_data(run.datasets, data_root),
    )
