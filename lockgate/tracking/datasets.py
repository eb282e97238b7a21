"""Dataset versions: content-addressed snapshots of a file or folder, kept in MLflow.

Each version is an MLflow run in the ``lockgate-datasets`` experiment holding the manifest (every
file's path, size and SHA-256), a profile of tabular files (rows, columns, types, summary statistics)
and, with ``copy=True``, the files themselves. The dataset is also logged as an MLflow dataset input of
that run, so it shows in MLflow's UI. Training runs link to versions by digest (``use_dataset``).

Paths are recorded relative to the project (the folder of ``lockgate.toml``, else the git repository,
else the working directory) when the data lies inside it, so a teammate's checkout finds the same
files; ``data_root`` points at a copy elsewhere, and ``pull`` fetches a copied snapshot.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockgate.errors import Conflict, IntegrityError, NotFound, UserError
from lockgate.tracking.connection import DATASETS_EXPERIMENT, Connection
from lockgate.tracking.digest import FileEntry, links_out_of, manifest, manifest_digest
from lockgate.tracking.numbering import CLAIM_TAG, PENDING, committed_version, number_run
from lockgate.tracking.refs import Ref, parse_ref, validate_name

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = [
    "DatasetDiff",
    "DatasetVersion",
    "data_root_in_force",
    "diff_manifests",
    "diff_profiles",
    "diff_versions",
    "get_version",
    "list_versions",
    "locate",
    "not_on_disk",
    "profile_table",
    "project_root",
    "pull",
    "recorded_path",
    "snapshot",
    "verify_path",
]

TABULAR_SUFFIXES = (".csv", ".parquet", ".pq")
_TAG = "lockgate.dataset."
_MAX_PROFILE_ROWS = 5_000_000


@dataclass(frozen=True)
class DatasetVersion:
    """One snapshot of a dataset."""

    name: str
    version: int
    digest: str
    source: str
    is_copied: bool
    file_count: int
    size_bytes: int
    created_ms: int
    run_id: str
    description: str = ""
    is_new: bool = True

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class DatasetDiff:
    """What changed between two versions: files, and for tabular files rows, columns and statistics."""

    a: str
    b: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: int
    tables: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def is_identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


# -- pure parts ---------------------------------------------------------------------------------
def diff_manifests(
    a: list[FileEntry], b: list[FileEntry]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], int]:
    """Files added, removed and changed from ``a`` to ``b``, and how many are unchanged."""
    old = {e.path: e.sha256 for e in a}
    new = {e.path: e.sha256 for e in b}
    added = tuple(sorted(set(new) - set(old)))
    removed = tuple(sorted(set(old) - set(new)))
    both = set(old) & set(new)
    changed = tuple(sorted(p for p in both if old[p] != new[p]))
    return added, removed, changed, len(both) - len(changed)


def diff_profiles(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Rows, columns, schema and summary-statistic changes between two table profiles."""
    cols_a: Mapping[str, Any] = a.get("columns", {})
    cols_b: Mapping[str, Any] = b.get("columns", {})
    out: dict[str, Any] = {
        "rows": [a.get("rows"), b.get("rows")],
        "columns_added": sorted(set(cols_b) - set(cols_a)),
        "columns_removed": sorted(set(cols_a) - set(cols_b)),
        "type_changes": {},
        "stat_changes": {},
    }
    for col in sorted(set(cols_a) & set(cols_b)):
        ca, cb = cols_a[col], cols_b[col]
        if ca.get("dtype") != cb.get("dtype"):
            out["type_changes"][col] = [ca.get("dtype"), cb.get("dtype")]
        changes = {
            stat: [ca.get(stat), cb.get(stat)]
            for stat in ("nulls", "mean", "std", "min", "max", "unique")
            if stat in ca and stat in cb and not _close(ca[stat], cb[stat])
        }
        if changes:
            out["stat_changes"][col] = changes
    return out


def _close(x: Any, y: Any) -> bool:
    if isinstance(x, int | float) and isinstance(y, int | float):
        return abs(float(x) - float(y)) <= 1e-9 * max(1.0, abs(float(x)), abs(float(y)))
    return bool(x == y)


