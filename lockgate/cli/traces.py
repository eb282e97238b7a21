"""``lockgate traces DEPLOYMENT``: the generations a server recorded as MLflow traces."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console, fmt_ms
from lockgate.errors import UserError

__all__ = ["traces_command"]


def traces_command(
    deployment: Annotated[str, typer.Argument(help="The deployment (or model) name the server served.")],
    limit: Annotated[int, typer.Option(help="How many recent traces to list.")] = 20,
    experiment: Annotated[
        str, typer.Option(help="The MLflow experiment the server wrote traces to.")
    ] = "lockgate-traces",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recent generations of DEPLOYMENT recorded as MLflow traces, newest first, with links
    to MLflow's UI when the tracking store is a server.

    A server records them when started with --trace-sample (e.g. 0.1 for one in ten).

    Example:  lockgate traces support --limit 5
    """
    from lockgate.llm.traces import list_traces
    from lockgate.tracking.connection import connect

    if limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit}", hint="e.g. --limit 20")
    rows = list_traces(connect(), deployment, limit=limit, experiment=experiment)
    if as_json:
        print(json.dumps([row.to_dict() for row in rows], indent=2, default=str))
        return
    if not rows:
        console.print(
            f"no traces of '{escape(deployment)}' in experiment '{escape(experiment)}': "
            "start the server with --trace-sample 0.1 (one generation in ten) and send it requests"
        )
        return
    table = Table(title=f"recent generations of {escape(deployment)}")
    for column in ("time", "variant", "model", "prompt", "tokens in/out", "ttft ms", "total ms", "status"):
        table.add_column(column)
    for row in rows:
        a = row.attributes
        table.add_row(
            fmt_ms(row.timestamp_ms), escape(row.tags.get("variant", "")), escape(row.tags.get("model", "")),
            escape(row.tags.get("prompt_version", "-")),
            f"{a.get('prompt_tokens', '?')}/{a.get('completion_tokens', '?')}",
            str(a.get("ttft_ms", "-")), f"{row.duration_ms:.1f}" if row.duration_ms is not None else "-",
            row.status,
        )  # fmt: skip
    console.print(table)
    links = [row.link for row in rows if row.link]
    if links:
        console.print(f"newest in MLflow's UI: {links[0]}")
