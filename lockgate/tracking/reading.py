"""Reading a dataset version with its bytes checked, so that a run's link to its data is a fact.

``lockgate.data.path("tumours@1")`` finds the version's files on this machine (where the snapshot
recorded them, relative to the project; under ``--data-root`` / ``LOCKGATE_DATA_ROOT``; a copied
snapshot that is not here is pulled first), hashes them and returns their path only when every file's
SHA-256 is the one in the version's manifest. ``lockgate.data.load`` checks the same way and reads a
CSV or Parquet file into a DataFrame from the very bytes it hashed. Inside ``lockgate.track`` each read
records the dataset on the run with the digest of what was checked (``verified: "read"``).

``track(datasets=[...])`` checks the named versions before its run starts (``verified: "hashed"``):
files that differ stop it with an :class:`IntegrityError` naming them or, with
``on_changed="record"``, are recorded as an unregistered digest (``changed_from`` the version, and
the run tag ``lockgate.datasets.changed``).

Links recorded before these checks existed carry no ``verified`` field: ``lockgate reproduce`` and
the gate's provenance check call them unverified.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.errors import IntegrityError
from lockgate.tracking.datasets import (
    TABULAR_SUFFIXES,
    DatasetVersion,
    data_root_in_force,
    diff_manifests,
    find_by_digest,
    get_version,
    load_manifest,
    locate,
    not_on_disk,
    project_root,
    pull,
    recorded_path,
)
from lockgate.tracking.digest import FileEntry, HashCache, manifest, manifest_digest
from lockgate.tracking.tracker import DatasetLink, current_run

if TYPE_CHECKING:
    import pandas as pd

    from lockgate.tracking.connection import Connection
    from lockgate.tracking.tracker import TrackedRun

__all__ = [
    "CHANGED_TAG",
    "VERIFIED_HASHED",
    "VERIFIED_READ",
    "CheckedData",
    "check_version",
    "describe_differences",
    "link_for",
    "load",
    "log_dataset_input",
    "mismatch_error",
    "path",
    "resolve_link",
]

VERIFIED_READ = "read"
VERIFIED_HASHED = "hashed"
CHANGED_TAG = "lockgate.datasets.changed"
_MAX_NAMED_FILES = 5
_HASHES = HashCache()
_log = logging.getLogger("lockgate.tracking")


@dataclass(frozen=True)
class CheckedData:
    """A version's files as found on this machine, and the digest of what is there now."""

    version: DatasetVersion
    path: Path
    entries: tuple[FileEntry, ...]

    @property
    def digest(self) -> str:
        return manifest_digest(list(self.entries))

    @property
    def is_match(self) -> bool:
        return self.digest == self.version.digest


# -- pure parts ---------------------------------------------------------------------------------
def describe_differences(recorded: Sequence[FileEntry], on_disk: Sequence[FileEntry]) -> str:
    """The files that differ, named: ``train.csv changed, extra.csv added, old.csv missing``."""
    added, removed, changed, _ = diff_manifests(list(recorded), list(on_disk))
    parts = [f"{p} changed" for p in changed] + [f"{p} added" for p in added]
    parts += [f"{p} missing" for p in removed]
    if not parts:
        return "the files differ"
    shown = ", ".join(parts[:_MAX_NAMED_FILES])
    more = len(parts) - _MAX_NAMED_FILES
    return shown + (f" and {more} more" if more > 0 else "")


def mismatch_error(checked: CheckedData, differences: str, *, is_tracking: bool = False) -> IntegrityError:
    """The refusal when the files on disk are not the version: which files, and the ways out."""
    version = checked.version
    hint = (
        f"restore the files of {version.ref}, or snapshot what is there as a new version with "
        f"`lockgate data snapshot {checked.path} --name {version.name}` and use that one"
    )
    if is_tracking:
        hint += (
            "; or pass on_changed='record' to lockgate.track to record these bytes as an unregistered version"
        )
    return IntegrityError(
        f"the data at '{checked.path}' is not {version.ref}: {differences} "
        f"(digest {checked.digest[:12]} on disk, {version.digest[:12]} recorded)",
        hint=hint,
        detail={"dataset": version.ref, "path": str(checked.path), "differences": differences},
    )


def link_for(checked: CheckedData, context: str, verified: str) -> DatasetLink:
    """The link a run records for checked files: the version when they match, else their own digest
    as an unregistered version ``changed_from`` it."""
    version = checked.version
    if checked.is_match:
        return DatasetLink(version.name, version.digest, context, version.version, version.source, verified)
    return DatasetLink(
        version.name, checked.digest, context, None, version.source, verified, changed_from=version.version
    )


# -- files on this machine -------------------------------------------------------------------------
def _local_root(conn: Connection, version: DatasetVersion, data_root: Path | None) -> Path:
    """Where the version's files are here; a copied snapshot that is not here yet is pulled there."""
    root = locate(version.source, project_root(), data_root_in_force(data_root))
    if root.exists():
        return root
    if version.is_copied:
        return pull(conn, version.ref, root)
    raise not_on_disk(version, root)


