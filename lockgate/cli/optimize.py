"""``lockgate optimize``: make a smaller or faster version, measure the trade-off, register it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lockgate.cli.output import console, record_written
from lockgate.errors import CheckFailed, UserError

if TYPE_CHECKING:
    from lockgate.optimize.optimizer import OptimizationResult
    from lockgate.optimize.tradeoff import TradeOff

__all__ = ["optimize_command", "tradeoff_table"]


def _size(size_bytes: int) -> str:
    if size_bytes >= 1_000_000:
        return f"{size_bytes / 1e6:.1f} MB"
    return f"{size_bytes / 1e3:.1f} kB"


def tradeoff_table(
    parent_ref: str, parent: TradeOff, results: list[OptimizationResult], *, title: str | None = None
) -> Table:
    """Parent first, then each candidate; ★ marks the Pareto-optimal (quality, latency, size)."""
    from lockgate.optimize.tradeoff import pareto_optimal

    records = [parent, *(r.candidate for r in results)]
    flags = pareto_optimal(records)
    table = Table(title=title or f"optimization trade-offs for {parent_ref} (★ Pareto-optimal)")
    for column, justify in (
        ("", "left"),
        ("candidate", "left"),
        ("version", "left"),
        ("model folder", "right"),
        ("p50 b1 ms", "right"),
        ("p95 b1 ms", "right"),
        ("p50 b32 ms", "right"),
        ("rows/s b32", "right"),
        (parent.quality_metric, "right"),
        ("max diff", "right"),
        ("notes", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    versions = [parent_ref, *((r.version.ref if r.version else "not registered") for r in results)]
    for record, version, is_optimal in zip(records, versions, flags, strict=True):
        status = "★" if is_optimal else ("[red]✗[/]" if not record.is_verified else "")
        diff = "-" if record.max_abs_diff is None else f"{record.max_abs_diff:.2g}"
        notes = list(record.notes)
        if not record.is_verified:
            notes.insert(0, f"beyond tolerance {record.tolerance:g}")
        if "cosine_min" in record.extra and record.method != "parent":
            notes.insert(0, f"cosine min {record.extra['cosine_min']:.4f}")
        table.add_row(
            status,
            escape(record.label),
            escape(version),
            _size(record.size_bytes),
            f"{record.latency_b1.p50_ms:.3f}",
            f"{record.latency_b1.p95_ms:.3f}",
            f"{record.latency_b32.p50_ms:.3f}",
            f"{record.throughput_per_s:,.0f}",
            f"{record.quality:.4f}",
            diff,
            escape("; ".join(notes)),
        )
    return table


def optimize_command(
    model: Annotated[str, typer.Argument(help="NAME@VERSION, NAME@ALIAS or models:/NAME/VERSION.")],
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="onnx, quantize, prune or distill.")
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option("--all", help="Try every method that applies (a progress bar, a table, no --alias)."),
    ] = False,
    mode: Annotated[
        str | None, typer.Option(help="quantize: dynamic or static int8, or bf16 (encoders).")
    ] = None,
    per_channel: Annotated[
        bool | None, typer.Option("--per-channel/--per-tensor", help="quantize: one scale per channel.")
    ] = None,
    exclude_sensitive: Annotated[
        bool | None,
        typer.Option("--exclude-sensitive", help="quantize: keep the output layer in float."),
    ] = None,
    kind: Annotated[str | None, typer.Option(help="prune: structured or unstructured.")] = None,
    amount: Annotated[float | None, typer.Option(help="prune: fraction of weights or neurons.")] = None,
    student: Annotated[str | None, typer.Option(help="distill (tabular): logistic or tree.")] = None,
    layers: Annotated[int | None, typer.Option(help="distill (encoder): transformer layers to keep.")] = None,
    steps: Annotated[int | None, typer.Option(help="distill (encoder): training steps.")] = None,
    exporter: Annotated[str | None, typer.Option(help="onnx (PyTorch): dynamo or torchscript.")] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            help="onnx: largest output difference allowed; others: largest quality loss allowed "
            "(defaults 1e-4, quantize 0.02, prune and distill 0.05)."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="CSV/Parquet to judge tabular models on (default: the data the run recorded)."),
    ] = None,
    target: Annotated[str, typer.Option(help="Label column in --data.")] = "target",
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Register under this model name (default: the parent's)."),
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write quality against latency and size as a PNG.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the trade-off records as JSON.")
    ] = None,
    threads: Annotated[int, typer.Option(help="Threads for PyTorch and ONNX Runtime while measuring.")] = 2,
    is_registering: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the candidates within tolerance.")
    ] = True,
) -> None:
    """Make an optimized version (ONNX, int8, pruned, distilled), measure gain and loss, register it.

    Each candidate is compared with its parent on held-out inputs; one beyond --tolerance is logged but
    not registered (exit 1). A registered one's lineage names the parent, the method and its parameters.

    Examples:

      lockgate optimize breast-cancer-classifier@champion --method onnx

      lockgate optimize encoder@1 --method quantize --per-channel

      lockgate optimize encoder@1 --all --plot tradeoffs.png
    """
    from lockgate.optimize.methods import make_spec, sweep_plan
    from lockgate.optimize.optimizer import open_optimizer
    from lockgate.optimize.plot import plot_tradeoffs
    from lockgate.tracking.connection import connect

    if sweep == (method is not None):
        raise UserError(
            "pass either --method METHOD or --all",
            hint="e.g. `lockgate optimize NAME@VERSION --method onnx`, or --all to try every method",
        )
    params = {
        "mode": mode,
        "per_channel": per_channel,
        "exclude_sensitive": exclude_sensitive,
        "kind": kind,
        "amount": amount,
        "student": student,
        "layers": layers,
        "steps": steps,
        "exporter": exporter,
    }
    if threads < 1:
        raise UserError(f"--threads {threads} is below 1", hint="pass --threads 2")
    conn = connect()
    # the parent's download and every candidate's files: removed when the command ends
    with tempfile.TemporaryDirectory(prefix="lockgate-optimize-") as work:
        with console.status(f"loading {model}..."):
            optimizer = open_optimizer(
                conn, _ref(model), data=data, target=target, threads=threads, workdir=Path(work)
            )
        if method is not None:
            given = {k: v for k, v in params.items() if v is not None}
            specs = [make_spec(method, given, tolerance)]
        else:
            specs = sweep_plan(optimizer.kind, optimizer.cpu)
        results: list[OptimizationResult] = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"measuring {optimizer.version.ref}", total=len(specs) + 1)
            optimizer.parent_record()
            progress.advance(task)
            if sweep:
                # every candidate is measured here first; only the Pareto front is registered
                results = optimizer.sweep(
                    specs,
                    name=name,
                    is_registering=is_registering,
                    on_skip=lambda spec, exc: console.print(
                        f"[yellow]skipped {escape(spec.label)}:[/] {escape(str(exc))}"
                    ),
                    on_measured=lambda spec: progress.advance(task),
                )
            else:
                for spec in specs:
                    progress.update(task, description=f"{spec.label}")
                    results.append(optimizer.run(spec, name=name, alias=alias, is_registering=is_registering))
                    progress.advance(task)
    parent = optimizer.parent_record()
    console.print(tradeoff_table(optimizer.version.ref, parent, results))
    console.print(f"{parent.quality_metric} on {escape(optimizer.inputs.source)}")
    experiment = None
    if any(r.run_id for r in results):
        from lockgate.optimize.experiment import optimize_experiment

        experiment = optimize_experiment(conn, optimizer.version)
        console.print(
            f"runs logged to experiment '{escape(experiment)}' (`lockgate runs list -e {escape(experiment)}`)"
        )
    for result in results:
        if result.version is not None:
            console.print(
                f"[green]registered[/] {result.version.ref} ({escape(result.spec.label)}, parent "
                f"{optimizer.version.ref}, sha256 {str(result.version.artifact_sha256)[:12]})"
            )
    if plot is not None:
        plot_tradeoffs([parent, *(r.candidate for r in results)], plot, title=f"{optimizer.version.ref}")
        console.print(f"plot written to {record_written(plot)}")
    if json_path is not None:
        doc = {
            "judged_on": optimizer.inputs.source,
            "experiment": experiment,
            "parent": {"version": optimizer.version.ref, **parent.to_dict()},
            "candidates": [
                {"version": r.version.ref if r.version else None, "run_id": r.run_id, **r.candidate.to_dict()}
                for r in results
            ],
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
        record_written(json_path)
    rejected = [r for r in results if not r.candidate.is_verified]
    if rejected and not sweep:
        bad = rejected[0].candidate
        what = "output difference" if bad.method == "onnx" else f"{bad.quality_metric} loss"
        console.print(
            f"[bold red]not registered:[/] {escape(bad.label)} {what} exceeds the tolerance "
            f"{bad.tolerance:g} (max diff {bad.max_abs_diff:.3g}); "
            "raise --tolerance only if that is acceptable"
        )
        raise CheckFailed(f"{bad.label} is outside the tolerance {bad.tolerance:g}: not registered")


def _ref(model: str) -> str:
    from lockgate.gates.gate import parse_model_uri

    return str(parse_model_uri(model))
