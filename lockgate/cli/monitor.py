"""``lockgate monitor``: drift against the training data, of a served deployment or of newer data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lockgate.cli.output import console
from lockgate.errors import CheckFailed, NotFound, UserError

app = typer.Typer(help="Watch models and data: drift against the training data.", no_args_is_help=True)


def _read_table(path: Path) -> object:
    import pandas as pd

    if not path.exists():
        raise NotFound(f"file '{path}' does not exist", hint="pass a CSV or Parquet file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise UserError(f"'{path}' is not a CSV or Parquet file", hint="convert it, or pass a .csv/.parquet file")


_URL_HELP = "The server (default $LOCKGATE_URL or http://127.0.0.1:8080)."
_TOKEN_HELP = "Admin token (default $LOCKGATE_ADMIN_TOKEN)."  # noqa: S105 (help text, not a secret)


@app.command("drift")
def drift_command(
    deployment: Annotated[
        str | None,
        typer.Argument(help="A served deployment: its live drift, read from the server (like `live`)."),
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="Training data: a dataset version NAME@VERSION.")
    ] = None,
    current: Annotated[
        Path | None, typer.Option(help="Newer data to compare: a CSV or Parquet file.")
    ] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Columns to leave out (e.g. the target).")] = None,
    psi: Annotated[float, typer.Option(help="PSI above this is drift.")] = 0.2,
    js: Annotated[float, typer.Option(help="Jensen-Shannon distance above this is drift.")] = 0.1,
    ks_p_value: Annotated[float, typer.Option(help="KS p-value below this is drift.")] = 0.001,
    min_count: Annotated[int, typer.Option(help="Rows needed before a feature is judged.")] = 200,
    url: Annotated[str | None, typer.Option("--url", help=_URL_HELP)] = None,
    token: Annotated[str | None, typer.Option("--token", help=_TOKEN_HELP)] = None,
    data_root: Annotated[
        Path | None,
        typer.Option(help="A folder holding the reference data, when it is not where it was recorded."),
    ] = None,
) -> None:
    """Drift against the training data: of a served deployment, or of a data file.

    With DEPLOYMENT: the server's live drift of each variant's inputs and predictions (the server
    needs --drift-reference; its thresholds apply). With --reference and --current: per-feature
    drift (PSI, KS, Jensen-Shannon) of newer data against a dataset version. Exits 1 when anything
    drifted, so a scheduled job can alert or retrain.

    Examples:

        lockgate monitor drift churn --url http://127.0.0.1:8080

        lockgate monitor drift --reference breast-cancer@1 --current new.csv --exclude target
    """
    if deployment is not None:
        if reference is not None or current is not None:
            raise UserError(
                f"give either a deployment ('{deployment}') or --reference and --current, not both",
                hint="lockgate monitor drift NAME reads a server; --reference/--current compare a file",
            )
        _print_live(deployment, url, token)
        return
    if reference is None or current is None:
        raise UserError(
            "say what to compare: a served deployment, or --reference and --current",
            hint="lockgate monitor drift NAME, or: lockgate monitor drift --reference D@1 --current FILE",
        )
    import pandas as pd

    from lockgate.monitor.drift import DriftThresholds, drift_report
    from lockgate.monitor.reference import reference_from_frame
    from lockgate.tracking.connection import connect
    from lockgate.tracking.datasets import data_root_in_force, get_version, locate, project_root, verify_path

    version = get_version(connect(), reference)
    source = locate(version.source, project_root(), data_root_in_force(data_root))
    if source.is_dir():
        raise UserError(
            f"{version.ref} is a folder; drift needs one table",
            hint="snapshot the table file itself as a dataset version",
        )
    verify_path(version, source)
    ref_frame = _read_table(source)
    cur_frame = _read_table(current)
    assert isinstance(ref_frame, pd.DataFrame) and isinstance(cur_frame, pd.DataFrame)
    skip = tuple(exclude or ())
    ref = reference_from_frame(ref_frame, dataset=version.ref, digest=version.digest, exclude=skip)
    missing = [name for name in ref.sketches if name not in cur_frame.columns]
    if missing:
        raise UserError(
            f"'{current}' lacks column(s) {', '.join(missing)} of {version.ref}",
            hint="pass --exclude for columns that are not model inputs",
        )
    live = ref.empty_live()
    for name, sketch in live.items():
        column = cur_frame[name]
        sketch.update(column.tolist() if sketch.kind == "categorical" else column.to_numpy(dtype="float64"))
    limits = DriftThresholds(psi=psi, js=js, ks_p_value=ks_p_value, min_count=min_count)
    report = drift_report(ref.sketches, live, limits)
    table = Table(title=f"drift of {current.name} against {version.ref} ({len(cur_frame)} rows)")
    for col in ("feature", "kind", "PSI", "JS", "KS", "KS p", "status"):
        table.add_column(col, justify="right" if col in ("PSI", "JS", "KS", "KS p") else "left")
    order = sorted(report.features, key=lambda f: (not f.is_drifted, -f.numbers.get("psi", 0.0)))
    for feature in order:
        n = feature.numbers
        status = "[bold red]drift[/]" if feature.is_drifted else feature.status
        table.add_row(
            feature.name,
            feature.kind,
            *(f"{n[k]:.3g}" if k in n else "-" for k in ("psi", "js", "ks", "ks_p_value")),
            status,
        )
    console.print(table)
    if report.has_drift:
        console.print(f"[bold red]{len(report.drifted)} feature(s) drifted:[/] {', '.join(report.drifted)}")
        raise CheckFailed(f"drift in {len(report.drifted)} feature(s)")
    console.print("[green]no drift[/]")


def render_live_drift(status: dict[str, Any]) -> list[Table]:
    """One table per variant of a deployment's live drift (from its status), drifted first."""
    drift = status.get("drift")
    if not drift:
        raise UserError(
            f"deployment '{status['name']}' has no live drift",
            hint="start the server with --drift-reference NAME@VERSION (a dataset version)",
        )
    tables = []
    for variant, report in sorted(drift["variants"].items()):
        table = Table(
            title=f"{status['name']}/{variant}: live inputs against {drift['reference']['dataset']} "
            f"(one request in {drift['sample_every']} sketched)"
        )
        for col in ("feature", "n", "PSI", "JS", "KS", "KS p", "status"):
            table.add_column(col, justify="left" if col in ("feature", "status") else "right")
        features = sorted(
            report["features"].items(), key=lambda kv: (kv[1]["status"] != "drift", -kv[1].get("psi", 0.0))
        )
        for name, feature in features:
            table.add_row(
                name,
                str(feature["live_count"]),
                *(f"{feature[k]:.3g}" if k in feature else "-" for k in ("psi", "js", "ks", "ks_p_value")),
                "[bold red]drift[/]" if feature["status"] == "drift" else feature["status"],
            )
        tables.append(table)
    predictions = drift.get("predictions") or {}
    if predictions.get("variants"):
        table = Table(
            title=f"{status['name']}: predictions ({predictions['output']}, {predictions['kind']}) against "
            f"{predictions['source']}"
        )
        for col in ("variant", "n", "PSI", "JS", "centroid distance", "mean cosine", "status"):
            table.add_column(col, justify="left" if col in ("variant", "status") else "right")
        for variant, output in sorted(predictions["variants"].items()):
            table.add_row(
                variant,
                str(output["live_count"]),
                *(
                    f"{output[k]:.3g}" if k in output else "-"
                    for k in ("psi", "js", "cosine_distance", "mean_cosine")
                ),
                "[bold red]drift[/]" if output["status"] == "drift" else output["status"],
            )
        tables.append(table)
    return tables


