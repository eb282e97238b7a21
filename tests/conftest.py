"""Shared fixtures.

Every test runs with its own LOCKGATE_HOME or, for tests that talk to MLflow, with one real SQLite
MLflow store shared by the session (creating a store runs MLflow's migrations, a few seconds each);
those tests use unique names so they cannot see each other's runs and models.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lockgate.tracking.server import TrackingServer


# A test that takes longer than this and is not marked `slow` or `integration` is named at the end of
# the run, so `make test-fast` (which leaves those out) stays fast. A report, never a failure: a test
# must not fail because the machine was busy.
UNMARKED_SLOW_S = 5.0
_unmarked_slow: list[tuple[str, float]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or report.duration <= UNMARKED_SLOW_S:
        return
    if not {"slow", "integration"} & set(report.keywords):
        _unmarked_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _unmarked_slow:
        return
    terminalreporter.section(f"tests over {UNMARKED_SLOW_S:g} s not marked slow or integration")
    for nodeid, duration in sorted(_unmarked_slow, key=lambda item: -item[1]):
        terminalreporter.write_line(f"{duration:6.1f} s  {nodeid}")
    terminalreporter.write_line("mark them @pytest.mark.slow (or integration) so `make test-fast` stays fast")


def _isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("LOCKGATE_HOME", str(home))
    for var in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "LOCKGATE_ARTIFACT_ROOT",
        "LOCKGATE_EXPERIMENT",
        "LOCKGATE_DATA_ROOT",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture
def lockgate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LOCKGATE_HOME in a temporary directory, with MLflow pointed at it."""
    home = tmp_path / ".lockgate"
    _isolate(monkeypatch, home)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow-store") / ".lockgate"


@pytest.fixture
def mlflow_home(shared_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LOCKGATE_HOME on the session's shared MLflow store; the working directory is the test's own."""
    _isolate(monkeypatch, shared_home)
    monkeypatch.setenv("LOCKGATE_EXPERIMENT", f"test-{uuid.uuid4().hex[:8]}")
    monkeypatch.chdir(tmp_path)
    return shared_home


@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """A real ``mlflow server`` with basic auth and two users, alice and bob, on 127.0.0.1 for the
    session: the suite's Postgres as its stores when LOCKGATE_TEST_POSTGRES_URL is set (else SQLite),
    ``--serve-artifacts`` with a folder no client touches. Every other user gets READ by default.
    A credential that passed is remembered for the session (MLflow's ``auth_cache_ttl_seconds``):
    scrypt up to three times per request was most of the server's CPU; no test changes a password,
    and a wrong one is still checked on every request."""
    from lockgate.tracking.server import TrackingServer

    server = TrackingServer(
        tmp_path_factory.mktemp("team-server"),
        users=("alice", "bob"),
        postgres_url=os.environ.get("LOCKGATE_TEST_POSTGRES_URL") or None,
        auth_cache_ttl_s=3600,
    )
    with server:
        yield server


@pytest.fixture
def team_user(
    team_server: TrackingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str | None], TrackingServer]:
    """``team_user("alice")``: this process talks to the team server as alice (``None``: with no
    credentials), in its own working directory and experiment, as a teammate's shell would."""
    experiment = f"team-{uuid.uuid4().hex[:8]}"

    def become(user: str | None) -> TrackingServer:
        _isolate(monkeypatch, tmp_path / ".lockgate")
        for key, value in team_server.env(user).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("LOCKGATE_EXPERIMENT", experiment)
        return team_server

    monkeypatch.chdir(tmp_path)
    return become


@pytest.fixture
def unique() -> str:
    """A short unique suffix for model and dataset names."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def trained_run() -> Callable[..., str]:
    """Train a small logistic regression on breast-cancer inside a tracked run; return the run id."""

    def make(run_name: str = "lr", c: float = 1.0, datasets: tuple[str, ...] = ()) -> str:
        from mlflow.models import infer_signature
        from sklearn.datasets import load_breast_cancer
        from sklearn.linear_model import LogisticRegression

        import lockgate

        x, y = load_breast_cancer(return_X_y=True)
        with lockgate.track(run_name=run_name, params={"C": c}, datasets=list(datasets)) as run:
            model = LogisticRegression(C=c, max_iter=3000).fit(x, y)
            run.log_metric("accuracy", float(model.score(x, y)))
            run.log_model(model, signature=infer_signature(x, model.predict(x)))
        return run.run_id

    return make


CliResult = tuple[int, str, str]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``lockgate ARGS...`` in-process through the real entry point: (exit code, stdout, stderr)."""

    def run(*args: str) -> CliResult:
        from lockgate.cli.main import main

        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def minilm() -> Callable[..., object]:
    """The bundled MiniLM encoder, loaded once for the whole session (a few seconds)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lockgate.gates.encoder import minilm_encoder

    minilm_encoder(["warm up"])
    return minilm_encoder
