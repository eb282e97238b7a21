from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.errors import UserError
from lockgate.settings import find_team_file, read_team_file, resolve_settings


def test_defaults_live_under_dot_lockgate(tmp_path: Path) -> None:
    s = resolve_settings({}, tmp_path)
    assert s.home == tmp_path / ".lockgate"
    assert s.tracking_uri == f"sqlite:///{tmp_path / '.lockgate' / 'mlflow.db'}"
    assert s.registry_uri == s.tracking_uri
    assert s.artifact_root == (tmp_path / ".lockgate" / "artifacts").as_uri()
    assert s.is_default_store
    assert {k: v.source for k, v in s.sources.items()} == {
        "home": "default",
        "tracking_uri": "default",
        "registry_uri": "same as tracking_uri",
        "artifact_root": "default",
        "experiment": "default",
    }


def test_lockgate_home_moves_everything(tmp_path: Path) -> None:
    s = resolve_settings({"LOCKGATE_HOME": "state"}, tmp_path)
    assert s.home == tmp_path / "state"
    assert s.tracking_uri.endswith("/state/mlflow.db")
    assert s.sources["home"].source == "LOCKGATE_HOME"


def test_mlflow_tracking_uri_wins(tmp_path: Path) -> None:
    s = resolve_settings({"LOCKGATE_HOME": "state", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}, tmp_path)
    assert s.tracking_uri == "http://127.0.0.1:5000"
    assert s.registry_uri == "http://127.0.0.1:5000"
    assert s.sources["tracking_uri"].source == "MLFLOW_TRACKING_URI"
    assert not s.is_default_store


def test_registry_and_experiment_overrides(tmp_path: Path) -> None:
    s = resolve_settings({"MLFLOW_REGISTRY_URI": "sqlite:///r.db", "LOCKGATE_EXPERIMENT": "churn"}, tmp_path)
    assert s.registry_uri == "sqlite:///r.db"
    assert s.experiment == "churn"
    assert s.sources["experiment"].source == "LOCKGATE_EXPERIMENT"


def test_default_store_is_decided_by_value(tmp_path: Path) -> None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; the default store must stay the default.
    first = resolve_settings({}, tmp_path)
    again = resolve_settings({"MLFLOW_TRACKING_URI": first.tracking_uri}, tmp_path)
    assert again.is_default_store


def test_the_team_file_sets_server_and_experiment_and_the_environment_wins(tmp_path: Path) -> None:
    team = {"tracking_uri": "http://mlflow.internal:5000", "experiment": "churn"}
    s = resolve_settings({}, tmp_path, team, tmp_path / "lockgate.toml")
    assert (s.tracking_uri, s.experiment, s.project_root) == (
        "http://mlflow.internal:5000",
        "churn",
        tmp_path,
    )
    assert s.sources["tracking_uri"].source == str(tmp_path / "lockgate.toml")
    assert s.sources["artifact_root"].source == "tracking server"
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5001", "LOCKGATE_EXPERIMENT": "mine"}
    s = resolve_settings(env, tmp_path, team, tmp_path / "lockgate.toml")
    assert (s.tracking_uri, s.experiment) == ("http://127.0.0.1:5001", "mine")


def test_the_team_file_is_found_above_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "lockgate.toml").write_text('[team]\ntracking_uri = "http://h:1"\n')
    (tmp_path / "src" / "deep").mkdir(parents=True)
    found = find_team_file(tmp_path / "src" / "deep")
    assert found == tmp_path / "lockgate.toml"
    assert read_team_file(found) == {"tracking_uri": "http://h:1"}
    (tmp_path / "lockgate.toml").write_text("[team\n")
    with pytest.raises(UserError, match=r"lockgate\.toml' cannot be read"):
        read_team_file(found)
