"""``lockgate runs ...`` at the widths people use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lockgate.cli import output

Cli = Callable[..., tuple[int, str, str]]


@pytest.mark.integration
@pytest.mark.parametrize("columns", [80, 150])
def test_runs_list_keeps_run_ids_whole_at_80_columns(
    cli: Cli,
    mlflow_home: Path,
    trained_run: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    """At 80 columns the ids were cut to 2 characters while commands need 6 (issue 20)."""
    run_id = trained_run(run_name="a-rather-long-run-name-that-has-to-wrap-somewhere")
    monkeypatch.setattr(output.console, "width", columns)
    code, out, _ = cli("runs", "list", "--limit", "3")
    assert code == 0
    assert run_id[:8] in out, out
    assert max(len(line) for line in out.splitlines()) <= columns
