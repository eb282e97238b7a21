"""docs/architecture.md's package table is the rule: every import between lockgate's packages is
one the table allows, and the core never reaches a shell."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lockgate"
# entry points that share the CLI's code on purpose (docs/architecture.md says why)
ENTRY_POINTS = {"lockgate.serving.__main__"}


def _allowed() -> dict[str, set[str] | None]:
    """package → the packages it may import (None: anything), from the doc's table."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", text, re.M)
    allowed: dict[str, set[str] | None] = {}
    for name, may in rows:
        may = may.strip()
        allowed[name] = (
            None
            if may == "anything"
            else (set() if may == "nothing" else {m.strip() for m in may.split(",")})
        )
    return allowed


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "lockgate" or n.startswith("lockgate.")}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_table_names_every_package() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {"errors", "settings", "config"}
    assert packages | modules <= set(_allowed())


def test_every_import_between_packages_is_one_the_table_allows() -> None:
    allowed = _allowed()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        source = _package(module)
        if source not in allowed or module in ENTRY_POINTS:
            continue  # quickstart, testing, the public API: shells over everything
        may = allowed[source]
        for target in sorted(_imports(path)):
            to = _package(target)
            if to in ("", source) or may is None or to in may:
                continue
            wrong.append(f"{module} imports {target} ({source} may import {sorted(may)})")
    assert not wrong, "\n".join(wrong)


def test_the_core_imports_no_shell_library() -> None:
    shells = ("mlflow", "httpx", "uvicorn", "typer", "rich", "sqlalchemy")
    for package in ("stats", "rollout"):
        for path in (PACKAGE / package).rglob("*.py"):
            if path.name == "sqlstore.py" or "migrations" in path.parts:
                continue  # the SQL store: a shell that lives with the store protocol it implements
            heavy = {n.split(".")[0] for n in _third_party(path)} & set(shells)
            assert not heavy, f"{_module(path)} imports {sorted(heavy)}"


def _third_party(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names
