"""The ``lockgate`` command: one Typer app, and the one place errors become output."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate import __version__
from lockgate.cli import analyze, data, models, monitor, rollout, runs, stats, team, validate
from lockgate.cli import pipeline as pipeline_cli
from lockgate.cli import prompts as prompts_cli
from lockgate.cli.checklist import checklist_command
from lockgate.cli.cost import plan_command
from lockgate.cli.optimize import optimize_command
from lockgate.cli.output import console, exit_with, short
from lockgate.cli.replay import replay_command
from lockgate.cli.runbook import runbook_command
from lockgate.cli.serve import serve_command
from lockgate.cli.traces import traces_command
from lockgate.errors import LockgateError
from lockgate.settings import Settings

EPILOG = (
    "Examples:\n\n"
    "  lockgate quickstart --fresh              # the whole lifecycle on embedded defaults\n\n"
    "  lockgate data snapshot data.csv --name churn\n\n"
    "  lockgate runs compare 3f2a9c 81d0be --only-changed\n\n"
    "  lockgate register 3f2a9c --name churn --alias champion\n\n"
    "  lockgate validate churn@2 --policy lockgate.yaml --junit gate.xml"
)

app = typer.Typer(
    name="lockgate",
    help="Carry a model from experiment to production through gates: track, version, register, compare.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(models.models_app, name="models")
app.add_typer(models.alias_app, name="alias")
app.add_typer(monitor.app, name="monitor")
app.add_typer(rollout.app, name="rollout")
app.add_typer(pipeline_cli.app, name="pipeline")
app.add_typer(prompts_cli.app, name="prompts")
app.add_typer(team.app, name="team")
app.command("register")(models.register_command)
app.command("lineage")(models.lineage_command)
app.command("serve")(serve_command)
app.command("replay")(replay_command)
app.command("deploy")(rollout.deploy_command)
app.command("validate")(validate.validate_command)
app.command("optimize")(optimize_command)
app.command("plan-test")(stats.plan_test_command)
app.command("simulate-stats")(stats.simulate_stats_command)
app.command("simulate")(stats.simulate_command)
app.command("analyze")(analyze.analyze_command)
app.command("plan")(plan_command)
app.command("runbook")(runbook_command)
app.command("checklist")(checklist_command)
app.command("traces")(traces_command)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"lockgate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Carry a model from experiment to production through gates."""


@app.command("info")
def info_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the settings in force and where each came from.

    Example:  LOCKGATE_HOME=/tmp/lg lockgate info
    """
    import platform

    from lockgate.settings import current_settings

    settings = current_settings()
    rows = {k: (s.value, s.source) for k, s in settings.sources.items()}
    rows.update(_server_rows(settings))
    if as_json:
        doc = {k: {"value": value, "source": source} for k, (value, source) in rows.items()}
        doc["versions"] = {
            "value": f"lockgate {__version__}, python {platform.python_version()}",
            "source": "-",
        }
        print(json.dumps(doc, indent=2))
        return
    table = Table(title=f"lockgate {__version__} (python {platform.python_version()})")
    for col in ("setting", "value", "source"):
        table.add_column(col)
    for key, (value, source) in rows.items():
        table.add_row(key, escape(value), source)
    console.print(table)


def _server_rows(settings: Settings) -> dict[str, tuple[str, str]]:
    """For a tracking server: whether it answered, its version, the user it sees, where artifacts go."""
    from urllib.parse import urlparse

    from lockgate.tracking.connection import ask_server, tracking_user

    if urlparse(settings.tracking_uri).scheme not in ("http", "https"):
        return {}
    user = tracking_user()
    rows = {"user": (user or "(none set)", "MLFLOW_TRACKING_USERNAME" if user else "-")}
    try:
        answer = ask_server(settings.tracking_uri)
    except LockgateError as exc:
        rows["server"] = (f"did not answer as it should: {exc}", "asked now")
        return rows
    rows["server"] = (f"answered: MLflow {answer.version or '?'}", "asked now")
    if answer.user is not None:
        rows["user"] = (answer.user + (" (admin)" if answer.is_admin else ""), "the server")
    rows["artifact_root"] = (_artifact_location(settings), "the server")
    return rows


def _artifact_location(settings: Settings) -> str:
    """Where the configured experiment's artifacts go, as the server says; its rule if there is none."""
    from lockgate.tracking.connection import connect

    experiment = connect(settings).client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return "the server's default artifact root (experiment not created yet)"
    location = str(experiment.artifact_location)
    if location.startswith("mlflow-artifacts:"):
        return f"{location} (stored by the server: --serve-artifacts)"
    return location


