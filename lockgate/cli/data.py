"""``lockgate data``: dataset versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lockgate.cli.output import console, fmt_ms, fmt_value, short

app = typer.Typer(
    help="Version datasets: content-addressed snapshots of a file or folder, kept in MLflow.",
    no_args_is_help=True,
)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


_TOP_CHANGES = 12


def _ranked_changes(
    stat_changes: dict[str, dict[str, list[Any]]],
) -> list[tuple[str, str, Any, Any, float | None]]:
    """(column, statistic, before, after, relative change) with the largest changes first."""
    rows: list[tuple[str, str, Any, Any, float | None]] = []
    for col, stats in stat_changes.items():
        for stat, (old, new) in stats.items():
            rel = None
            if isinstance(old, int | float) and isinstance(new, int | float):
                rel = (new - old) / abs(old) if old else (float("inf") if new else 0.0)
            rows.append((col, stat, old, new, rel))
    return sorted(rows, key=lambda r: -abs(r[4]) if r[4] is not None else 0.0)


@app.command("snapshot")
def snapshot_command(
    path: Annotated[Path, typer.Argument(help="File or folder to snapshot (any format).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Dataset name, e.g. 'breast-cancer'.")],
    copy: Annotated[
        bool, typer.Option("--copy", help="Store a copy of the files, not only the manifest.")
    ] = False,
    description: Annotated[str, typer.Option(help="A note kept with the version.")] = "",
) -> None:
    """Record a new version of a dataset (SHA-256 over its sorted files).

    Unchanged content gives back the latest version instead of a new one.

    Example:  lockgate data snapshot data/train.csv --name breast-cancer
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import snapshot

    version = snapshot(connect(), path, name, copy=copy, description=description)
    if version.is_new:
        console.print(
            f"[green]created[/] {version.ref}  digest {short(version.digest)}  "
            f"{version.file_count} file(s), {_size(version.size_bytes)}"
            + ("  (files copied)" if version.is_copied else "  (manifest only)")
        )
    else:
        console.print(f"[yellow]unchanged[/] {version.ref}  digest {short(version.digest)}  (no new version)")


@app.command("list")
def list_command(
    name: Annotated[str | None, typer.Argument(help="Only this dataset's versions.")] = None,
) -> None:
    """List dataset versions.

    Example:  lockgate data list breast-cancer
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import list_versions

    versions = list_versions(connect(), name)
    table = Table(title="dataset versions")
    for col in ("dataset", "version", "digest", "files", "size", "stored", "created", "source"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v.name,
            str(v.version),
            short(v.digest),
            str(v.file_count),
            _size(v.size_bytes),
            "copy" if v.is_copied else "manifest",
            fmt_ms(v.created_ms),
            v.source,
        )
    console.print(table if versions else "no dataset versions yet; create one with `lockgate data snapshot`")


@app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (default: the latest).")],
) -> None:
    """Show one version: its files and, for CSV/Parquet, rows, columns and statistics.

    Example:  lockgate data show breast-cancer@1
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import get_version, load_manifest, load_profiles

    conn = connect()
    v = get_version(conn, ref)
    console.print(f"[bold]{v.ref}[/]  digest {v.digest}")
    console.print(f"source {v.source}  created {fmt_ms(v.created_ms)}  run {v.run_id}")
    if v.description:
        console.print(f"note: {v.description}")
    files = Table(title="files")
    for col in ("path", "size", "sha256"):
        files.add_column(col)
    entries = load_manifest(conn, v)
    for entry in entries[:50]:
        files.add_row(entry.path, _size(entry.size_bytes), short(entry.sha256))
    if len(entries) > 50:
        files.add_row(f"... {len(entries) - 50} more", "", "")
    console.print(files)
    for file, prof in load_profiles(conn, v).items():
        if "columns" not in prof:
            continue
        table = Table(title=f"{file}: {prof['rows']} rows, {len(prof['columns'])} columns")
        for col in ("column", "dtype", "nulls", "mean", "std", "min", "max"):
            table.add_column(col)
        for col_name, info in prof["columns"].items():
            table.add_row(
                col_name,
                info.get("dtype", ""),
                str(info.get("nulls", "")),
                *(fmt_value(info.get(s)) for s in ("mean", "std", "min", "max")),
            )
        console.print(table)


@app.command("diff")
def diff_command(
    a: Annotated[str, typer.Argument(help="First version, NAME@VERSION.")],
    b: Annotated[str, typer.Argument(help="Second version, NAME@VERSION.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show every statistic change, not the largest 12.")
    ] = False,
) -> None:
    """Files added, removed and changed; for CSV/Parquet also rows, columns, types and statistics.

    Example:  lockgate data diff breast-cancer@1 breast-cancer@2
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import diff_versions

    d = diff_versions(connect(), a, b)
    if as_json:
        console.print_json(json.dumps(d.__dict__, default=list))
        return
    console.print(f"[bold]{d.a} → {d.b}[/]")
    if d.is_identical:
        console.print("identical content")
        return
    console.print(
        f"files: {len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, "
        f"{d.unchanged} unchanged"
    )
    for label, paths, colour in (
        ("+", d.added, "green"),
        ("-", d.removed, "red"),
        ("~", d.changed, "yellow"),
    ):
        for p in paths:
            console.print(f"  [{colour}]{label} {p}[/]")
    for file, t in d.tables.items():
        console.print(f"[bold]{file}[/]: rows {t['rows'][0]} → {t['rows'][1]}")
        if t["columns_added"]:
            console.print(f"  columns added: {', '.join(t['columns_added'])}")
        if t["columns_removed"]:
            console.print(f"  columns removed: {', '.join(t['columns_removed'])}")
        for col, (old, new) in t["type_changes"].items():
            console.print(f"  type of {col}: {old} → {new}")
        changes = _ranked_changes(t["stat_changes"])
        if changes:
            shown = changes if show_all else changes[:_TOP_CHANGES]
            table = Table(title="summary-statistic changes (largest relative change first)")
            for col in ("column", "statistic", "before", "after", "change"):
                table.add_column(col)
            for col, stat, old, new, rel in shown:
                table.add_row(
                    col, stat, fmt_value(old), fmt_value(new), f"{rel:+.1%}" if rel is not None else ""
                )
            console.print(table)
            if len(changes) > len(shown):
                console.print(f"  ... {len(changes) - len(shown)} smaller changes (show them with --all)")


@app.command("pull")
def pull_command(
    ref: Annotated[str, typer.Argument(help="A dataset version snapshotted with --copy: NAME@VERSION.")],
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Where to put it. Default: where it was recorded, in this project."),
    ] = None,
) -> None:
    """Fetch a copied dataset version from the artifact store to this machine, digest checked.

    Example:  lockgate data pull breast-cancer@1
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import pull

    path = pull(connect(), ref, to)
    console.print(f"[green]{ref}[/] is at {path} (digest verified)")
