"""``lockgate register``, ``alias``, ``models`` and ``lineage``: the registry with lineage."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from lockgate.cli.output import console, fmt_ms, short

models_app = typer.Typer(help="Registered models and their versions.", no_args_is_help=True)
alias_app = typer.Typer(help="Point aliases such as 'champion' at model versions.", no_args_is_help=True)


def register_command(
    run: Annotated[str, typer.Argument(help="Run id (or a unique prefix) that logged the model.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Registered model name.")],
    artifact: Annotated[str, typer.Option(help="Name the model was logged under in the run.")] = "model",
    parent: Annotated[str | None, typer.Option(help="NAME@VERSION this model was derived from.")] = None,
    alias: Annotated[str | None, typer.Option(help="Also point this alias at the new version.")] = None,
    description: Annotated[str, typer.Option(help="A note kept with the version.")] = "",
) -> None:
    """Register a run's model as a new version, with lineage and an artifact checksum.

    Example:  lockgate register 3f2a9c --name breast-cancer-classifier --alias challenger
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import register

    v = register(connect(), run, name, artifact=artifact, parent=parent, alias=alias, description=description)
    console.print(
        f"[green]registered[/] {v.ref}  (run {short(v.run_id, 8)}, sha256 {short(v.artifact_sha256)}"
        + (f", parent {v.parent}" if v.parent else "")
        + (f", aliases {', '.join(v.aliases)}" if v.aliases else "")
        + ")"
    )


@alias_app.command("set")
def alias_set_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. champion or challenger.")],
    version: Annotated[int, typer.Argument(help="Version number the alias should point at.")],
) -> None:
    """Point ALIAS of model NAME at VERSION (moving it if it pointed elsewhere).

    Example:  lockgate alias set breast-cancer-classifier champion 2
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import set_alias

    v = set_alias(connect(), name, alias, version)
    console.print(f"{name}@{alias} → version {v.version}")


@alias_app.command("delete")
def alias_delete_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to remove.")],
) -> None:
    """Remove an alias.

    Example:  lockgate alias delete breast-cancer-classifier challenger
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import delete_alias

    delete_alias(connect(), name, alias)
    console.print(f"removed alias {alias} of {name}")


@models_app.command("list")
def models_list_command() -> None:
    """List registered models with their latest version and aliases.

    Example:  lockgate models list
    """
    from lockgate.cli.registry_index import models_in
    from lockgate.settings import current_settings

    # a local SQLite registry is read directly (read-only), without MLflow's 2-3 s import
    models = models_in(current_settings().registry_uri)
    if models is None:
        from lockgate.tracking.connection import connect
        from lockgate.tracking.registry import list_models

        models = list_models(connect())
    if not models:
        console.print("no registered models yet; register one with `lockgate register RUN --name NAME`")
        return
    table = Table(title="registered models")
    for col in ("model", "versions", "latest", "aliases", "updated"):
        table.add_column(col)
    for m in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in m["aliases"].items()) or "-"
        table.add_row(m["name"], str(m["versions"]), str(m["latest"]), aliases, fmt_ms(m["updated_ms"]))
    console.print(table)


@models_app.command("show")
def models_show_command(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
) -> None:
    """Show every version of a model: run, aliases, checksum, parent and method.

    Example:  lockgate models show breast-cancer-classifier
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.refs import dataset_label
    from lockgate.tracking.registry import list_versions

    versions = list_versions(connect(), name)
    table = Table(title=f"model {name}")
    for col in ("version", "aliases", "created", "run", "method", "parent", "data", "sha256"):
        table.add_column(col)
    for v in versions:
        data = ", ".join(dataset_label(d) for d in v.datasets) or "-"
        table.add_row(
            str(v.version),
            ", ".join(v.aliases) or "-",
            fmt_ms(v.created_ms),
            short(v.run_id, 8),
            v.method,
            v.parent or "-",
            data,
            short(v.artifact_sha256),
        )
    console.print(table)


def lineage_command(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (or NAME@ALIAS).")],
) -> None:
    """Print the tree dataset → run → model version → derived versions.

    Example:  lockgate lineage breast-cancer-classifier@1
    """
    from lockgate.tracking.connection import connect
    from lockgate.tracking.refs import dataset_label
    from lockgate.tracking.registry import LineageNode, get_model_version, lineage
    from lockgate.tracking.runs import get_run

    conn = connect()
    target = get_model_version(conn, ref)
    ancestors, root = lineage(conn, ref)
    base = ancestors[0]
    tree = Tree(f"[bold]lineage of {target.ref}[/]")
    data_nodes = [
        tree.add(
            f"dataset {dataset_label(d)}  digest {short(str(d.get('digest')))}  ({d.get('context')})"
            + ("" if d.get("verified") else "  [yellow]unverified[/]")
        )
        for d in base.datasets
    ] or [tree.add("dataset: none recorded")]
    run_label = "run: none"
    if base.run_id:
        run = get_run(conn, base.run_id)
        commit = run.data.tags.get("lockgate.git.commit", "none")
        run_label = f"run {base.run_id[:8]} '{run.info.run_name}'  commit {short(commit, 8)}"
    run_node = data_nodes[-1].add(run_label)

    def add(parent: Tree, node: LineageNode) -> None:
        v = node.version
        mark = " [bold green]◀ this version[/]" if v.ref == target.ref else ""
        aliases = escape(f" [{', '.join(v.aliases)}]") if v.aliases else ""
        label = f"model {v.ref}{aliases}  {v.method}  sha256 {short(v.artifact_sha256)}{mark}"
        branch = parent.add(label)
        for child in node.children:
            add(branch, child)

    add(run_node, root)
    console.print(tree)
