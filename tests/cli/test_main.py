"""The CLI as a user meets it: help with examples, real output, and exit code 2 for bad input."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from lockgate.cli.main import app

Cli = Callable[..., tuple[int, str, str]]


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        if hasattr(cmd, "commands"):
            paths.extend([name, sub] for sub in cmd.commands)
        else:
            paths.append([name])
    return paths


def test_root_help_shows_examples(cli: Cli) -> None:
    code, out, _ = cli("--help")
    assert code == 0
    assert "Examples" in out and "lockgate quickstart" in out


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p))
def test_every_command_help_has_an_example(cli: Cli, path: list[str]) -> None:
    code, out, _ = cli(*path, "--help")
    assert code == 0
    assert "Example" in out, f"`lockgate {' '.join(path)} --help` shows no example"


def test_info_names_sources(cli: Cli, lockgate_home: Path) -> None:
    code, out, _ = cli("info", "--json")
    assert code == 0
    assert '"source": "LOCKGATE_HOME"' in out
    assert str(lockgate_home) in out


def test_usage_error_is_exit_2(cli: Cli) -> None:
    code, _, err = cli("runs", "compare")
    assert code == 2
    assert "Traceback" not in err


def _assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("error:")
    for needle in needles:
        assert needle in err, err


def test_unreachable_tracking_uri_names_it(
    cli: Cli, lockgate_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    code, _, err = cli("runs", "list")
    # an outage, not bad input: exit code 3 (retry later), same message shape
    assert code == 3, err
    assert err.startswith("error:") and "Traceback" not in err
    for needle in ("http://127.0.0.1:9", "cannot be reached", "hint:"):
        assert needle in err, err


def test_unknown_scheme(cli: Cli, lockgate_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "gopher://x")
    code, _, err = cli("models", "list")
    _assert_user_error(code, err, "gopher")


@pytest.mark.integration
def test_bad_input_end_to_end(
    cli: Cli,
    mlflow_home: Path,
    tmp_path: Path,
    unique: str,
    trained_run: Callable[..., str],
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    model = f"m-{unique}"

    code, out, _ = cli("data", "snapshot", str(data), "--name", f"d-{unique}")
    assert code == 0 and f"d-{unique}@1" in out
    code, out, _ = cli("data", "snapshot", str(data), "--name", f"d-{unique}")
    assert code == 0 and "unchanged" in out

    _assert_user_error(
        *cli("data", "snapshot", str(tmp_path / "missing.csv"), "--name", "x")[::2],
        "does not exist",
    )
    _assert_user_error(*cli("data", "snapshot", str(data), "--name", "bad name")[::2], "is not valid")
    _assert_user_error(*cli("data", "show", f"d-{unique}@4")[::2], "has no version 4")

    run_id = trained_run(datasets=(f"d-{unique}@1",))
    code, out, _ = cli("register", run_id[:10], "--name", model, "--alias", "champion")
    assert code == 0 and f"{model}@1" in out

    _assert_user_error(*cli("register", "0" * 32, "--name", model)[::2], "not found")
    _assert_user_error(*cli("models", "show", f"nope-{unique}")[::2], "is not registered")
    _assert_user_error(*cli("lineage", f"{model}@7")[::2], "has no version 7; versions are 1")
    _assert_user_error(*cli("lineage", f"{model}@ghost")[::2], "has no alias 'ghost'")
    _assert_user_error(*cli("alias", "set", model, "latest", "1")[::2], "alias 'latest' is not valid")
    _assert_user_error(*cli("reproduce", "0" * 32)[::2], "not found")

    code, out, _ = cli("lineage", f"{model}@champion")
    assert code == 0 and f"d-{unique}@1" in out and "this version" in out

    code, out, _ = cli("reproduce", run_id)
    assert code == 0 and "matches the recorded digests" in out
    data.write_text("a,b\n9,9\n")
    _assert_user_error(*cli("reproduce", run_id)[::2], "does not match the run", "changed")


@pytest.mark.integration
def test_runs_compare_formats(
    cli: Cli, mlflow_home: Path, tmp_path: Path, trained_run: Callable[..., str]
) -> None:
    a, b = trained_run("a", c=1.0), trained_run("b", c=0.01)
    code, out, _ = cli("runs", "compare", a, b, "--format", "markdown", "--only-changed")
    assert code == 0
    assert out.startswith("| kind | key |")
    assert "★" in out and "| param | C (changed) |" in out
    code, out, _ = cli("runs", "compare", a, b, "--format", "json", "--plot", str(tmp_path / "p.png"))
    assert code == 0 and '"key": "accuracy"' in out
    assert (tmp_path / "p.png").exists()
    code, out, _ = cli("runs", "diff", a, b)
    assert code == 0 and "params" in out


_LITERAL_BRACKETS = re.compile(r"(\w)\\?\[([a-z][a-z,_-]*)\]")


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p))
def test_help_shows_square_brackets_literally(cli: Cli, path: list[str]) -> None:
    """Rich markup ate "[ray]" from "pip install 'lockgate[ray]'" (issue 20): an extra, an index
    or a default written in brackets must reach the reader as written."""
    root = typer.main.get_command(app)
    command = root
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    wanted = {f"{m[1]}[{m[2]}]" for text in texts for m in _LITERAL_BRACKETS.finditer(text)}
    code, out, _ = cli(*path, "--help")
    assert code == 0
    for literal in wanted:
        assert literal in out, (literal, out)


def test_help_loads_no_heavy_library() -> None:
    """`lockgate --help` took 2.5-3 s when every command module imported its stack at the top
    (issue 20): the commands import numpy, scipy, MLflow and the server when they run."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from lockgate.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('numpy', 'scipy', 'mlflow', 'pandas', 'sklearn', 'sqlalchemy', 'uvicorn',\n"
        "         'lockgate.tracking')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]


def test_serve_takes_the_servers_default_body_limit() -> None:
    import inspect

    from lockgate.cli.serve import serve_command
    from lockgate.serving.app import DEFAULT_MAX_BODY_BYTES

    assert inspect.signature(serve_command).parameters["max_body_bytes"].default == DEFAULT_MAX_BODY_BYTES
