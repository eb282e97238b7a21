"""Every image the decks and docs show exists, is made by the build (scripts/figures.py, `make
figures`) from a source or a command in this repository, and says what its source says.

The diagrams and the command figures are rendered again here into a scratch folder (Graphviz and a
few one-second lockgate commands, about 15 s); the quickstart-based figures (runs compare, optimize)
only in `make figures`. Graphviz comes from scripts/install-graphviz; the re-rendering tests skip
only where it cannot be installed (not root, no apt-get).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lockgate.figures import transitions

ROOT = Path(__file__).parents[1]
IMAGES = ROOT / "docs" / "images"
PAGES = [
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "slides").glob("*.md")),
    ROOT / "README.md",
]
# images made by something other than scripts/figures.py, and what makes them
MADE_ELSEWHERE = {"dashboard.png": "the browser test, tests/serving/test_dashboard.py (its screenshot)"}


def _figures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("figures_script", ROOT / "scripts" / "figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIGURES = _figures()


def _referenced() -> list[tuple[str, str]]:
    """(page, target) for every Markdown image of the docs, the decks and the README."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
            found.append((str(page.relative_to(ROOT)), target))
    return found


REFERENCED = _referenced()


def _texts(svg: str) -> list[str]:
    return sorted(re.findall(r"<text[^>]*>([^<]*)</text>", svg))


def _graphviz() -> None:
    found = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-graphviz")], capture_output=True, text=True, timeout=600
    )
    if found.returncode == 3:
        pytest.skip(f"no Graphviz: {found.stderr.strip()}")
    assert found.returncode == 0, found.stderr


def test_the_pages_show_images() -> None:
    pages = {page for page, _ in REFERENCED}
    for page in ("docs/lifecycle.md", "docs/strategies.md", "docs/statistics.md", "docs/optimization.md"):
        assert page in pages


@pytest.mark.parametrize(("page", "target"), REFERENCED, ids=[f"{p}:{t}" for p, t in REFERENCED])
def test_each_image_exists_and_the_build_makes_it(page: str, target: str) -> None:
    path = (ROOT / page).parent / target
    assert path.is_file(), f"{page} shows {target}, which does not exist"
    name = path.name
    assert path.resolve() == (IMAGES / name).resolve(), f"{page} shows {target}, outside docs/images"
    assert name in FIGURES.images() or name in MADE_ELSEWHERE, f"{name} is made by nothing in the build"


def test_the_build_makes_only_images_that_exist() -> None:
    missing = sorted(name for name in FIGURES.images() if not (IMAGES / name).is_file())
    assert not missing, "run `make figures` and commit docs/images"


def test_each_diagram_has_its_source() -> None:
    kinds = FIGURES.images()
    for name, kind in kinds.items():
        if kind == "diagram":
            assert (ROOT / "docs" / "diagrams" / name).with_suffix(".dot").is_file()
    assert kinds["rollout-states.svg"] == "generated"


def test_the_state_machine_diagram_shows_every_transition_of_the_controller() -> None:
    svg = (IMAGES / "rollout-states.svg").read_text(encoding="utf-8")
    drawn = set(re.findall(r"<title>(\w+)&#45;&gt;(\w+)</title>", svg))
    assert drawn == set(transitions()), "run `make figures`: the controller's table changed"


@pytest.mark.slow  # Graphviz renders every diagram
def test_the_diagrams_rendered_again_say_what_the_committed_ones_say(tmp_path: Path) -> None:
    _graphviz()
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "figures.py"), "--out", str(tmp_path), "--only", "diagrams"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(n for n, k in FIGURES.images().items() if k in ("diagram", "generated"))
    for name in made:
        fresh, committed = (tmp_path / name).read_text(), (IMAGES / name).read_text()
        assert _texts(fresh) == _texts(committed), f"docs/images/{name} is stale: run `make figures`"


@pytest.mark.slow  # runs the commands that draw figures (~15 s)
def test_the_command_figures_rendered_again_say_what_the_committed_ones_say(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "figures.py"), "--out", str(tmp_path), "--only", "commands"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for name in FIGURES.COMMANDS:
        fresh, committed = (tmp_path / name).read_text(), (IMAGES / name).read_text()
        assert _texts(fresh) == _texts(committed), f"docs/images/{name} is stale: run `make figures`"
