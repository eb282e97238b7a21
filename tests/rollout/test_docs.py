"""docs/rollouts.md stays true: its diagram is the transition table, its example runs as printed."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from lockgate.rollout import TRANSITIONS, Phase

DOC = (Path(__file__).parents[2] / "docs" / "rollouts.md").read_text(encoding="utf-8")


def test_the_phase_diagram_is_the_transition_table() -> None:
    [diagram] = re.findall(r"```mermaid\n(.*?)```", DOC, re.S)
    edges = set(re.findall(r"^\s+(\w+) --> (\w+)$", diagram, re.M))
    table = {(a.value, b.value) for a in Phase for b in TRANSITIONS[a]}
    assert edges == table


def test_the_simulate_example_prints_what_the_doc_shows() -> None:
    example = re.findall(r"```python\n(.*?)```", DOC, re.S)[-1]
    shown = DOC.split("prints (with `seed=1`):\n\n```\n", 1)[1].split("```", 1)[0]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example, "docs/rollouts.md", "exec"), {})
    assert output.getvalue().rstrip() == shown.rstrip()
    assert "promoted" in shown
    assert "rolled_back" in shown


def test_the_spec_mistake_example_is_what_load_spec_reports(tmp_path: Path) -> None:
    from lockgate.errors import ValidationError, render
    from lockgate.rollout import load_spec

    example = (Path(__file__).parents[2] / "examples" / "specs" / "canary.yaml").read_text(encoding="utf-8")
    (tmp_path / "canary.yaml").write_text(example.replace("weight_percent: 50", "weight_percent: 150"))
    shown = DOC.split("the fix (exit code 2), e.g.\n\n```\n", 1)[1].split("```", 1)[0]
    with pytest.raises(ValidationError) as info:
        load_spec(tmp_path / "canary.yaml")
    assert "\n".join(render(info.value)) + "\n" == shown  # as the CLI prints it
