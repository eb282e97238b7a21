from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from lockgate.figures import state_machine_dot, transitions
from lockgate.rollout.controller import TRANSITIONS, Phase


def _edges(dot: str) -> set[tuple[str, str]]:
    return set(re.findall(r'^\s*"(\w+)" -> "(\w+)"', dot, re.M))


def test_the_dot_has_one_edge_per_allowed_move_and_no_other() -> None:
    expected = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    dot = state_machine_dot()
    assert _edges(dot) == expected
    assert len(transitions()) == len(expected)
    assert set(re.findall(r'^\s*"(\w+)" \[fillcolor', dot, re.M)) == {p.value for p in Phase}


def test_a_changed_table_changes_the_picture() -> None:
    table = {**TRANSITIONS, Phase.HALTED: frozenset({Phase.PAUSED})}
    assert ("halted", "paused") in _edges(state_machine_dot(table))
    assert ("halted", "promoted") not in _edges(state_machine_dot(table))


def test_ways_back_are_red() -> None:
    assert '"stepping" -> "rolled_back" [color="#dc2626"]' in state_machine_dot()


def test_graphviz_renders_it() -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz is not installed: scripts/install-graphviz installs it")
    svg = subprocess.run(
        [dot, "-Tsvg"], input=state_machine_dot(), capture_output=True, text=True, check=True
    )
    titles = set(re.findall(r"<title>(\w+)&#45;&gt;(\w+)</title>", svg.stdout))
    assert titles == set(transitions())
