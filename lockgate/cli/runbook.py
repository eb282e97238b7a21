"""``lockgate runbook DEPLOYMENT|SPEC``: a filled runbook for a deployment, from its live or written spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lockgate.cli.output import console, record_written
from lockgate.cli.target import StoreOption


def runbook_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="DEPLOYMENT|SPEC",
            help="A deployment's name (its live spec is read from the store) or a spec file (YAML).",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the runbook here (default: print it).")
    ] = None,
    owner: Annotated[
        list[str] | None,
        typer.Option("--owner", help="ROLE=NAME (or a name), repeatable: who owns and who is on call."),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="The server the commands should name (default $LOCKGATE_URL).")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Write a runbook for this deployment: owners, stages, thresholds, commands, where to look, alerts.

    The thresholds are the ones the controller will use (the spec's strategy and analysis section);
    the sections follow docs/runbook-template.md.

    Examples:

        lockgate runbook canary.yaml --owner owner=ana --owner on-call=li --out RUNBOOK.md

        lockgate runbook churn --store postgresql+psycopg://lockgate@db/lockgate
    """
    from lockgate.cli.target import resolve_spec
    from lockgate.rollout.runbook import render_runbook

    spec, _ = resolve_spec(target, store)
    text = render_runbook(spec, owners=owner or (), url=url)
    if out is None:
        print(text, end="")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"[green]wrote[/] {record_written(out)}")
