"""lockgate against a real team server: ``mlflow server`` over HTTP with basic auth and two users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from lockgate.tracking.connection import connect
from lockgate.tracking.digest import model_sha256
from lockgate.tracking.registry import get_model_version, register
from lockgate.tracking.server import TrackingServer

pytestmark = pytest.mark.integration

TeamUser = Callable[[str | None], TrackingServer]


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
