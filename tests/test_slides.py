"""The teaching decks (docs/slides/) follow their lesson plans, show only real commands, show
pictures instead of ASCII art, have presenter notes on every slide, and render to HTML and PDF.

Rendering runs `make slides` (Marp CLI pinned in docs/slides/package-lock.json, `npm ci` on first
use, about 10 s; the diagrams with Graphviz; the PDF with the Chromium of scripts/install-chromium)
into a scratch folder; it is skipped only where node or npm is missing, or Chromium or Graphviz
cannot be installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import zlib
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


def _images(slide: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\((images/[^)\s]+)\)", slide)


def _notes(slide: str) -> list[str]:
    """Presenter notes: the HTML comments that are not Marp directives (``<!-- _class: lead -->``)."""
    return [c for c in re.findall(r"<!--(.*?)-->", slide, re.S) if not re.match(r"\s*_?\w+:\s*\S+\s*$", c)]


@pytest.mark.parametrize("deck", DECKS)
def test_each_deck_is_marp_with_pictures_demos_and_exercises(deck: str) -> None:
    front = yaml.safe_load(_text(deck).split("---\n", 2)[1])
    assert front["marp"] is True
    slides = _slides(deck)
    assert len(slides) >= 15
    images = {image for s in slides for image in _images(s)}
    assert len(images) >= 8, images
    assert all((SLIDES / image).is_file() for image in images)  # docs/slides/images links to docs/images
    # no diagrams drawn with box and arrow characters: the pictures replaced them
    blocks = re.findall(r"```\w*\n(.*?)```", _text(deck), re.S)
    assert not [b for b in blocks if re.search(r"[─│┌┐└┘├▶◀▼▲]", b)]
    assert any(re.search(r"^## Demo", s, re.M) for s in slides)
    assert any("## Exercises" in s for s in slides)


@pytest.mark.parametrize("deck", DECKS)
def test_every_slide_has_presenter_notes(deck: str) -> None:
    bare = [s.strip().splitlines()[0] for s in _slides(deck) if not _notes(s)]
    assert not bare, f"slides without notes: {bare}"
    demos = [s for s in _slides(deck) if re.search(r"^## Demo", s, re.M)]
    assert all("lockgate" in " ".join(_notes(s)) or "make demo" in " ".join(_notes(s)) for s in demos)


def test_the_notes_parser_tells_directives_from_notes() -> None:
    assert _notes("<!-- _class: lead -->\n<!-- _paginate: false -->\n# Title") == []
    assert _notes("<!--\nSay: this, then run it.\n-->") == ["\nSay: this, then run it.\n"]


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


def _pdf_count(path: Path, pattern: bytes) -> int:
    """How often ``pattern`` occurs in a PDF, looking inside its compressed object streams too."""
    pdf = path.read_bytes()
    assert pdf.startswith(b"%PDF-")
    parts = [pdf]
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            parts.append(zlib.decompress(stream))
        except zlib.error:
            continue  # not Flate-compressed (fonts, images): no page objects there
    return sum(len(re.findall(pattern, part)) for part in parts)


@pytest.mark.slow  # Marp and Chromium (~15 s)
def test_make_slides_renders_both_decks_to_html_and_pdf(tmp_path: Path) -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed: `make slides` needs them (Marp CLI comes from npm)")
    for tool in ("install-chromium", "install-graphviz"):
        found = subprocess.run(
            ["bash", str(ROOT / "scripts" / tool)], capture_output=True, text=True, timeout=600
        )
        if found.returncode == 3:
            pytest.skip(f"`make slides` needs what scripts/{tool} installs: {found.stderr.strip()}")
    only_diagrams = ["FIGURES=diagrams", f"FIGURES_OUT={tmp_path / 'figures'}"]
    result = subprocess.run(
        # the suite runs after `make install`: -o keeps make from reinstalling from inside a test;
        # only the diagrams are redrawn (the figures of lockgate commands are checked in test_images.py)
        ["make", "-s", "-o", ".venv/.installed", "slides", f"SLIDES_OUT={tmp_path}", *only_diagrams],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for deck in DECKS:
        html = (tmp_path / f"{deck}.html").read_text(encoding="utf-8")
        count = len(_slides(deck))
        totals = set(re.findall(r'data-marpit-pagination-total="(\d+)"', html))
        assert totals == {str(count)}, "every slide of the Markdown is in the HTML"
        noted = {int(i) for i in re.findall(r'class="bespoke-marp-note" data-index="(\d+)"', html)}
        assert noted == set(range(count)), "every slide has presenter notes in the HTML"
        shown = set(re.findall(r'<img src="(images/[^"]+)"', html)) | set(
            re.findall(r"background-image:url\(&quot;(images/[^&]+)&quot;\)", html)
        )
        assert len(shown) >= 8 and all((tmp_path / image).is_file() for image in shown)
        pdf = tmp_path / f"{deck}.pdf"
        assert _pdf_count(pdf, rb"/Type\s*/Page(?![a-zA-Z])") == count
        assert _pdf_count(pdf, rb"/Subtype\s*/Text(?![a-zA-Z])") == count, "a note annotation on each page"
    drawn = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"lifecycle.svg", "canary.svg", "rollout-states.svg"} <= drawn, "make slides draws the diagrams"
