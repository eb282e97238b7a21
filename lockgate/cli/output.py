"""Rich consoles and small renderers the commands share."""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

from lockgate.errors import LockgateError, UserError, render

__all__ = [
    "console",
    "err_console",
    "exit_with",
    "fmt_duration",
    "fmt_ms",
    "fmt_value",
    "parse_rate",
    "record_written",
    "short",
]


def _width() -> int | None:
    # Tables read better wider than Rich's 80-column default when output is piped (CI logs, docs).
    return None if os.environ.get("COLUMNS") else 150


console = Console(width=_width(), highlight=False)
err_console = Console(stderr=True, width=_width(), highlight=False)


def exit_with(exc: LockgateError) -> NoReturn:
    """Print ``exc`` as :func:`lockgate.errors.render` words it (label and hint in bold) and exit with
    its exit code: the one place the command line and ``python -m lockgate.serving`` report errors."""
    for i, line in enumerate(render(exc)):
        label, _, text = line.partition(": ")
        style = "bold red" if i == 0 else "bold"
        err_console.print(f"[{style}]{label}:[/] {escape(text)}")
    sys.exit(exc.exit_code)


def fmt_ms(timestamp_ms: int | None) -> str:
    """A millisecond epoch timestamp as local 'YYYY-MM-DD HH:MM:SS'."""
    if not timestamp_ms:
        return "-"
    return dt.datetime.fromtimestamp(timestamp_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def short(text: str | None, length: int = 12) -> str:
    return (text or "-")[:length]


def parse_rate(text: str | None) -> float | None:
    """'200/s', '12000/min', '1e6/h' or a bare number (per second) -> requests per second."""
    if text is None:
        return None
    value, _, unit = text.strip().partition("/")
    seconds = {"": 1.0, "s": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}.get(unit.strip())
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if seconds is None or rate <= 0 or not math.isfinite(rate):
        raise UserError(
            f"--traffic '{text}' is not a request rate",
            hint="write it as a number per unit, e.g. 200/s, 12000/min or 1e6/h",
        )
    return rate / seconds


def fmt_duration(seconds: float) -> str:
    """Seconds as a short human duration: 90 s, 12.5 min, 3.2 h, 2.0 days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def record_written(path: Path) -> Path:
    """``path``, after noting that lockgate wrote it: a report or figure in the project does not make
    the next tracked run dirty while it holds what lockgate wrote (:mod:`lockgate.tracking.outputs`)."""
    from lockgate.tracking.outputs import record_output

    record_output(path)
    return path
