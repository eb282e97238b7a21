"""``lockgate pipeline run``: the stages from data to rollout, rerunning only what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console
from lockgate.errors import CheckFailed

__all__ = ["app"]

app = typer.Typer(
    help="Run a pipeline of stages, each skipped when its inputs and code are unchanged.",
    no_args_is_help=True,
)

_MARK = {"ran": "[green]✓ ran[/]", "skipped": "[dim]- skipped[/]", "failed": "[bold red]✗ FAILED[/]"}


@app.command("run")
def run_command(
    pipeline_file: Annotated[
        Path, typer.Argument(help="The pipeline file; its stages run in its folder.", dir_okay=False)
    ] = Path("pipeline.yaml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; run nothing.")] = False,
    force: Annotated[
        list[str] | None,
        typer.Option("--force", "-f", help="Run this stage even if unchanged (repeatable; '*' for all)."),
    ] = None,
) -> None:
    """Run the stages in order, skipping each whose command, code, inputs and outputs are unchanged.

    The lock file (default: next to the pipeline file) records each stage's digests after it succeeds,
    so after a failure the next run resumes at the stage that failed. Exit 0 when every stage
    succeeded or was skipped, 1 when a stage failed (its exit code is shown), 2 for a bad pipeline file.

    Example:  lockgate pipeline run examples/breast_cancer/pipeline.yaml --dry-run
    """
    from lockgate.pipeline import Decision, StageOutcome, load_pipeline, run_pipeline
    from lockgate.pipeline import dry_run as plan_run

    pipeline = load_pipeline(pipeline_file)
    forced = frozenset(force or ())
    if dry_run:
        table = Table(title=f"plan for {pipeline.source} (lock: {pipeline.lock_path.name})")
        for column in ("#", "stage", "plan", "why", "runs"):
            table.add_column(column)
        stages = dict(pipeline.stages)
        for index, decision in enumerate(plan_run(pipeline, force=forced), start=1):
            table.add_row(
                str(index),
                decision.stage,
                "[yellow]run[/]" if decision.should_run else "[dim]skip[/]",
                escape(decision.reason),
                escape(stages[decision.stage].action),
            )
        console.print(table)
        return

    def on_event(kind: str, index: int, total: int, stage: str, payload: Decision | StageOutcome) -> None:
        if kind == "start" and isinstance(payload, Decision) and payload.should_run:
            console.print(f"[bold cyan][{index}/{total}] {stage}[/]: running ({escape(payload.reason)})")
        elif isinstance(payload, StageOutcome):
            timing = f" in {payload.duration_s:.1f} s" if payload.status != "skipped" else ""
            console.print(
                f"[bold cyan][{index}/{total}] {stage}[/]: {_MARK[payload.status]}{timing}"
                + (f" ({escape(payload.reason)})" if payload.status != "ran" else "")
            )

    result = run_pipeline(pipeline, force=forced, on_event=on_event)
    counts = {status: sum(o.status == status for o in result.outcomes) for status in _MARK}
    summary = f"{counts['ran']} ran, {counts['skipped']} skipped"
    if result.is_ok:
        console.print(f"[bold green]pipeline done[/]: {summary}; lock file {pipeline.lock_path}")
        return
    failed = next(o for o in result.outcomes if o.status == "failed")
    console.print(
        f"[bold red]pipeline stopped[/]: stage '{failed.stage}' failed ({escape(failed.reason)}); {summary}. "
        "Fix it and run again: the stages that succeeded are skipped."
    )
    raise CheckFailed(f"stage '{failed.stage}' failed")
