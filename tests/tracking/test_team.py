"""lockgate against a real team server: ``mlflow server`` over HTTP with basic auth and two users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

import lockgate
from lockgate.errors import Forbidden, StoreUnreachable
from lockgate.tracking.connection import connect
from lockgate.tracking.datasets import list_versions as list_dataset_versions
from lockgate.tracking.digest import model_sha256
from lockgate.tracking.registry import get_model_version, list_versions, register
from lockgate.tracking.server import TrackingServer
from lockgate.tracking.tracker import TrackedRun

pytestmark = pytest.mark.integration

TeamUser = Callable[[str | None], TrackingServer]
Cli = Callable[..., tuple[int, str, str]]


def test_register_over_http_passes_the_model_id_and_keeps_the_checksum(
    team_user: TeamUser, unique: str, trained_run: Callable[..., str]
) -> None:
    server = team_user("alice")
    conn = connect()
    run_id = trained_run()
    v = register(conn, run_id, f"m-{unique}", alias="champion")
    assert (v.version, v.aliases, v.run_id) == (1, ("champion",), run_id)
    assert v.source.startswith("models:/m-")
    local = mlflow.artifacts.download_artifacts(f"models:/m-{unique}@champion")
    assert v.artifact_sha256 == model_sha256(Path(local))
    assert get_model_version(conn, f"m-{unique}@champion").version == 1
    # the artifacts went to the server's folder, through the server
    assert any(server.artifact_folder.rglob("MLmodel"))
    assert not (Path.cwd() / ".lockgate" / "artifacts").exists()


def test_missing_credentials_are_exit_2_naming_the_variables(team_user: TeamUser, cli: Cli) -> None:
    team_user(None)
    code, _, err = cli("runs", "list")
    assert code == 2
    assert "asks for credentials and none are set" in err
    assert "MLFLOW_TRACKING_USERNAME" in err and "Traceback" not in err


def test_a_wrong_password_is_exit_2_naming_the_user(
    team_user: TeamUser, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    team_user("alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-alices-password")
    code, _, err = cli("runs", "list")
    assert code == 2
    assert "refused the credentials of user 'alice'" in err and "MLFLOW_TRACKING_PASSWORD" in err


def test_a_uri_that_is_not_an_mlflow_server_is_exit_2(
    team_user: TeamUser, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = team_user("alice")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url + "/wrongpath")
    code, _, err = cli("runs", "list")
    assert code == 2
    assert "is not an MLflow tracking server" in err and "MLFLOW_TRACKING_URI" in err


def test_training_in_a_teammates_experiment_without_edit_names_user_and_experiment(
    team_user: TeamUser,
) -> None:
    server = team_user("alice")
    with lockgate.track(run_name="alices", capture_env=False) as run:
        run.log_metric("loss", 1.0)
    team_user("bob")
    with (
        pytest.raises(Forbidden, match=r"user 'bob' may not create a run in experiment 'team-\w+'") as caught,
        lockgate.track(run_name="bobs", capture_env=False),
    ):
        pass
    assert "EDIT" in str(caught.value.hint)
    # once an admin grants bob EDIT on the experiment, he can train in it
    server.grant("bob", "experiment", run.experiment_id, "EDIT")
    with lockgate.track(run_name="bobs", capture_env=False) as bobs:
        bobs.log_metric("loss", 2.0)
    assert connect().client.get_run(bobs.run_id).info.status == "FINISHED"


def test_registering_into_a_teammates_model_without_edit_names_the_model(
    team_user: TeamUser,
    unique: str,
    trained_run: Callable[..., str],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    team_user("alice")
    register(connect(), trained_run(), f"m-{unique}")
    team_user("bob")
    monkeypatch.setenv("LOCKGATE_EXPERIMENT", f"bobs-{unique}")
    bobs_run = trained_run()
    code, _, err = cli("register", bobs_run, "--name", f"m-{unique}")
    assert code == 2
    assert f"user 'bob' may not add a version to registered model 'm-{unique}'" in err
    assert "Traceback" not in err


@pytest.mark.timeout(600)  # a restart of the server is most of it
def test_a_server_restart_mid_run_loses_no_point(team_user: TeamUser) -> None:
    server = team_user("alice")
    restarted = threading.Event()
    errors: list[BaseException] = []

    def restart() -> None:
        try:
            server.stop()
            time.sleep(2)
            server.start()
            restarted.set()
        except BaseException as exc:
            errors.append(exc)

    with lockgate.track(run_name="outage", capture_env=False, max_pending=100, retry_window_s=180) as run:
        for step in range(500):
            run.log_metric("loss", 1 / (step + 1), step=step)
        worker = threading.Thread(target=restart)
        worker.start()
        time.sleep(0.5)  # the server is going down
        for step in range(500, 1000):
            run.log_metric("loss", 1 / (step + 1), step=step)
        worker.join(timeout=120)
    assert not errors and restarted.is_set() and run.retries > 0 and run.spill is None
    stored = connect().client.get_metric_history(run.run_id, "loss")
    assert sorted(m.step for m in stored) == list(range(1000))
    assert connect().client.get_run(run.run_id).info.status == "FINISHED"


@pytest.mark.timeout(600)
def test_a_server_away_longer_than_the_window_spills_and_runs_sync_sends_it(
    team_user: TeamUser, cli: Cli
) -> None:
    server = team_user("alice")
    runs: list[TrackedRun] = []

    def train() -> None:
        with lockgate.track(run_name="spilled", capture_env=False, retry_window_s=1.0) as run:
            runs.append(run)
            run.log_metric("loss", 0.0, step=0)
            run.flush()
            server.stop()
            for step in range(1, 1500):
                run.log_metric("loss", 1 / (step + 1), step=step)

    try:
        with pytest.raises(StoreUnreachable, match=r"are in '.*spill/\w+\.jsonl'") as caught:
            train()
        run = runs[0]
        assert "lockgate runs sync" in str(caught.value.hint)
        assert run.spill is not None and run.spill.path.exists()
        assert run.spill.read()[3] == "FINISHED"
    finally:
        server.start()
    code, out, _ = cli("runs", "sync")
    assert code == 0 and run.run_id in out
    assert not run.spill.path.exists()
    stored = connect().client.get_metric_history(run.run_id, "loss")
    assert sorted(m.step for m in stored) == list(range(1500))
    assert connect().client.get_run(run.run_id).info.status == "FINISHED"
    code, out, _ = cli("runs", "sync")
    assert code == 0 and "nothing to send" in out


def test_team_init_then_a_teammate_needs_only_credentials(
    team_user: TeamUser, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    server = team_user("alice")
    project = tmp_path / "churn"
    project.mkdir()
    monkeypatch.chdir(project)
    code, out, err = cli("team", "init", "--tracking-uri", server.url, "--experiment", f"churn-{unique}")
    assert code == 0, err
    assert "you are alice" in out
    text = (project / "lockgate.toml").read_text()
    assert server.url in text and server.passwords["alice"] not in text
    # a teammate's shell: the project file, and credentials in the environment only
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LOCKGATE_EXPERIMENT")
    with lockgate.track(run_name="first", capture_env=False) as run:
        run.log_metric("loss", 0.5)
    run_info = connect().client.get_run(run.run_id)
    assert connect().client.get_experiment(run_info.info.experiment_id).name == f"churn-{unique}"
    monkeypatch.delenv(
        "MLFLOW_TRACKING_URI", raising=False
    )  # mlflow.set_tracking_uri exported it; a new shell has none
    code, out, _ = cli("info", "--json")
    doc = json.loads(out)
    assert doc["tracking_uri"] == {"value": server.url, "source": str(project / "lockgate.toml")}
    assert doc["server"]["value"].startswith("answered: MLflow 3.")
    assert doc["user"]["value"] == "alice"
    assert doc["artifact_root"]["value"].startswith("mlflow-artifacts:/")
    code, _, err = cli("team", "init", "--tracking-uri", server.url)
    assert code == 2 and "exists" in err


def test_info_says_when_the_server_refuses(
    team_user: TeamUser, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    team_user("bob")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password-1")
    code, out, _ = cli("info", "--json")
    assert code == 0
    assert "refused the credentials of user 'bob'" in json.loads(out)["server"]["value"]


def test_a_teammate_pulls_a_copied_snapshot_and_the_run_reproduces(
    team_user: TeamUser, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: str
) -> None:
    team_user("alice")
    alices, bobs = tmp_path / "alice" / "proj", tmp_path / "bob" / "proj"
    for project in (alices, bobs):
        project.mkdir(parents=True)
        (project / "lockgate.toml").write_text(f'[team]\nexperiment = "exp-{unique}"\n')
    (alices / "data").mkdir()
    (alices / "data" / "train.csv").write_text("x,y\n1,0\n2,1\n")
    monkeypatch.chdir(alices)
    code, _, err = cli("data", "snapshot", "data/train.csv", "--name", f"ds-{unique}", "--copy")
    assert code == 0, err
    with lockgate.track(run_name="uses-data", capture_env=False, datasets=[f"ds-{unique}@1"]) as run:
        pass
    team_user("bob")
    monkeypatch.chdir(bobs)
    code, _, err = cli("reproduce", run.run_id)
    assert code == 2 and "data/train.csv" in err
    code, out, err = cli("data", "pull", f"ds-{unique}@1")
    assert code == 0, err
    assert (bobs / "data" / "train.csv").read_text() == "x,y\n1,0\n2,1\n"
    code, out, err = cli("reproduce", run.run_id)
    assert code == 0, err
    assert "matches the recorded digests" in out


WRITER = Path(__file__).with_name("team_writer.py")


@pytest.mark.slow
@pytest.mark.timeout(900)  # 8 processes that each import MLflow and scikit-learn, on 2 shared CPUs
def test_eight_writers_as_two_users_lose_nothing(team_user: TeamUser, tmp_path: Path, unique: str) -> None:
    server = team_user("alice")
    conn = connect()
    model = f"shared-{unique}"
    # the team's set-up (docs/team.md): alice owns the experiment; an admin lets bob write to it and
    # to the datasets, and both to the shared model (whoever registers first creates, and owns, it)
    experiment_id = conn.experiment_id()
    datasets_id = conn.experiment_id("lockgate-datasets")
    server.grant("bob", "experiment", experiment_id, "EDIT")
    server.grant("bob", "experiment", datasets_id, "EDIT")
    for user in ("alice", "bob"):
        server.grant(user, "registered_model", model, "EDIT")
    points = 500
    writers = []
    for index in range(8):
        user = ("alice", "bob")[index % 2]
        folder = tmp_path / f"writer-{index}"
        folder.mkdir()
        env = {
            **os.environ,
            **server.env(user),
            "LOCKGATE_HOME": str(folder / ".lockgate"),
            "LOCKGATE_EXPERIMENT": os.environ["LOCKGATE_EXPERIMENT"],
        }
        args = ["lockgate", str(index), str(points), model, str(folder / "result.json")]
        writers.append((folder, subprocess.Popen([sys.executable, str(WRITER), *args], cwd=folder, env=env)))
    try:
        codes = [process.wait(timeout=600) for _, process in writers]
    finally:
        for _, process in writers:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert codes == [0] * 8
    results = [json.loads((folder / "result.json").read_text()) for folder, _ in writers]
    client = connect().client
    for result in results:
        assert client.get_run(result["run_id"]).info.status == "FINISHED"
        steps = sorted(m.step for m in client.get_metric_history(result["run_id"], "loss"))
        assert steps == list(range(points))
    versions = list_versions(connect(), model)
    assert [v.version for v in versions] == list(range(1, 9))
    assert sorted(r["version"] for r in results) == list(range(1, 9))
    by_run = {r["run_id"]: r for r in results}
    for version in versions:
        writer = by_run[version.run_id or ""]
        assert version.version == writer["version"]
        assert [d["digest"] for d in version.datasets] == [writer["dataset_digest"]]
    owners = {client.get_run(r["run_id"]).data.tags.get("mlflow.user") for r in results}
    assert owners == {"alice", "bob"}
    # the dataset all eight snapshotted at once: versions 1-8, each writer's own contents once
    shared = list_dataset_versions(connect(), f"{model}-shared")
    assert [v.version for v in shared] == list(range(1, 9))
    assert sorted(r["shared_version"] for r in results) == list(range(1, 9))
    assert {v.version: v.digest for v in shared} == {r["shared_version"]: r["shared_digest"] for r in results}
