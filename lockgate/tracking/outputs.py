"""Files lockgate itself wrote into a working tree (reports, plots), so they do not make it dirty.

``lockgate validate --junit gate.xml`` writes a report into the project; the next tracked run would
count it as an uncommitted change and the gate's provenance check would fail on it. Every command
that writes such a file calls :func:`record_output`, which remembers the file's SHA-256 in a small
manifest, ``lockgate-outputs.json`` in the repository's git folder (``git rev-parse --git-path``):
it belongs to that working tree, git never lists it as a change, and no ``.lockgate/`` folder has
to exist or be ignored for it. :func:`~lockgate.tracking.environment.capture_code` leaves a changed
file out only while its bytes are still the ones lockgate wrote: an edited report counts again.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from lockgate.tracking.digest import sha256_file

__all__ = [
    "MANIFEST_NAME",
    "parse_manifest",
    "read_manifest",
    "record_output",
    "render_manifest",
    "unchanged_outputs",
    "with_output",
]

MANIFEST_NAME = "lockgate-outputs.json"
_VERSION = 1
_GIT_TIMEOUT_S = 10.0


# -- the decisions (pure) -------------------------------------------------------------------------
def unchanged_outputs(current: Mapping[str, str | None], recorded: Mapping[str, str]) -> frozenset[str]:
    """The changed paths that are lockgate's own outputs, as lockgate wrote them.

    ``current`` maps each changed path (relative to the repository root) to the SHA-256 of its bytes
    now, or ``None`` when it is gone; ``recorded`` is the manifest. A path counts as lockgate's only
    while both digests are equal: a deleted or edited report is a change like any other.
    """
    return frozenset(
        path for path, digest in current.items() if digest is not None and recorded.get(path) == digest
    )


def with_output(
    recorded: Mapping[str, str], path: str, digest: str, *, exists: Mapping[str, bool] | None = None
) -> dict[str, str]:
    """The manifest with ``path`` at ``digest``; entries whose files are gone (``exists`` says False)
    are dropped, so the manifest does not grow with every report ever written."""
    kept = {p: d for p, d in recorded.items() if exists is None or exists.get(p, True)}
    kept[path] = digest
    return dict(sorted(kept.items()))


def parse_manifest(text: str) -> dict[str, str]:
    """The ``path -> sha256`` entries of a manifest; anything unreadable is an empty manifest (the
    files then count as changes, which is the safe side)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return {}
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, dict):
        return {}
    return {str(k): str(v) for k, v in outputs.items() if isinstance(v, str)}


def render_manifest(recorded: Mapping[str, str]) -> str:
    return json.dumps({"version": _VERSION, "outputs": dict(recorded)}, indent=2, sort_keys=True) + "\n"


# -- the shell ------------------------------------------------------------------------------------
def read_manifest(path: Path) -> dict[str, str]:
    """The manifest at ``path``; empty when there is none."""
    try:
        return parse_manifest(path.read_text(encoding="utf-8"))
    except OSError:
        return {}


def _repository(folder: Path) -> tuple[Path, Path] | None:
    """(root of the working tree, manifest path) for ``folder``, or None outside a git repository."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "--git-path", MANIFEST_NAME],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 2:
        return None
    # --git-path answers relative to the folder git ran in (absolute for a linked worktree)
    return Path(lines[0]), folder / lines[1]


def record_output(path: Path) -> None:
    """Remember that lockgate wrote ``path`` with the bytes it has now.

    Call it after writing a report or a figure into the user's folder. Outside a git repository there
    is nothing to keep clean and nothing is recorded; a manifest that cannot be written (a read-only
    checkout) leaves the file counted as a change, as before, and does not fail the command.
    """
    path = path.resolve()
    if not path.is_file():
        return
    found = _repository(path.parent)
    if found is None:
        return
    root, manifest = found
    try:
        relative = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return
    recorded = read_manifest(manifest)
    exists = {p: (root / p).is_file() for p in recorded}
    updated = with_output(recorded, relative, sha256_file(path), exists=exists)
    with contextlib.suppress(OSError):
        manifest.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a concurrent reader sees the old manifest or the new, never half
        fd, tmp = tempfile.mkstemp(prefix=".lockgate-outputs-", dir=manifest.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(render_manifest(updated))
            os.replace(tmp, manifest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
