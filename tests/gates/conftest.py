"""A registry with a champion and three candidates, built once per session with the example's own code.

The models are trained by ``examples/breast_cancer/train.py`` inside a throwaway git repository (so
provenance has a commit and a clean tree), on the session's shared MLflow store, under unique names.
"""

from __future__ import annotations

import importlib.util
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lockgate_example_train", EXAMPLE_DIR / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class GateWorld:
    name: str
    train_ref: str
    holdout_ref: str
    champion: str
    equal: str
    worse: str
    renamed: str
    repo: Path
    experiment: str

    def policy(self, **replace: str) -> str:
        """The example's policy on this world's datasets, with a latency budget no machine misses."""
        text = (EXAMPLE_DIR / "lockgate.yaml").read_text()
        text = text.replace("breast-cancer-holdout@1", self.holdout_ref)
        text = text.replace("latency_p95_ms: 50 ", "latency_p95_ms: 60000\n    requests: 20\n    repeats: 1 ")
        for old, new in replace.items():
            assert old in text, old
            text = text.replace(old, new)
        return text


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=gate", "-c", "user.email=gate@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def gate_world(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    suffix = uuid.uuid4().hex[:8]
    base = tmp_path_factory.mktemp("gate-world")
    repo = base / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "init")
    experiment = f"gates-{suffix}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOCKGATE_HOME", str(shared_home))
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LOCKGATE_ARTIFACT_ROOT"):
            mp.delenv(var, raising=False)
        mp.setenv("LOCKGATE_EXPERIMENT", experiment)
        # Explicit, so the experiment's artifacts never land in ./mlruns of the git repository (which
        # would make the tree dirty): connect() exports MLFLOW_TRACKING_URI through
        # mlflow.set_tracking_uri, after which the settings no longer see the default store.
        mp.setenv("LOCKGATE_ARTIFACT_ROOT", (shared_home / "artifacts").as_uri())
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mp.chdir(repo)
        example = load_example()
        data = base / "data"
        train_ref, holdout_ref = example.snapshot_data(data, prefix=f"g{suffix}-")
        name = f"bc-{suffix}"
        train = data / "train.csv"
        champion = example.train_and_register(train_ref, train, name=name, alias="champion")
        equal = example.train_and_register(train_ref, train, name=name)
        worse = example.train_and_register(train_ref, train, name=name, kind="two-features")
        renamed = example.train_and_register(
            train_ref, train, name=name, rename={"mean radius": "radius_mean"}
        )
    return GateWorld(name, train_ref, holdout_ref, champion, equal, worse, renamed, repo, experiment)


@pytest.fixture
def gate_home(gate_world: GateWorld, mlflow_home: Path) -> GateWorld:
    """The session's gate world, with this test pointed at its store."""
    return gate_world


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Run ``lockgate ...`` through the real entry point; returns (exit code, stdout + stderr)."""
    from lockgate.cli import main as cli_main
    from lockgate.cli.validate import validate_command

    if "validate" not in {command.name for command in cli_main.app.registered_commands}:
        cli_main.app.command("validate")(validate_command)

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            cli_main.main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run