# -- profiles ------------------------------------------------------------------------------------
def profile_table(path: Path) -> dict[str, Any] | None:
    """Rows, columns with type, nulls and summary statistics of a CSV or Parquet file."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in TABULAR_SUFFIXES:
        return None
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - a file that does not parse is profiled as opaque
        return {"error": f"could not read as a table: {exc.__class__.__name__}"}
    if len(frame) > _MAX_PROFILE_ROWS:
        frame = frame.head(_MAX_PROFILE_ROWS)
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        info: dict[str, Any] = {"dtype": str(series.dtype), "nulls": int(series.isna().sum())}
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            described = series.describe()
            for stat in ("mean", "std", "min", "max"):
                value = described.get(stat)
                info[stat] = None if value is None or pd.isna(value) else round(float(value), 12)
        else:
            info["unique"] = int(series.nunique(dropna=True))
        columns[str(name)] = info
    return {"rows": len(frame), "columns": columns}


def _profiles(root: Path, entries: list[FileEntry]) -> dict[str, Any]:
    if root.is_file():
        prof = profile_table(root)
        return {root.name: prof} if prof is not None else {}
    out: dict[str, Any] = {}
    for entry in entries:
        prof = profile_table(root / entry.path)
        if prof is not None:
            out[entry.path] = prof
    return out


# -- where the files are ---------------------------------------------------------------------------
def recorded_path(path: Path, project: Path) -> str:
    """How a snapshot records ``path`` (absolute): relative to ``project`` (POSIX separators) when it
    lies inside it, else absolute."""
    try:
        return path.relative_to(project).as_posix() or "."
    except ValueError:
        return str(path)


def locate(recorded: str, project: Path, data_root: Path | None = None) -> Path:
    """Where a recorded path is on this machine: under ``data_root`` when given (the recorded
    relative path, else the file or folder's name there), else relative to ``project``."""
    path = Path(recorded)
    if data_root is not None:
        candidates = (
            [data_root / path.name] if path.is_absolute() else [data_root / path, data_root / path.name]
        )
        return next((c for c in candidates if c.exists()), candidates[0])
    return path if path.is_absolute() else project / path


def data_root_in_force(data_root: Path | None) -> Path | None:
    """``data_root`` (a command's ``--data-root``) when given, else ``LOCKGATE_DATA_ROOT``, else None."""
    if data_root is not None:
        return data_root
    from lockgate.settings import current_settings

    return current_settings().data_root


def project_root(cwd: Path | None = None) -> Path:
    """The folder dataset paths are relative to: the team file's, else the git repository's top,
    else the working directory."""
    from lockgate.settings import find_team_file

    cwd = cwd or Path.cwd()
    team_file = find_team_file(cwd)
    if team_file is not None:
        return team_file.parent
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        top = ""
    return Path(top) if top else cwd.resolve()


# -- MLflow shell --------------------------------------------------------------------------------
def _version_from_run(run: Run, *, is_new: bool = True) -> DatasetVersion:
    tags = run.data.tags
    return DatasetVersion(
        name=tags[_TAG + "name"],
        version=int(tags[_TAG + "version"]),
        digest=tags[_TAG + "digest"],
        source=tags.get(_TAG + "source", ""),
        is_copied=tags.get(_TAG + "copied") == "true",
        file_count=int(tags.get(_TAG + "files", "0")),
        size_bytes=int(tags.get(_TAG + "size_bytes", "0")),
        created_ms=int(run.info.start_time or 0),
        run_id=run.info.run_id,
        description=tags.get("mlflow.note.content", ""),
        is_new=is_new,
    )


def _search(conn: Connection, filter_string: str = "", exp_id: str | None = None) -> list[Run]:
    """The dataset runs matching ``filter_string``, committed or not, oldest first."""
    exp_id = exp_id or conn.experiment_id(DATASETS_EXPERIMENT)
    runs: list[Run] = list(
        conn.client.search_runs(
            [exp_id],
            filter_string=filter_string,
            max_results=50_000,
            order_by=["attributes.start_time ASC"],
        )
    )
    return [r for r in runs if _TAG + "name" in r.data.tags]


def _runs_of(conn: Connection, name: str, exp_id: str | None = None) -> list[Run]:
    return _search(conn, f"tags.`{_TAG}name` = '{name}'", exp_id)


def _committed(runs: list[Run]) -> list[Run]:
    """The runs that are versions: a numeric version tag, written only once the number is committed."""
    return [r for r in runs if committed_version(r.data.tags) is not None]


def list_versions(conn: Connection, name: str | None = None) -> list[DatasetVersion]:
    """Every dataset version, oldest first; only ``name``'s when given."""
    if name is not None:
        validate_name(name, "dataset name")
        runs = _runs_of(conn, name)
    else:
        runs = _search(conn)
    versions = [_version_from_run(r) for r in _committed(runs)]
    return sorted(versions, key=lambda v: (v.name, v.version))


def get_version(conn: Connection, ref: str | Ref) -> DatasetVersion:
    """``NAME@VERSION``, or the latest version of ``NAME``."""
    parsed = ref if isinstance(ref, Ref) else parse_ref(ref, "dataset name", allow_alias=False)
    versions = list_versions(conn, parsed.name)
    if not versions:
        known = sorted({v.name for v in list_versions(conn)})
        raise NotFound(
            f"dataset '{parsed.name}' has no versions",
            hint=(f"known datasets: {', '.join(known)}" if known else "no datasets yet")
            + f"; create one with `lockgate data snapshot PATH --name {parsed.name}`",
        )
    if parsed.version is None:
        return versions[-1]
    for version in versions:
        if version.version == parsed.version:
            return version
    numbers = [v.version for v in versions]
    raise NotFound(
        f"dataset '{parsed.name}' has no version {parsed.version}",
        hint=f"versions are {_ranges(numbers)}; see `lockgate data list`",
    )


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return ", ".join(str(n) for n in numbers)


def snapshot(
    conn: Connection,
    path: Path,
    name: str,
    *,
    copy: bool = False,
    description: str = "",
) -> DatasetVersion:
    """Record a new version of dataset ``name`` from ``path``; the latest again if nothing changed.

    Safe when several processes snapshot the same name at once: each version number is claimed and
    checked through run tags before it is committed (``lockgate.tracking.numbering``).
    """
    import mlflow.entities as me

    validate_name(name, "dataset name")
    root = path.expanduser().resolve()
    if not root.exists():
        raise NotFound(f"path '{path}' does not exist", hint="check the path to the file or folder")
    escaping = links_out_of(root) if copy else []
    if escaping:
        raise UserError(
            f"'{path}' links out of itself ('{escaping[0]}'): --copy would copy files from outside it",
            hint="copy the linked files into the folder, or snapshot without --copy (links are not hashed)",
        )
    entries = manifest(root)
    if not entries:
        raise UserError(f"'{path}' holds no files", hint="snapshot a file or a folder with files in it")
    digest = manifest_digest(entries)
    existing = list_versions(conn, name)
    if existing and existing[-1].digest == digest:
        return _with_new(existing[-1], is_new=False)
    source = recorded_path(root, project_root())
    size_bytes = sum(e.size_bytes for e in entries)
    profiles = _profiles(root, entries)
    tags = {
        "lockgate.kind": "dataset",
        _TAG + "name": name,
        CLAIM_TAG: PENDING,
        _TAG + "digest": digest,
        _TAG + "source": source,
        _TAG + "copied": str(copy).lower(),
        _TAG + "files": str(len(entries)),
        _TAG + "size_bytes": str(size_bytes),
    }
    if description:
        tags["mlflow.note.content"] = description
    exp_id = conn.experiment_id(DATASETS_EXPERIMENT)
    run = conn.client.create_run(exp_id, run_name=f"{name}@{PENDING}", tags=tags)
    run_id = run.info.run_id
    try:
        # the slow uploads come first, so a claimed number is held for a few requests only
        if profiles:
            conn.client.log_dict(run_id, profiles, "profile.json")
        if copy:
            if root.is_file():
                conn.client.log_artifact(run_id, str(root), "data")
            else:
                conn.client.log_artifacts(run_id, str(root), "data")

        def write_manifest(version: int) -> None:
            doc = {
                "name": name,
                "version": version,
                "digest": digest,
                "source": source,
                "files": [e.__dict__ for e in entries],
            }
            conn.client.log_dict(run_id, doc, "manifest.json")

        version = number_run(conn, run_id, lambda: _runs_of(conn, name, exp_id), write_manifest)
        conn.client.set_tag(run_id, "mlflow.runName", f"{name}@v{version}")
        dataset = me.Dataset(
            name=name,
            digest=digest[:32],
            source_type="lockgate",
            source=json.dumps({"path": source, "ref": f"{name}@{version}"}),
            schema=json.dumps(_schema_of(profiles)) if profiles else None,
            profile=json.dumps({"files": len(entries), "size_bytes": size_bytes}),
        )
        conn.client.log_inputs(
            run_id, [me.DatasetInput(dataset, [me.InputTag("mlflow.data.context", "snapshot")])]
        )
    except BaseException:
        conn.client.set_terminated(run_id, "FAILED")
        raise
    conn.client.set_terminated(run_id, "FINISHED")
    return _version_from_run(conn.client.get_run(run_id))


def _with_new(version: DatasetVersion, *, is_new: bool) -> DatasetVersion:
    return DatasetVersion(**{**version.__dict__, "is_new": is_new})


def _schema_of(profiles: Mapping[str, Any]) -> dict[str, Any]:
    return {
        file: {col: info.get("dtype") for col, info in prof.get("columns", {}).items()}
        for file, prof in profiles.items()
    }


def _load_json_artifact(conn: Connection, run_id: str, artifact: str) -> Any:
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=artifact,
                dst_path=tmp,
                tracking_uri=conn.settings.tracking_uri,
            )
        except Exception:  # noqa: BLE001 - an absent artifact (no tabular files) reads as empty
            return None
        return json.loads(Path(local).read_text())


