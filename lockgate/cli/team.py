"""``lockgate team``: the settings a team shares, in a file safe to commit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lockgate.cli.output import console
from lockgate.errors import Conflict, UserError

app = typer.Typer(help="Share one tracking server as a team.", no_args_is_help=True)

TEMPLATE = """\
# lockgate team settings: commit this file; it holds no secrets. Written by `lockgate team init`.
# Each teammate sets only their credentials in the environment (never in this file):
#   export MLFLOW_TRACKING_USERNAME=<you> MLFLOW_TRACKING_PASSWORD=<your password>
# (CI: the same two variables from the CI system's secret store.) The environment wins over this
# file: MLFLOW_TRACKING_URI and LOCKGATE_EXPERIMENT override the values below.
[team]
# the shared MLflow tracking server (see docs/team.md)
tracking_uri = "{tracking_uri}"
# where credentials come from (documentation for teammates; lockgate reads only the environment)
credentials = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment"
# the experiment runs go to; convention: one per project, shared; run names say what changed
experiment = "{experiment}"
# dataset paths are recorded relative to the folder of this file
"""


@app.command("init")
def init_command(
    tracking_uri: Annotated[
        str, typer.Option(help="The team's MLflow tracking server, http(s)://HOST:PORT.")
    ],
    experiment: Annotated[
        str | None, typer.Option(help="The experiment runs go to. Default: this folder's name.")
    ] = None,
    folder: Annotated[Path, typer.Option(help="The project's root folder.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing lockgate.toml.")] = False,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Ask the server first (with your credentials).")
    ] = True,
) -> None:
    """Write lockgate.toml: the tracking server and experiment a teammate needs, no secrets.

    Example:  lockgate team init --tracking-uri http://mlflow.internal:5000 --experiment churn
    """
    from urllib.parse import urlparse

    from lockgate.settings import TEAM_FILE
    from lockgate.tracking.connection import ask_server
    from lockgate.tracking.refs import validate_name

    parsed = urlparse(tracking_uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(
            f"tracking URI '{tracking_uri}' is not a server's http(s):// URL",
            hint="a team shares a server, e.g. http://mlflow.internal:5000 (see docs/team.md)",
        )
    if parsed.password or parsed.username:
        raise UserError(
            "the tracking URI holds credentials, and lockgate.toml is meant to be committed",
            hint="drop 'user:password@' from it; set MLFLOW_TRACKING_USERNAME/PASSWORD instead",
        )
    name = experiment or folder.resolve().name
    validate_name(name, "experiment name")
    path = folder / TEAM_FILE
    if path.exists() and not force:
        raise Conflict(f"'{path}' exists", hint="pass --force to replace it")
    if check:
        answer = ask_server(tracking_uri)
        console.print(
            f"server {answer.uri} answered: MLflow {answer.version or '?'}, "
            f"you are {answer.user or 'anonymous (no auth app)'}"
        )
    path.write_text(TEMPLATE.format(tracking_uri=tracking_uri.rstrip("/"), experiment=name), encoding="utf-8")
    console.print(f"[green]wrote[/] {path}: commit it; teammates set only their credentials")
