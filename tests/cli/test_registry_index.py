"""The read-only registry index answers ``models list`` as MLflow's own client does, or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lockgate.cli.registry_index import models_in


@pytest.mark.integration
def test_the_index_gives_mlflows_answer(lockgate_home: Path) -> None:
    from lockgate.settings import current_settings
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import list_models

    conn = connect()
    client = conn.client
    for name in ("churn", "fraud", "empty"):
        client.create_registered_model(name, description=f"{name} model")
    for _ in range(3):
        client.create_model_version("churn", source=str(lockgate_home))
    client.create_model_version("fraud", source=str(lockgate_home))
    client.delete_model_version("churn", "3")  # the latest number left is 2
    client.set_registered_model_alias("churn", "champion", "2")
    client.set_registered_model_alias("churn", "challenger", "1")
    uri = current_settings().registry_uri
    assert uri.startswith("sqlite:///")
    fast = models_in(uri)
    assert fast == list_models(conn)
    assert fast is not None and [m["latest"] for m in fast] == [2, None, 1]


def test_only_a_sqlite_registry_it_understands_is_read(tmp_path: Path) -> None:
    assert models_in("postgresql://db/mlflow") is None
    assert models_in(f"sqlite:///{tmp_path / 'missing.db'}") is None
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE registered_models (name TEXT)")  # not MLflow's columns
    assert models_in(f"sqlite:///{other}") is None
    (tmp_path / "junk.db").write_bytes(b"not a database at all, " * 100)
    assert models_in(f"sqlite:///{tmp_path / 'junk.db'}") is None