def load_manifest(conn: Connection, version: DatasetVersion) -> list[FileEntry]:
    doc = _load_json_artifact(conn, version.run_id, "manifest.json") or {"files": []}
    return [FileEntry(f["path"], int(f["size_bytes"]), f["sha256"]) for f in doc["files"]]


def load_profiles(conn: Connection, version: DatasetVersion) -> dict[str, Any]:
    return dict(_load_json_artifact(conn, version.run_id, "profile.json") or {})


def diff_versions(conn: Connection, a: str, b: str) -> DatasetDiff:
    """Compare two dataset versions (``NAME@V``; the name may differ between them)."""
    va, vb = get_version(conn, a), get_version(conn, b)
    ma, mb = load_manifest(conn, va), load_manifest(conn, vb)
    added, removed, changed, unchanged = diff_manifests(ma, mb)
    pa, pb = load_profiles(conn, va), load_profiles(conn, vb)
    tables: dict[str, dict[str, Any]] = {}
    single = len(ma) == 1 and len(mb) == 1
    if single and pa and pb:
        # One file each: compare the tables even if the file was renamed.
        (fa, prof_a), (fb, prof_b) = next(iter(pa.items())), next(iter(pb.items()))
        key = fa if fa == fb else f"{fa} -> {fb}"
        tables[key] = diff_profiles(prof_a, prof_b)
    else:
        for path in changed:
            if path in pa and path in pb:
                tables[path] = diff_profiles(pa[path], pb[path])
    return DatasetDiff(va.ref, vb.ref, added, removed, changed, unchanged, tables)


