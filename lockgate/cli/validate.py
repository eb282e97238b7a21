"""``lockgate validate``: the CI/CD gate on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console, record_written

if TYPE_CHECKING:
    from lockgate.gates.result import GateReport

__all__ = ["report_table", "validate_command"]

_STYLE = {"passed": "[green]✓ pass[/]", "failed": "[bold red]✗ FAIL[/]", "skipped": "[yellow]- skip[/]"}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    record_written(path)


def report_table(report: GateReport) -> Table:
    """The gate's table: each check, its result and its numbers."""
    from lockgate.gates.report import format_numbers

    table = Table(title=f"lockgate validate {report.model} against {report.baseline or 'no baseline'}")
    for column in ("", "check", "result", "numbers"):
        table.add_column(column)
    for result in report.results:
        table.add_row(
            _STYLE[result.status],
            escape(result.name),
            escape(result.message),
            escape(format_numbers(result.numbers)),
        )
    return table


def validate_command(
    model: Annotated[
        str,
        typer.Argument(
            help="NAME@VERSION, NAME@ALIAS, models:/NAME/VERSION, or a prompt: prompts:/NAME/VERSION."
        ),
    ],
    policy: Annotated[
        Path, typer.Option("--policy", "-p", help="The gate's policy file.", dir_okay=False)
    ] = Path("lockgate.yaml"),
    against: Annotated[
        str | None,
        typer.Option(
            help="Baseline: an alias of the same model (champion), NAME@VERSION, or 'none'. "
            "Default: the policy's `against:` (champion)."
        ),
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here (one testcase per check).")] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="Write a pull-request comment in Markdown here.")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Tag the model version with the verdict and log the report to its run.",
        ),
    ] = True,
    data_root: Annotated[
        Path | None,
        typer.Option(
            help="A folder holding the holdout data, when it is not where its snapshot recorded it "
            "(relative to this project)."
        ),
    ] = None,
) -> None:
    """Check a model version against a policy before it ships; exit 0 pass, 1 a check failed, 2 bad input.

    Checks (as the policy asks): metric thresholds on a holdout, non-inferiority to the champion
    (McNemar, paired bootstrap), slices, signature compatibility, latency and size budgets, data
    against the training profile, prediction drift, provenance, text accuracy and embedding recall@k
    on bundled evaluation sets; for a prompt version (prompts:/NAME/VERSION), the `prompt:` check on
    an evaluation set against the champion prompt; for a generative model or a prompt version, the
    `generation:` check (exact match, ROUGE-L, an LLM judge) against the champion's answers.

    Example:  lockgate validate breast-cancer-classifier@2 --policy lockgate.yaml --junit gate.xml

    Example:  lockgate validate prompts:/support-answer/2 --policy prompt-gate.yaml
    """
    from lockgate.errors import CheckFailed, LockgateError
    from lockgate.gates.gate import record_report, validate
    from lockgate.gates.policy import load_policy
    from lockgate.gates.report import error_junit_xml, to_json, to_junit_xml, to_markdown
    from lockgate.tracking.connection import connect

    is_prompt = model.startswith("prompts:/")
    try:
        parsed = load_policy(policy)
        conn = connect()
        with console.status(f"validating {model}..."):
            if "generation" in parsed.kinds:
                from lockgate.llm.gate import validate_generation

                report = validate_generation(
                    conn, model, parsed, against=against, base_dir=policy.parent, data_root=data_root
                )
            elif is_prompt:
                from lockgate.prompts.gate import validate_prompt

                report = validate_prompt(conn, model, parsed, against=against, base_dir=policy.parent)
            else:
                report = validate(conn, model, parsed, against=against, data_root=data_root)
    except LockgateError as exc:
        # the gate could not run (exit 2): CI still gets a JUnit file that says why
        if junit is not None:
            _write(junit, error_junit_xml(model, type(exc).__name__, exc.message, exc.hint))
        raise
    console.print(report_table(report))
    if junit is not None:
        _write(junit, to_junit_xml(report))
    if markdown is not None:
        _write(markdown, to_markdown(report))
    if json_path is not None:
        _write(json_path, to_json(report))
    artifact = None
    if record and is_prompt:
        from lockgate.prompts.gate import record_prompt_report

        record_prompt_report(conn, report)
    elif record:
        artifact = record_report(conn, report)
    counts = report.to_dict()["counts"]
    summary = (
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
        f"in {report.duration_s:.1f} s (policy {parsed.sha256[:12]})"
    )
    if artifact:
        summary += f"; report logged to the run as {artifact}"
    if report.passed:
        console.print(f"[bold green]PASS[/] {report.model}: {summary}")
        return
    names = ", ".join(r.name for r in report.failures)
    console.print(f"[bold red]FAIL[/] {report.model}: {summary}; failed: {escape(names)}")
    raise CheckFailed(f"{report.model} did not pass the gate: {names}")
