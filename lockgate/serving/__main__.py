"""``python -m lockgate.serving MODEL_URI``: the ``lockgate serve`` command without the full CLI.

Errors print as the CLI prints them (``lockgate.cli.output.exit_with``: no traceback) and exit with
their exit code.
"""

from __future__ import annotations

import typer

from lockgate.cli.output import exit_with
from lockgate.cli.serve import serve_command
from lockgate.errors import LockgateError


def main() -> None:
    try:
        typer.run(serve_command)
    except LockgateError as exc:
        exit_with(exc)


if __name__ == "__main__":
    main()
