from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from lockgate.errors import NotFound, UserError
from lockgate.tracking.connection import connect
from lockgate.tracking.datasets import snapshot
from lockgate.tracking.digest import model_sha256
from lockgate.tracking.registry import (
    derived_versions,
    get_model_version,
    lineage,
    list_models,
    list_versions,
    register,
    set_alias,
)

pytestmark = pytest.mark.integration


def test_register_records_lineage_and_checksum(
    mlflow_home: Path, tmp_path: Path, unique: str, trained_run: Callable[..., str]
) -> None:
    conn = connect()
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    ds = snapshot(conn, data, f"ds-{unique}")
    run_id = trained_run(datasets=(ds.ref,))
    v = register(conn, run_id, f"m-{unique}", alias="champion")
    assert v.version == 1 and v.aliases == ("champion",)
    assert v.run_id == run_id
    assert v.datasets[0]["digest"] == ds.digest
    assert v.git_commit is not None
    local = mlflow.artifacts.download_artifacts(f"models:/m-{unique}/1")
    assert v.artifact_sha256 == model_sha256(Path(local))
    assert get_model_version(conn, f"m-{unique}@champion").version == 1
    assert get_model_version(conn, f"m-{unique}").version == 1


def test_aliases_move_and_derived_versions_form_a_tree(
    mlflow_home: Path, unique: str, trained_run: Callable[..., str]
) -> None:
    conn = connect()
    name = f"m-{unique}"
    v1 = register(conn, trained_run(c=1.0), name, alias="champion")
    v2 = register(conn, trained_run(c=0.1), name, parent=v1.ref, method="distill")
    v3 = register(conn, trained_run(c=0.5), f"{name}-onnx", parent=v2.ref, method="onnx")
    assert v2.parent == f"{name}/1" and v2.method == "distill"
    set_alias(conn, name, "champion", 2)
    assert [v.aliases for v in list_versions(conn, name)] == [(), ("champion",)]
    assert [d.ref for d in derived_versions(conn, v1)] == [v2.ref]
    ancestors, root = lineage(conn, v3.ref)
    assert [a.ref for a in ancestors] == [v1.ref, v2.ref, v3.ref]
    assert root.version.ref == v1.ref
    assert root.children[0].version.ref == v2.ref
    assert root.children[0].children[0].version.ref == v3.ref
    names = {m["name"]: m for m in list_models(conn)}
    assert names[name]["latest"] == 2 and names[name]["aliases"] == {"champion": 2}


def test_registry_errors(mlflow_home: Path, unique: str, trained_run: Callable[..., str]) -> None:
    conn = connect()
    with pytest.raises(NotFound, match=f"model 'nope-{unique}' is not registered"):
        get_model_version(conn, f"nope-{unique}@1")
    run_id = trained_run()
    register(conn, run_id, f"m-{unique}")
    with pytest.raises(NotFound, match="has no version 7; versions are 1"):
        get_model_version(conn, f"m-{unique}@7")
    with pytest.raises(NotFound, match="has no alias 'champion'"):
        get_model_version(conn, f"m-{unique}@champion")
    with pytest.raises(NotFound, match="no logged model named 'other'"):
        register(conn, run_id, f"m-{unique}", artifact="other")
    with pytest.raises(NotFound, match="run '0123456789abcdef0123456789abcdef' not found"):
        register(conn, "0123456789abcdef0123456789abcdef", f"m-{unique}")
    with pytest.raises(UserError, match="is not valid"):
        register(conn, run_id, "bad/name")
    with pytest.raises(UserError, match="alias 'latest' is not valid"):
        set_alias(conn, f"m-{unique}", "latest", 1)
