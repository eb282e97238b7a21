"""``lockgate replay DEPLOYMENT --to MODEL_URI``: captured traffic against a candidate model."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console
from lockgate.errors import UserError

__all__ = ["replay_command"]


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def replay_command(
    deployment: Annotated[str, typer.Argument(help="The deployment whose captured requests to replay.")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="MODEL_URI",
            help="The candidate: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH or a path.",
        ),
    ],
    store: Annotated[
        str | None,
        typer.Option(
            help="Rollout store URL (default: sqlite under LOCKGATE_HOME), where the server captured."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Replay the newest N captured requests.")] = 1000,
    sha256: Annotated[
        str | None, typer.Option(help="Expected sha256 of a local or runs:/ model folder.")
    ] = None,
    allow_unverified: Annotated[
        bool,
        typer.Option("--allow-unverified", help="Load a registered version that has no recorded digest."),
    ] = False,
    allow_unsafe_load: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe-load",
            help="Load a pickled model whose bytes were not verified against a checksum.",
        ),
    ] = False,
    fast_path: Annotated[
        str, typer.Option(help="auto, onnx, native or pyfunc: how scikit-learn models are run.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Replay a deployment's captured requests against a candidate model, and compare.

    The server captures with `lockgate serve --capture-every N`. The candidate is loaded and
    verified the way the server loads models. Prints how many requests were replayed, how often
    the candidate agrees with what was answered (labels: agreement and flips; numbers: mean and
    max absolute difference; embeddings: cosine) and latency side by side (recorded: the server's
    whole request; candidate: the model call in this process).

    Example:  lockgate replay churn --to models:/churn/4 --limit 500
    """
    from lockgate.monitor.replay import replay
    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.rollout.store import default_store_url
    from lockgate.serving.server import load_variant
    from lockgate.serving.source import resolve_source
    from lockgate.settings import current_settings

    if limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}", hint="e.g. --limit 1000")
    if fast_path not in ("auto", "onnx", "native", "pyfunc"):
        raise UserError(
            f"--fast-path must be auto, onnx, native or pyfunc, got '{fast_path}'",
            hint="auto serves scikit-learn models through ONNX Runtime when they convert exactly",
        )
    url = store or default_store_url(current_settings().home)
    opened = SqlStore(url)
    try:
        rows = opened.captures(deployment, limit=limit)
    finally:
        opened.close()
    if not rows:
        raise UserError(
            f"deployment '{deployment}' has no captured requests in the store",
            hint="serve it with `lockgate serve --capture-every N` (e.g. 100) on this store, send "
            "traffic, then replay",
        )
    source = resolve_source(to, expected_sha256=sha256, allow_unverified=allow_unverified)
    variant = load_variant(source, fast_path=fast_path, allow_unsafe=allow_unsafe_load)  # type: ignore[arg-type]
    predictor = variant.predictor
    report = replay(rows, predictor.predict, primary_output=predictor.primary_output)
    document = {
        "deployment": deployment,
        "candidate": {"uri": to, "model": source.name, "version": source.version},
        **report.to_dict(),
    }
    if as_json:
        print(json.dumps(document, indent=2))
        return
    table = Table(title=f"replay of '{deployment}' against {to} ({source.name} v{source.version})")
    table.add_column("measure")
    table.add_column("recorded", justify="right")
    table.add_column("candidate", justify="right")
    table.add_row("requests captured", str(report.captured), "")
    table.add_row("requests replayed", "", str(report.replayed))
    table.add_row("errors", str(report.recorded_errors), str(report.candidate_errors))
    labels, numbers, embeddings = document["labels"], document["numbers"], document["embeddings"]
    if labels is not None:
        table.add_row("labels compared", "", str(labels["compared"]))
        table.add_row("agreement", "", f"{labels['agreement']:.4f}")
        table.add_row("flip rate", "", f"{labels['flip_rate']:.4f}")
        for flip, count in labels["flips"].items():
            table.add_row(f"  flip {flip}", "", str(count))
    if numbers is not None:
        table.add_row("mean abs difference", "", _number(numbers["mean_abs_difference"]))
        table.add_row("max abs difference", "", _number(numbers["max_abs_difference"]))
    if embeddings is not None:
        table.add_row("mean cosine", "", f"{embeddings['mean_cosine']:.4f}")
        table.add_row("min cosine", "", f"{embeddings['min_cosine']:.4f}")
    latency = document["latency_ms"]
    if latency is not None:
        table.add_row("latency p50 (ms)", _number(latency["recorded_p50"]), _number(latency["candidate_p50"]))
        table.add_row("latency p99 (ms)", _number(latency["recorded_p99"]), _number(latency["candidate_p99"]))
    console.print(table)
    for who, count in sorted(report.recorded_by.items()):
        console.print(f"recorded from {escape(who)}: {count}")
    if report.first_error is not None:
        failed, first = report.candidate_errors, escape(report.first_error)
        console.print(f"[bold red]the candidate failed {failed} time(s)[/]; first: {first}")
