"""``lockgate runbook SPEC.yaml``: a filled runbook for a deployment, from its spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lockgate.cli.output import console


def runbook_command(
    spec_file: Annotated[Path, typer.Argument(help="The deployment spec (YAML).")],
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
) -> None:
    """Write a runbook for this deployment: owners, stages, thresholds, commands, where to look, alerts.

    The thresholds are the ones the controller will use (the spec's strategy and analysis section);
    the sections follow docs/runbook-template.md.

    Example:  lockgate runbook canary.yaml --owner owner=ana --owner on-call=li --out RUNBOOK.md
    """
    from lockgate.rollout.runbook import render_runbook
    from lockgate.rollout.spec import load_spec

    text = render_runbook(load_spec(spec_file), owners=owner or (), url=url)
    if out is None:
        print(text, end="")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"[green]wrote[/] {out}")
