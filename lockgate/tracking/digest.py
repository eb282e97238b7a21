"""Content digests for files and folders: the same bytes give the same digest on any machine.

A folder's digest covers each file's path relative to the folder (POSIX form, sorted) and its SHA-256,
so renaming, adding, removing or changing any file changes it; timestamps and permissions do not.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lockgate.errors import NotFound

__all__ = [
    "MODEL_DIGEST_EXCLUDES",
    "FileEntry",
    "HashCache",
    "links_out_of",
    "manifest",
    "manifest_digest",
    "model_sha256",
    "sha256_file",
    "sha256_tree",
]

# Files MLflow itself writes into a model folder when a version is registered or downloaded: they
# name the registry entry, not the model, so a model's checksum leaves them out.
MODEL_DIGEST_EXCLUDES = ("registered_model_meta",)

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot: its path relative to the root, its size and its SHA-256."""

    path: str
    size_bytes: int
    sha256: str


def sha256_file(path: Path) -> str:
    """SHA-256 of one file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _signature(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@dataclass
class HashCache:
    """SHA-256 of files, remembered while a file keeps its size, inode and modification and change
    times, so a dataset checked at the start of a run is not read twice when the script reads it.

    Like git's index, a file changed less than ``racy_window_ns`` before it was hashed is not
    remembered: a later change within the file system's timestamp granularity could otherwise keep
    its times, and the stale digest would be believed.
    """

    racy_window_ns: int = 2_000_000_000
    _known: dict[Path, tuple[tuple[int, ...], str]] = field(default_factory=dict)

    def sha256(self, path: Path) -> str:
        before = _signature(path.stat())
        known = self._known.get(path)
        if known is not None and known[0] == before:
            return known[1]
        hashed_at_ns = time.time_ns()
        digest = sha256_file(path)
        after = _signature(path.stat())
        changed_ns = max(after[3], after[4])
        if after == before and changed_ns < hashed_at_ns - self.racy_window_ns:
            self._known[path] = (after, digest)
        return digest


def manifest(root: Path, sha256: Callable[[Path], str] = sha256_file) -> list[FileEntry]:
    """Every regular file under ``root`` (or ``root`` itself if it is a file), sorted by path, each
    hashed with ``sha256`` (a :class:`HashCache`'s to skip files already hashed unchanged).

    Symbolic links are not followed, so a link cannot pull files from outside the root into a digest.
    """
    if not root.exists():
        raise NotFound(f"path '{root}' does not exist", hint="check the path and try again")
    if root.is_file():
        return [FileEntry(root.name, root.stat().st_size, sha256(root))]
    entries = [
        FileEntry(p.relative_to(root).as_posix(), p.stat().st_size, sha256(p))
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    ]
    return sorted(entries, key=lambda entry: entry.path)


def links_out_of(root: Path) -> list[str]:
    """The symbolic links under folder ``root`` that lead outside it (relative POSIX paths, sorted).

    A digest does not follow links, so whatever reads the folder afterwards (a model loader, a
    copy into the artifact store) must not either: each such link is a way out of the root.
    """
    if not root.is_dir():
        return []
    base = root.resolve()
    found = []
    for entry in root.rglob("*"):
        if entry.is_symlink():
            target = entry.resolve()
            if target != base and base not in target.parents:
                found.append(entry.relative_to(root).as_posix())
    return sorted(found)


def manifest_digest(entries: list[FileEntry]) -> str:
    """The digest of a manifest: paths and file digests in order, one line each."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def sha256_tree(root: Path) -> str:
    """Digest of a file or a folder (see the module docstring)."""
    return manifest_digest(manifest(root))


def model_sha256(model_dir: Path) -> str:
    """Digest of an MLflow model folder, without the registry's own bookkeeping files.

    The registry records this at registration and the server checks it before loading, so the two
    sides must call this one function.
    """
    entries = [e for e in manifest(model_dir) if e.path not in MODEL_DIGEST_EXCLUDES]
    return manifest_digest(entries)
