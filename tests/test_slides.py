"""The teaching decks (docs/slides/) follow their lesson plans, show only real commands, and render.

Rendering runs `make slides` (Marp CLI pinned in docs/slides/package-lock.json, `npm ci` on first
use, about 10 s; then about 1 s a run) into a scratch folder; it is skipped only where node or npm is
missing.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
import yaml

from lockgate.cli.main import app

ROOT = Path(__file__).parents[1]
SLIDES = ROOT / "docs" / "slides"
DECKS = ["mlops-fundamentals", "model-deployment"]
# what each lesson plan (Category 7.1 and 7.2) asks the slides to cover
TOPICS = {
    "mlops-fundamentals": [
        "lifecycle",
        "DevOps vs MLOps",
        "Versioning",
        "Experiment tracking",
        "Weights & Biases",
        "Neptune",
        "CI/CD",
        "checklist",
        "LLM",
        "Discussion",
        "Resources",
    ],
    "model-deployment": [
        "Blue-green",
        "Canary",
        "Rolling",
        "Shadow",
        "serverless",
        "container",
        "Kubernetes",
        "quantization",
        "pruning",
        "distillation",
        "A/B testing",
        "statistical significance",
        "Rollback procedures",
        "Cost implications",
        "checklist",
        "runbook",
        "Discussion",
        "Resources",
    ],
}

Cli = Callable[..., tuple[int, str, str]]


def _text(deck: str) -> str:
    return (SLIDES / f"{deck}.md").read_text(encoding="utf-8")


def _slides(deck: str) -> list[str]:
    body = _text(deck).split("---\n", 2)[2]
    return [s for s in re.split(r"\n---\n", body) if s.strip()]


def _command_path(args: list[str]) -> list[str]:
    """The lockgate (sub)command that ``args`` starts with, as in tests/test_docs.py."""
    group = typer.main.get_command(app)
    path: list[str] = []
    for token in args:
        commands = getattr(group, "commands", {})
        if token not in commands:
            break
        path.append(token)
        group = commands[token]
    return path


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for deck in DECKS:
        for block in re.findall(r"```bash\n(.*?)```", _text(deck), re.S):
            for line in block.splitlines():
                line = line.split(" #", 1)[0].strip()
                if line.startswith("lockgate "):
                    found.append((deck, shlex.split(line)[1:]))
    return found


COMMANDS = _commands()


@pytest.mark.parametrize("deck", DECKS)
def test_each_deck_is_marp_with_diagrams_demos_and_exercises(deck: str) -> None:
    front = yaml.safe_load(_text(deck).split("---\n", 2)[1])
    assert front["marp"] is True
    slides = _slides(deck)
    assert len(slides) >= 15
    # diagrams are ```text blocks: Marp renders no mermaid
    assert sum(s.count("```text") for s in slides) >= 3
    assert any(re.search(r"^## Demo", s, re.M) for s in slides)
    assert any("## Exercises" in s for s in slides)


@pytest.mark.parametrize("deck", DECKS)
def test_each_deck_covers_its_lesson_plan(deck: str) -> None:
    text = _text(deck)
    missing = [topic for topic in TOPICS[deck] if topic.lower() not in text.lower()]
    assert not missing


def test_the_decks_show_lockgate_commands() -> None:
    assert {deck for deck, _ in COMMANDS} == set(DECKS)


@pytest.mark.parametrize("args", [a for _, a in COMMANDS], ids=[" ".join(a) for _, a in COMMANDS])
def test_each_command_on_a_slide_exists(args: list[str], cli: Cli) -> None:
    path = _command_path(args)
    assert path, f"`lockgate {' '.join(args)}` is not a lockgate command"
    code, out, err = cli(*path, "--help")
    assert code == 0, err
    assert out


def test_the_docs_the_decks_point_to_exist() -> None:
    for deck in DECKS:
        for doc in re.findall(r"`((?:docs|deploy|examples|benchmarks)/[\w./-]+)`", _text(deck)):
            assert (ROOT / doc).exists(), f"{deck} points to {doc}, which does not exist"


def test_make_slides_renders_both_decks(tmp_path: Path) -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed: `make slides` needs them (Marp CLI comes from npm)")
    result = subprocess.run(
        ["make", "-s", "slides", f"SLIDES_OUT={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for deck in DECKS:
        html = (tmp_path / f"{deck}.html").read_text(encoding="utf-8")
        totals = set(re.findall(r'data-marpit-pagination-total="(\d+)"', html))
        assert totals == {str(len(_slides(deck)))}, "every slide of the Markdown is in the HTML"
