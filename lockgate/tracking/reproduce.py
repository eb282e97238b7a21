"""What it takes to reproduce a run, and whether the data on disk still matches it.

A dataset link counts as checked only when the run hashed the bytes it used (``verified`` in the
link, written by ``lockgate.track`` and ``lockgate.data``); a link from before those checks existed
is reported ``unverified`` even when the files on disk match it, since nothing says the run read them.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from lockgate.tracking.connection import Connection
from lockgate.tracking.digest import FileEntry, manifest, manifest_digest
from lockgate.tracking.environment import capture_environment
from lockgate.tracking.runs import RunSummary, get_run, summarize

__all__ = ["DataCheck", "ReproducePlan", "check_data", "name_differences", "plan_reproduction"]


@dataclass(frozen=True)
class DataCheck:
    """One dataset a run used, and what is on disk now: ``ok``, ``changed``, ``missing``, or
    ``unverified`` (on disk as recorded, but the run recorded the link without hashing what it used).

    ``differences`` names the files that changed when the recorded manifest is known;
    ``changed_from`` is the version the run's files were meant to be when they were not.
    """

    name: str
    version: int | None
    path: str
    recorded_digest: str
    disk_digest: str | None
    is_verified: bool = True
    changed_from: int | None = None
    differences: str = ""
    disk_entries: tuple[FileEntry, ...] = ()

    @property
    def status(self) -> str:
        if self.disk_digest is None:
            return "missing"
        if self.disk_digest != self.recorded_digest:
            return "changed"
        return "ok" if self.is_verified else "unverified"

    @property
    def label(self) -> str:
        from lockgate.tracking.refs import dataset_label

        return dataset_label({"name": self.name, "version": self.version, "changed_from": self.changed_from})


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
        """The files on disk are what the run recorded (verified or not)."""
        return all(d.status in ("ok", "unverified") for d in self.data)

    @property
    def unverified(self) -> tuple[DataCheck, ...]:
        return tuple(d for d in self.data if d.status == "unverified")


def check_data(datasets: list[dict[str, object]], data_root: Path | None = None) -> tuple[DataCheck, ...]:
    """Digest each recorded dataset's files on disk (under ``data_root`` if given, else where the
    recorded path is relative to this project)."""
    from lockgate.tracking.datasets import data_root_in_force, locate, project_root

    project = project_root()
    data_root = data_root_in_force(data_root)
    checks = []
    for d in datasets:
        recorded = str(d.get("path") or "")
        path = locate(recorded, project, data_root)
        entries = tuple(manifest(path)) if recorded and path.exists() else ()
        version, changed_from = d.get("version"), d.get("changed_from")
        checks.append(
            DataCheck(
                name=str(d.get("name")),
                version=int(str(version)) if version is not None else None,
                path=str(path),
                recorded_digest=str(d.get("digest")),
                disk_digest=manifest_digest(list(entries)) if entries else None,
                is_verified=bool(d.get("verified")),
                changed_from=int(str(changed_from)) if changed_from is not None else None,
                disk_entries=entries,
            )
        )
    return tuple(checks)


def name_differences(conn: Connection, checks: tuple[DataCheck, ...]) -> tuple[DataCheck, ...]:
    """For each changed registered version, which files differ from its manifest."""
    from dataclasses import replace

    from lockgate.errors import NotFound
    from lockgate.tracking.datasets import get_version, load_manifest
    from lockgate.tracking.reading import describe_differences

    named = []
    for check in checks:
        if check.status == "changed" and check.version is not None:
            try:
                version = get_version(conn, f"{check.name}@{check.version}")
            except NotFound:
                version = None
            if version is not None and version.digest == check.recorded_digest:
                recorded = load_manifest(conn, version)
                check = replace(check, differences=describe_differences(recorded, check.disk_entries))
        named.append(check)
    return tuple(named)


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
        data=name_differences(conn, check_data(run.datasets, data_root)),
    )