@app.command("reproduce")
def reproduce_command(
    run: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    data_root: Annotated[
        Path | None,
        typer.Option(help="Look for the run's data files in this folder (default: LOCKGATE_DATA_ROOT)."),
    ] = None,
) -> None:
    """Show the exact commit, environment and data of a run, and verify the data on disk.

    Exits 2 when the data on disk does not match the recorded digests. A dataset the run linked
    without hashing its files (runs from before lockgate checked lineage) is shown as unverified.

    Example:  lockgate reproduce 3f2a9c
    """
    from lockgate.errors import IntegrityError
    from lockgate.tracking.connection import connect
    from lockgate.tracking.reproduce import plan_reproduction

    plan = plan_reproduction(connect(), run, data_root)
    console.print(f"[bold]run {plan.run.run_id}[/] '{plan.run.name}'")
    table = Table(title="what made this run")
    for col in ("", "recorded", "here and now", "match"):
        table.add_column(col)
    same_python = plan.python_recorded == plan.python_now
    same_pkgs = plan.packages_recorded == plan.packages_now
    table.add_row("commit", plan.commit or "none (not a git repository)", "", "")
    table.add_row("branch", plan.branch or "-", "", "")
    table.add_row("uncommitted changes", "yes" if plan.is_dirty else "no", "", "")
    table.add_row("python", plan.python_recorded or "-", plan.python_now, "✓" if same_python else "✗")
    table.add_row(
        "packages",
        short(plan.packages_recorded),
        short(plan.packages_now),
        "✓" if same_pkgs else "✗",
    )
    for check in plan.data:
        mark = {"ok": "✓", "unverified": "? unverified", "changed": "✗ changed", "missing": "✗ missing"}
        table.add_row(
            f"data {check.label}",
            short(check.recorded_digest),
            short(check.disk_digest),
            mark[check.status],
        )
    console.print(table)
    console.print("[bold]to reproduce:[/]")
    for command in plan.commands:
        console.print(f"  {command}")
    if not plan.is_data_ok:
        bad = [c for c in plan.data if c.status not in ("ok", "unverified")]
        raise IntegrityError(
            "the data on disk does not match the run: "
            + "; ".join(
                f"{c.label} at '{c.path}' is {c.status}" + (f" ({c.differences})" if c.differences else "")
                for c in bad
            ),
            hint="restore the recorded data (or point --data-root at a copy) before retraining",
        )
    if plan.unverified:
        names = ", ".join(c.label for c in plan.unverified)
        console.print(
            f"[yellow]unverified: {names}: the files on disk are the recorded version, but the run "
            "recorded the link without hashing what it read (a run from before lockgate checked "
            "lineage); retrain with lockgate.data.load or track(datasets=...) to verify it[/]"
        )
        return
    console.print("[green]the data on disk matches the recorded digests[/]")


@app.command("quickstart")
def quickstart_command(
    fresh: Annotated[bool, typer.Option("--fresh", help="Start from an empty LOCKGATE_HOME.")] = False,
    home: Annotated[Path | None, typer.Option(help="Use this folder as LOCKGATE_HOME.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for splits and models.")] = 42,
    llm: Annotated[
        bool,
        typer.Option(
            "--llm",
            help="The LLM walk-through instead: a tiny language model, OpenAI-compatible serving, "
            "traces, prompt versions gated offline and A/B-tested on live feedback.",
        ),
    ] = False,
) -> None:
    """Run the lifecycle on embedded defaults: dataset → tracked training → compare → registry.

    Example:  lockgate quickstart --fresh
    Example:  lockgate quickstart --llm --fresh
    """
    import os

    from lockgate.quickstart import Context, prepare_home, run_quickstart
    from lockgate.settings import current_settings

    if home is not None:
        os.environ["LOCKGATE_HOME"] = str(home.resolve())
    settings = current_settings()
    prepare_home(settings.home, is_fresh=fresh)
    console.print(f"[bold]lockgate quickstart[/] in {settings.home} (tracking: {settings.tracking_uri})")
    started = time.perf_counter()
    stages = None
    if llm:
        from lockgate.quickstart_llm import LLM_STAGES

        stages = LLM_STAGES
    ctx = run_quickstart(Context(settings=settings, console=console, seed=seed), stages)
    total = time.perf_counter() - started
    summary = Table(title="quickstart summary")
    summary.add_column("stage")
    summary.add_column("seconds", justify="right")
    for stage, seconds in ctx.timings_s.items():
        summary.add_row(stage, f"{seconds:.1f}")
    summary.add_row("[bold]total[/]", f"[bold]{total:.1f}[/]")
    console.print(summary)
    version = ctx.extras.get("champion_version")
    llm_version = ctx.extras.get("llm_version")
    if llm_version is not None:
        console.print(
            f"language model: [bold green]{llm_version.ref}[/]; next: `lockgate traces support-lm`, "
            "`lockgate prompts list`, docs/llm.md"
        )
    if version is not None:
        console.print(f"champion: [bold green]{version.ref}[/] ({ctx.champion})")
        console.print(
            "next: `lockgate models show breast-cancer-classifier`, "
            f"`lockgate lineage {version.ref}`, `lockgate runs list`"
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI; turn lockgate errors into a message and their exit code.

    Usage errors (a missing argument, an unknown option) are Click's: it prints them and exits 2.
    A refusal from a tracking server (401, 403) that no command turned into a lockgate error yet
    is one here too: a message naming the user and the fix, exit code 2, no traceback.
    """
    command = typer.main.get_command(app)
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="lockgate")
    except LockgateError as exc:
        exit_with(exc)
    except Exception as exc:
        translated = _server_refusal(exc)
        if translated is None:
            raise
        exit_with(translated)


def _server_refusal(exc: Exception) -> LockgateError | None:
    if not type(exc).__module__.startswith("mlflow"):
        return None  # not MLflow's: no need to import it to know
    from lockgate.settings import current_settings
    from lockgate.tracking.connection import server_error

    return server_error(exc, current_settings().tracking_uri, "do that")


if __name__ == "__main__":  # pragma: no cover
    main()
