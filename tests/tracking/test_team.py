"""lockgate against a real team server: ``mlflow server`` over HTTP with basic auth and two users."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

import lockgate
from lockgate.errors import Forbidden, StoreUnreachable
from lockgate.tracking.connection import connect
from lockgate.tracking.digest import model_sha256
from lockgate.tracking.registry import get_model_version, register
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


def test_a_server_restart_mid_run_loses_no_point(team_user: TeamUser) -> None:
    server = team_user("alice")
    restarted = threading.Event()

    def restart() -> None:
        server.stop()
        time.sleep(2)
        server.start()
        restarted.set()

    with lockgate.track(run_name="outage", capture_env=False, max_pending=100) as run:
        for step in range(500):
            run.log_metric("loss", 1 / (step + 1), step=step)
        worker = threading.Thread(target=restart)
        worker.start()
        time.sleep(0.5)  # the server is going down
        for step in range(500, 1000):
            run.log_metric("loss", 1 / (step + 1), step=step)
        worker.join(timeout=120)
    assert restarted.is_set() and run.retries > 0 and run.spill is None
    stored = connect().client.get_metric_history(run.run_id, "loss")
    assert sorted(m.step for m in stored) == list(range(1000))
    assert connect().client.get_run(run.run_id).info.status == "FINISHED"


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