@app.command("live")
def live_command(
    name: Annotated[str, typer.Argument(help="The deployment's name.")],
    url: Annotated[str | None, typer.Option("--url", help=_URL_HELP)] = None,
    token: Annotated[str | None, typer.Option("--token", help=_TOKEN_HELP)] = None,
) -> None:
    """Live drift of a served deployment: each variant's sampled inputs and predictions against
    the training data (the same as `lockgate monitor drift NAME`).

    Exit code 1 when a feature or the predictions drifted. The server needs --drift-reference.

    Example:  lockgate monitor live churn --url http://127.0.0.1:8080
    """
    _print_live(name, url, token)


def _print_live(name: str, url: str | None, token: str | None) -> None:
    from lockgate.serving.client import AdminClient

    with AdminClient(url, token=token) as client:
        status = client.status(name)
    tables = render_live_drift(status)
    for table in tables:
        console.print(table)
    drift = status["drift"]
    predictions = drift.get("predictions") or {}
    if predictions.get("state") == "computing":
        console.print("prediction drift: the reference of predictions is still being computed")
    elif predictions.get("state") == "unavailable":
        console.print(f"prediction drift: unavailable ({predictions.get('error')})")
    drifted = {v: r["drifted"] for v, r in drift["variants"].items() if r["drifted"]}
    outputs = sorted(v for v, o in (predictions.get("variants") or {}).items() if o["status"] == "drift")
    for variant, features in sorted(drifted.items()):
        console.print(f"[bold red]{variant}: {len(features)} feature(s) drifted:[/] {', '.join(features)}")
    for variant in outputs:
        console.print(f"[bold red]{variant}: predictions drifted[/] ({predictions.get('output')})")
    if drifted or outputs:
        raise CheckFailed(f"drift in {len(drifted) + len(outputs)} variant(s)' inputs or predictions")
    console.print("[green]no drift[/]" if tables else "no sampled requests yet")