def verify_path(version: DatasetVersion, path: Path | None = None) -> str:
    """Digest the data on disk (at ``path``, else where :func:`locate` finds the recorded source) and
    raise :class:`IntegrityError` unless it matches ``version``."""
    root = path or locate(version.source, project_root(), data_root_in_force(None))
    if not root.exists():
        raise not_on_disk(version, root)
    digest = manifest_digest(manifest(root))
    if digest != version.digest:
        raise IntegrityError(
            f"the data at '{root}' does not match {version.ref}: digest {digest[:12]} on disk, "
            f"{version.digest[:12]} recorded",
            hint=f"restore the recorded data, or snapshot the new data with "
            f"`lockgate data snapshot {root} --name {version.name}`",
        )
    return digest


def not_on_disk(version: DatasetVersion, root: Path) -> NotFound:
    """The error for a version whose files are not where they were looked for."""
    pull_hint = f"fetch it with `lockgate data pull {version.ref}`, " if version.is_copied else ""
    return NotFound(
        f"the data of {version.ref} is not on disk at '{root}'",
        hint=f"{pull_hint}restore it there, or pass --data-root (or set LOCKGATE_DATA_ROOT) to a folder "
        f"holding '{Path(version.source).name}'",
    )


def find_by_digest(conn: Connection, digest: str) -> DatasetVersion | None:
    runs = _committed(_search(conn, f"tags.`{_TAG}digest` = '{digest}'"))
    return _version_from_run(runs[-1]) if runs else None


def pull(conn: Connection, ref: str, destination: Path | None = None) -> Path:
    """Download a copied snapshot (``snapshot(copy=True)``) to ``destination`` (default: where it was
    recorded, relative to this project) and verify its digest; return the local path."""
    import mlflow.artifacts

    version = get_version(conn, ref)
    if not version.is_copied:
        raise UserError(
            f"{version.ref} was snapshotted without --copy: only its manifest is in the artifact store",
            hint=f"snapshot the data again with `lockgate data snapshot PATH --name {version.name} --copy`",
        )
    manifest_entries = load_manifest(conn, version)
    target = destination or locate(version.source, project_root())
    if target.exists() and manifest_digest(manifest(target)) == version.digest:
        return target
    with tempfile.TemporaryDirectory(prefix="lockgate-pull-") as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="data", dst_path=tmp)
        )
        # a file was copied as data/<its name>; a folder's files as data/<their paths>
        is_file = len(manifest_entries) == 1 and manifest_entries[0].path == Path(version.source).name
        fetched = local / manifest_entries[0].path if is_file else local
        if manifest_digest(manifest(fetched)) != version.digest:
            raise IntegrityError(
                f"the copy of {version.ref} in the artifact store does not match its digest",
                hint="snapshot the data again with --copy",
            )
        if target.exists():
            raise Conflict(
                f"'{target}' exists and is not {version.ref}",
                hint="move it away, or pull to another path with --to",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(fetched), str(target))
    return target
