"""``lockgate prompts``: prompt versions for LLM applications, on MLflow's prompt registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lockgate.cli.output import console, fmt_ms
from lockgate.errors import UserError

__all__ = ["app"]

app = typer.Typer(
    help="Prompt versions for LLM apps: register, list, show, diff, alias.", no_args_is_help=True
)


@app.command("register")
def register_command(
    name: Annotated[str, typer.Argument(help="Prompt name.")],
    template: Annotated[str | None, typer.Option(help="The template; {{variable}} marks an input.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="Read the template from this file.", dir_okay=False)
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="What changed.")] = None,
    alias: Annotated[str | None, typer.Option(help="Also point this alias (e.g. challenger) at it.")] = None,
) -> None:
    """Register a new version of prompt NAME (created on first use).

    Example:  lockgate prompts register support-answer --template 'Answer: {{question}}' --alias champion
    """
    from lockgate.prompts.registry import register_prompt
    from lockgate.tracking.connection import connect

    if (template is None) == (file is None):
        raise UserError("give exactly one of --template TEXT and --file PATH", hint="e.g. --file prompt.txt")
    if file is not None:
        if not file.is_file():
            raise UserError(f"template file '{file}' does not exist", hint="check the path")
        text = file.read_text(encoding="utf-8")
    else:
        text = str(template)
    v = register_prompt(connect(), name, text, message=message, alias=alias)
    extra = f", aliases {', '.join(v.aliases)}" if v.aliases else ""
    console.print(
        f"[green]registered[/] prompt {v.ref} (variables: {', '.join(v.variables) or 'none'}{extra})"
    )


@app.command("list")
def list_command(
    name: Annotated[str | None, typer.Argument(help="List this prompt's versions instead.")] = None,
) -> None:
    """List prompts (their latest version), or every version of prompt NAME.

    Example:  lockgate prompts list support-answer
    """
    from lockgate.prompts.registry import list_prompt_versions, list_prompts
    from lockgate.tracking.connection import connect

    conn = connect()
    rows = list_prompt_versions(conn, name) if name else list_prompts(conn)
    table = Table(title=f"versions of prompt {name}" if name else "prompts (latest version)")
    for column in ("prompt", "version", "aliases", "created", "message", "template"):
        table.add_column(column)
    for v in rows:
        first = v.template.strip().splitlines()[0] if v.template.strip() else ""
        table.add_row(
            v.name, str(v.version), ", ".join(v.aliases), fmt_ms(v.created_ms), escape(v.message),
            escape(first[:60] + ("…" if len(first) > 60 else "")),
        )  # fmt: skip
    console.print(table)


@app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, NAME@ALIAS or prompts:/NAME/VERSION.")],
) -> None:
    """Show one prompt version: its template, variables, aliases and tags (the gate's verdict).

    Example:  lockgate prompts show support-answer@champion
    """
    from lockgate.prompts.registry import get_prompt
    from lockgate.tracking.connection import connect

    v = get_prompt(connect(), ref)
    console.print(
        f"[bold]prompt {v.ref}[/]  aliases: {', '.join(v.aliases) or '-'}  created {fmt_ms(v.created_ms)}"
    )
    console.print(f"variables: {', '.join(v.variables) or 'none'}; message: {escape(v.message) or '-'}")
    for key, value in sorted(v.tags.items()):
        console.print(f"tag {escape(key)} = {escape(value)}")
    console.rule("template")
    console.print(escape(v.template), soft_wrap=True)


@app.command("diff")
def diff_command(
    old: Annotated[str, typer.Argument(help="The older version, e.g. support-answer@1 or @champion.")],
    new: Annotated[str, typer.Argument(help="The newer version, e.g. support-answer@2.")],
) -> None:
    """Show a unified diff of two prompt versions' templates.

    Example:  lockgate prompts diff support-answer@champion support-answer@2
    """
    from lockgate.prompts.registry import diff_prompts, get_prompt
    from lockgate.tracking.connection import connect

    conn = connect()
    before, after = get_prompt(conn, old), get_prompt(conn, new)
    text = diff_prompts(before, after)
    if not text:
        console.print(f"{before.ref} and {after.ref} have the same template")
        return
    for line in text.splitlines():
        style = (
            "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        console.print(f"[{style}]{escape(line)}[/]" if style else escape(line), soft_wrap=True)


@app.command("alias")
def alias_command(
    name: Annotated[str, typer.Argument(help="Prompt name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. champion.")],
    version: Annotated[int, typer.Argument(help="Version the alias should point at.")],
) -> None:
    """Point ALIAS of prompt NAME at VERSION (e.g. promote a prompt that passed its gate).

    Example:  lockgate prompts alias support-answer champion 2
    """
    from lockgate.prompts.registry import set_prompt_alias
    from lockgate.tracking.connection import connect

    v = set_prompt_alias(connect(), name, alias, version)
    console.print(f"prompt {name}@{alias} → version {v.version}")
