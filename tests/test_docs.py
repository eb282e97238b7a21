"""The operating docs cannot rot: every `lockgate ...` line in their bash blocks runs here.

Commands that need no server run in full from the repository root (their output is what the docs
show); the others, which talk to a running server, run as `--help` of the same command.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from lockgate.cli.main import app

ROOT = Path(__file__).parents[1]
DOCS = [
    "cost.md",
    "strategies.md",
    "lifecycle.md",
    "deployment-checklist.md",
    "runbook-template.md",
    "monitoring.md",
    "tools-comparison.md",
    "scale-out.md",
    "security.md",
    "team.md",
]
RUN_IN_FULL = {"plan", "plan-test", "simulate", "runbook", "checklist"}

Cli = Callable[..., tuple[int, str, str]]


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.splitlines():
                line = line.split(" #", 1)[0].strip()
                if line.startswith("lockgate "):
                    found.append((doc, shlex.split(line)[1:]))
    return found


def _command_path(args: list[str]) -> list[str]:
    group = typer.main.get_command(app)
    path: list[str] = []
    for token in args:
        commands = getattr(group, "commands", {})
        if token not in commands:
            break
        path.append(token)
        group = commands[token]
    return path


COMMANDS = _commands()


def test_each_new_doc_shows_commands() -> None:
    assert {doc for doc, _ in COMMANDS} == set(DOCS)


# `checklist SPEC` scores a whole project (the store, the gate's runs): seconds, so `slow`
_SLOW_COMMANDS = ("checklist",)


@pytest.mark.parametrize(
    "args",
    [pytest.param(a, marks=pytest.mark.slow) if a[0] in _SLOW_COMMANDS else a for _, a in COMMANDS],
    ids=[" ".join(a) for _, a in COMMANDS],
)
def test_the_command_runs(args: list[str], cli: Cli, lockgate_home: Path) -> None:
    # in a scratch copy of the example specs, so a command's --out never writes into the repository
    shutil.copytree(ROOT / "examples" / "specs", lockgate_home.parent / "examples" / "specs")
    path = _command_path(args)
    assert path, f"`lockgate {' '.join(args)}` is not a lockgate command"
    if path[0] in RUN_IN_FULL and "--help" not in args and "NAME" not in args and "SPEC" not in args:
        code, out, err = cli(*args)
    else:
        code, out, err = cli(*path, "--help")
    assert code == 0, err
    assert out


def test_the_cost_docs_show_the_commands_real_output(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "160")
    text = (ROOT / "docs" / "cost.md").read_text(encoding="utf-8")
    shown = text.split("```text\n", 1)[1].split("```", 1)[0]
    args = shlex.split(re.findall(r"```bash\n(lockgate plan .*?)\n```", text)[0])[1:]
    code, out, _ = cli(*args)
    assert code == 0
    assert [line.rstrip() for line in out.splitlines()] == [line.rstrip() for line in shown.splitlines()]


def test_the_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = [*sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "slides").glob("*.md"))]
    for page in [*pages, ROOT / "deploy" / "README.md"]:
        link = str(page.relative_to(ROOT))
        assert f"]({link})" in readme, f"README.md does not link {link}"