def check_version(conn: Connection, version: DatasetVersion, data_root: Path | None = None) -> CheckedData:
    """Hash the version's files on this machine (each file read once per change: ``HashCache``)."""
    root = _local_root(conn, version, data_root)
    return CheckedData(version, root, tuple(manifest(root, _HASHES.sha256)))


def _require_match(conn: Connection, checked: CheckedData, *, is_tracking: bool = False) -> None:
    if not checked.is_match:
        differences = describe_differences(load_manifest(conn, checked.version), checked.entries)
        raise mismatch_error(checked, differences, is_tracking=is_tracking)


def resolve_link(
    conn: Connection,
    ref: str | Path,
    context: str,
    *,
    on_changed: str = "refuse",
    data_root: Path | None = None,
) -> DatasetLink:
    """The link for a dataset a run names: a version (``NAME@V`` or ``NAME``), its files hashed and
    checked (refused when they differ, unless ``on_changed="record"``); or a file or folder, hashed
    and matched to a registered version by digest when there is one."""
    as_path = Path(ref).expanduser()
    if isinstance(ref, Path) or (as_path.exists() and "@" not in str(ref)):
        root = as_path.resolve()
        digest = manifest_digest(manifest(root, _HASHES.sha256))
        found = find_by_digest(conn, digest)
        where = recorded_path(root, project_root())
        if found is not None:
            return DatasetLink(found.name, digest, context, found.version, where, VERIFIED_HASHED)
        return DatasetLink(root.name, digest, context, None, where, VERIFIED_HASHED)
    checked = check_version(conn, get_version(conn, str(ref)), data_root)
    if on_changed != "record":
        _require_match(conn, checked, is_tracking=True)
    elif not checked.is_match:
        differences = describe_differences(load_manifest(conn, checked.version), checked.entries)
        _log.warning(
            "lockgate: the data at '%s' is not %s (%s); recorded as an unregistered digest %s",
            checked.path,
            checked.version.ref,
            differences,
            checked.digest[:12],
        )
    return link_for(checked, context, VERIFIED_HASHED)


def log_dataset_input(conn: Connection, run_id: str, link: DatasetLink) -> None:
    """The link as an MLflow dataset input of the run, so MLflow's UI shows it too."""
    import mlflow.entities as me

    ref = f"{link.name}@{link.version}" if link.version is not None else None
    dataset = me.Dataset(
        name=link.name,
        digest=link.digest[:32],
        source_type="lockgate",
        source=json.dumps({"path": link.path, "ref": ref, "verified": link.verified or None}),
    )
    tags = [me.InputTag("mlflow.data.context", link.context)]
    conn.client.log_inputs(run_id, [me.DatasetInput(dataset, tags)])


# -- the reading API (``lockgate.data``) -------------------------------------------------------------
def _connection() -> tuple[Connection, TrackedRun | None]:
    from lockgate.tracking.connection import connect

    run = current_run()
    return (run.conn if run is not None else connect()), run


def _checked_read(
    conn: Connection, run: TrackedRun | None, checked: CheckedData, context: str
) -> CheckedData:
    _require_match(conn, checked)
    if run is not None:
        run.add_link(link_for(checked, context, VERIFIED_READ))
    return checked


def path(ref: str, *, data_root: Path | None = None, context: str = "train") -> Path:
    """The local path of dataset version ``ref`` (``NAME@VERSION``, or ``NAME`` for the latest), after
    checking every file against the version's manifest; recorded on the active ``lockgate.track`` run.

    Raises :class:`IntegrityError` naming the files that differ, :class:`NotFound` when the files are
    not here and the snapshot was not copied.
    """
    conn, run = _connection()
    checked = check_version(conn, get_version(conn, ref), data_root)
    return _checked_read(conn, run, checked, context).path


def load(
    ref: str, *, data_root: Path | None = None, context: str = "train", **read_options: Any
) -> pd.DataFrame | Path:
    """Dataset version ``ref`` checked like :func:`path`: a CSV or Parquet file as a DataFrame, parsed
    from the very bytes that were hashed (``read_options`` go to ``pandas.read_csv`` /
    ``read_parquet``); anything else (a folder, another format) as its path."""
    import pandas as pd

    conn, run = _connection()
    version = get_version(conn, ref)
    root = _local_root(conn, version, data_root)
    suffix = root.suffix.lower()
    if not (root.is_file() and suffix in TABULAR_SUFFIXES):
        checked = CheckedData(version, root, tuple(manifest(root, _HASHES.sha256)))
        return _checked_read(conn, run, checked, context).path
    data = root.read_bytes()
    entry = FileEntry(root.name, len(data), hashlib.sha256(data).hexdigest())
    _checked_read(conn, run, CheckedData(version, root, (entry,)), context)
    reader = pd.read_csv if suffix == ".csv" else pd.read_parquet
    frame: pd.DataFrame = reader(io.BytesIO(data), **read_options)
    return frame
