"""``lockgate runs``: list, compare and diff tracked runs."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lockgate.cli.output import console, fmt_ms, fmt_value, record_written, short
from lockgate.errors import UserError

app = typer.Typer(help="List, compare and diff tracked runs.", no_args_is_help=True)


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


@app.command("list")
def list_command(
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only this experiment.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
) -> None:
    """List recent runs with their main metrics and code version.

    Example:  lockgate runs list --limit 5
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.refs import dataset_label
    from lockgate.tracking.runs import list_runs

    runs = list_runs(connect(), experiment=experiment, limit=limit)
    if not runs:
        console.print("no runs yet; track one with `with lockgate.track(): ...`")
        return
    room = max(1, (console.width - 96) // 11)  # metric columns that fit beside the fixed ones
    metric_keys = sorted({k for r in runs for k in r.metrics})[: min(4, room)]
    fmt = "{:.4g}".format
    table = Table(title="runs (newest first)")
    # the ids stay whole (commands take a prefix of 6 or more); names and data wrap instead
    whole = {"run": 8, "started": 11, "commit": 8}
    for col in ("run", "name", "started", "duration", *metric_keys, "commit", "data"):
        table.add_column(
            col,
            no_wrap=col in whole or col == "duration",
            min_width=whole.get(col, min(len(col), 8)),
            overflow="fold",
        )
    for r in runs:
        duration = f"{r.duration_s:.1f}s" if r.duration_s is not None else "-"
        data = ", ".join(dataset_label(d) for d in r.datasets) or "-"
        table.add_row(
            r.short_id,
            r.name + ("" if r.status == "FINISHED" else f" ({r.status.lower()})"),
            fmt_ms(r.start_ms)[5:16],
            duration,
            *(fmt(r.metrics[k]) if k in r.metrics else "-" for k in metric_keys),
            short(r.tags.get("lockgate.git.commit"), 7)
            + ("*" if r.tags.get("lockgate.git.dirty") == "true" else ""),
            data,
        )
    console.print(table)


@app.command("compare")
def compare_command(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids (or unique prefixes).")],
    only_changed: Annotated[
        bool, typer.Option("--only-changed", help="Hide rows equal in every run.")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table, markdown or json.")] = Format.table,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write metric curves to this PNG file.")] = None,
) -> None:
    """Params and metrics side by side; differences highlighted, the best value of each metric starred.

    Example:  lockgate runs compare 3f2a9c 81d0be --only-changed --plot curves.png
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.runs import compare_rows, get_run, plot_metrics, summarize

    if len(runs) < 2:
        raise UserError("compare needs at least two runs", hint="pass two or more run ids")
    conn = connect()
    summaries = [summarize(get_run(conn, r)) for r in runs]
    rows = compare_rows(summaries, only_changed=only_changed)
    headers = [f"{s.name} ({s.short_id})" if s.name else s.short_id for s in summaries]
    if fmt is Format.json:
        doc = {
            "runs": [{"run_id": s.run_id, "name": s.name} for s in summaries],
            "rows": [
                {
                    "kind": r.kind,
                    "key": r.key,
                    "values": list(r.values),
                    "changed": r.is_changed,
                    "best": [summaries[i].run_id for i in r.best],
                }
                for r in rows
            ],
        }
        print(json.dumps(doc, indent=2))
    elif fmt is Format.markdown:
        print("| kind | key | " + " | ".join(headers) + " |")
        print("|---|---|" + "---|" * len(headers))
        for r in rows:
            cells = [
                ("**" + fmt_value(v) + "** ★" if i in r.best else fmt_value(v))
                for i, v in enumerate(r.values)
            ]
            print(f"| {r.kind} | {r.key}{' (changed)' if r.is_changed else ''} | " + " | ".join(cells) + " |")
    else:
        table = Table(title="run comparison (★ best, yellow: differs)")
        table.add_column("kind")
        table.add_column("key")
        for h in headers:
            table.add_column(h, justify="right")
        for r in rows:
            cells = []
            for i, v in enumerate(r.values):
                text = fmt_value(v) + (" ★" if i in r.best else "")
                cells.append(f"[bold green]{text}[/]" if i in r.best else text)
            key = f"[yellow]{r.key}[/]" if r.is_changed else r.key
            table.add_row(r.kind, key, *cells)
        console.print(table)
    if plot is not None:
        written = record_written(plot_metrics(conn, summaries, plot))
        (print if fmt is not Format.table else console.print)(f"metric curves written to {written}")


@app.command("diff")
def diff_command(
    a: Annotated[str, typer.Argument(help="First run id.")],
    b: Annotated[str, typer.Argument(help="Second run id.")],
) -> None:
    """What differs between two runs: params, metrics, code commit, environment and data.

    Example:  lockgate runs diff 3f2a9c 81d0be
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.runs import diff_runs, get_run, load_packages, summarize

    conn = connect()
    ra, rb = summarize(get_run(conn, a)), summarize(get_run(conn, b))
    d = diff_runs(ra, rb, load_packages(conn, ra.run_id), load_packages(conn, rb.run_id))
    console.print(f"[bold]{ra.short_id} ({ra.name}) → {rb.short_id} ({rb.name})[/]")
    if d.is_identical:
        console.print("no differences in params, metrics, code, environment or data")
        return
    for section, changes in (
        ("params", d.params),
        ("metrics", d.metrics),
        ("code", d.code),
        ("environment", d.environment),
        ("data", d.data),
    ):
        if not changes:
            console.print(f"[dim]{section}: same[/]")
            continue
        table = Table(title=section)
        for col in ("key", ra.short_id, rb.short_id):
            table.add_column(col)
        for key, (old, new) in changes.items():
            # Digests and commits are recognisable by their first 12 characters.
            old_text, new_text = fmt_value(old), fmt_value(new)
            if len(old_text) > 40 and len(new_text) > 40:
                old_text, new_text = old_text[:12], new_text[:12]
            table.add_row(key, old_text, new_text)
        console.print(table)
    if d.packages_added or d.packages_removed:
        console.print(
            "packages: "
            + ", ".join(
                [f"[red]-{p}[/]" for p in d.packages_removed] + [f"[green]+{p}[/]" for p in d.packages_added]
            )
        )


@app.command("sync")
def sync_command() -> None:
    """Send the metrics and final statuses that runs spilled to LOCKGATE_HOME/spill while their
    tracking server was away; each file is removed once the server has acknowledged all of it.

    Example:  lockgate runs sync
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.spill import spill_folder, sync_spilled

    conn = connect()
    results = sync_spilled(conn)
    if not results:
        console.print(f"nothing to send: no spill files in {spill_folder(conn.settings.home)}")
        return
    table = Table(title=f"spilled runs sent to {conn.settings.tracking_uri}")
    for col in ("run", "points", "final status", "sent", "file"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.run_id,
            str(r.points),
            r.status or "-",
            "yes" if r.is_sent else f"no: {r.note}",
            str(r.path),
        )
    console.print(table)
