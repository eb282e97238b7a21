"""Rich consoles and small renderers the commands share."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from rich.console import Console

__all__ = ["console", "err_console", "fmt_ms", "fmt_value", "short"]


def _width() -> int | None:
    # Tables read better wider than Rich's 80-column default when output is piped (CI logs, docs).
    return None if os.environ.get("COLUMNS") else 150


console = Console(width=_width(), highlight=False)
err_console = Console(stderr=True, width=_width(), highlight=False)


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
