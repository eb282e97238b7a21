"""What made a run: the code (git), the interpreter, the installed packages and the host.

Collected once when a tracked run starts and stored as run tags plus a requirements artifact, so
``lockgate runs diff`` and ``lockgate reproduce`` can say exactly what differed.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from lockgate.tracking.digest import sha256_file
from lockgate.tracking.outputs import MANIFEST_NAME, read_manifest, unchanged_outputs

__all__ = ["CodeState", "Environment", "capture_code", "capture_environment", "packages_digest"]

_GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CodeState:
    """The git state of the working tree a run started from (all ``None`` outside a repository)."""

    commit: str | None
    branch: str | None
    is_dirty: bool
    diff_sha256: str | None
    diff: str
    repo_root: str | None

    def tags(self) -> dict[str, str]:
        tags = {
            "lockgate.git.commit": self.commit or "none",
            "lockgate.git.branch": self.branch or "none",
            "lockgate.git.dirty": str(self.is_dirty).lower(),
            "lockgate.git.diff_sha256": self.diff_sha256 or "none",
        }
        if self.commit:
            tags["mlflow.source.git.commit"] = self.commit
        if self.branch:
            tags["mlflow.source.git.branch"] = self.branch
        return tags


@dataclass(frozen=True)
class Environment:
    """Interpreter, packages (``name==version`` lines, sorted) and host."""

    python: str
    packages: tuple[str, ...]
    host: str
    platform: str

    @property
    def packages_sha256(self) -> str:
        return packages_digest(self.packages)

    def tags(self) -> dict[str, str]:
        return {
            "lockgate.python": self.python,
            "lockgate.packages_sha256": self.packages_sha256,
            "lockgate.host": self.host,
            "lockgate.platform": self.platform,
        }

    def requirements_text(self) -> str:
        return "\n".join(self.packages) + "\n"


def packages_digest(packages: tuple[str, ...] | list[str]) -> str:
    """SHA-256 over sorted ``name==version`` lines: equal package sets give equal digests."""
    return hashlib.sha256("\n".join(sorted(packages)).encode()).hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def capture_code(cwd: Path | None = None) -> CodeState:
    """The git commit, branch, dirty flag and a digest of uncommitted changes under ``cwd``.

    Reports and figures lockgate itself wrote (:mod:`lockgate.tracking.outputs`) are not changes
    while their bytes are still the ones it wrote.
    """
    cwd = cwd or Path.cwd()
    located = (_git(["rev-parse", "--show-toplevel", "--git-path", MANIFEST_NAME], cwd) or "").splitlines()
    commit = _git(["rev-parse", "HEAD"], cwd)
    if len(located) != 2 or commit is None:
        return CodeState(None, None, False, None, "", located[0] if located else None)
    root, manifest = Path(located[0]), cwd / located[1]
    branch = (_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd) or "").strip() or None
    untracked = _names(_git(["ls-files", "--others", "--exclude-standard", "--full-name", "-z"], cwd))
    recorded = read_manifest(manifest)
    skipped: frozenset[str] = frozenset()
    if recorded:
        changed = [*_names(_git(["diff", "HEAD", "--name-only", "-z"], cwd)), *untracked]
        current = {name: _digest(root / name) for name in changed if name in recorded}
        skipped = unchanged_outputs(current, recorded)
    # whole tree (":/"), less lockgate's own outputs; no pathspec at all when there are none
    excluded = [f":(top,exclude,literal){name}" for name in sorted(skipped)]
    pathspecs = ["--", ":/", *excluded] if excluded else []
    diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff", *pathspecs], cwd) or ""
    listed = "".join(f"{name}\n" for name in untracked if name not in skipped)
    is_dirty = bool(diff.strip() or listed)
    diff_sha256 = hashlib.sha256((diff + listed).encode()).hexdigest() if is_dirty else None
    return CodeState(commit.strip(), branch, is_dirty, diff_sha256, diff, str(root))


def _names(output: str | None) -> list[str]:
    """Paths from a ``git ... -z`` listing (NUL-separated, unquoted)."""
    return [name for name in (output or "").split("\0") if name]


def _digest(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def capture_environment() -> Environment:
    """The running interpreter, every installed distribution and the host name."""
    packages = sorted(
        {
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in metadata.distributions()
            if dist.metadata["Name"]
        },
        key=str.lower,
    )
    return Environment(
        python=platform.python_version(),
        packages=tuple(packages),
        host=platform.node(),
        platform=f"{sys.platform}-{platform.machine()}",
    )
