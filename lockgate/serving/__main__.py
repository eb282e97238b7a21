"""``python -m lockgate.serving MODEL_URI``: the ``lockgate serve`` command without the full CLI.

Errors a user can cause print one line (no traceback) and exit with their exit code.
"""

from __future__ import annotations

import sys

import typer

from lockgate.cli.serve import serve_command
from lockgate.errors import LockgateError


def main() -> None:
    try:
        typer.run(serve_command)
    except LockgateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
