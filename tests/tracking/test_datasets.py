from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from lockgate.errors import IntegrityError, NotFound, UserError
from lockgate.tracking.connection import connect
from lockgate.tracking.datasets import (
    DatasetVersion,
    diff_manifests,
    diff_profiles,
    diff_versions,
    get_version,
    list_versions,
    load_manifest,
    locate,
    profile_table,
    recorded_path,
    snapshot,
    verify_path,
)
from lockgate.tracking.digest import FileEntry


def test_diff_manifests() -> None:
    a = [FileEntry("x", 1, "h1"), FileEntry("y", 1, "h2"), FileEntry("z", 1, "h3")]
    b = [FileEntry("x", 1, "h1"), FileEntry("y", 1, "CHANGED"), FileEntry("w", 1, "h4")]
    assert diff_manifests(a, b) == (("w",), ("z",), ("y",), 1)


def test_profile_and_diff_profiles(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "kind": ["p", "q", "p"]}).to_csv(a, index=False)
    pd.DataFrame({"x": [1.0, 2.0, 30.0, None], "n": [1, 2, 3, 4]}).to_csv(b, index=False)
    pa, pb = profile_table(a), profile_table(b)
    assert pa is not None and pb is not None
    assert pa["rows"] == 3 and pa["columns"]["x"]["mean"] == 2.0
    assert pa["columns"]["kind"]["unique"] == 2
    d = diff_profiles(pa, pb)
    assert d["rows"] == [3, 4]
    assert d["columns_added"] == ["n"]
    assert d["columns_removed"] == ["kind"]
    assert set(d["stat_changes"]["x"]) >= {"mean", "max", "nulls"}
    assert profile_table(tmp_path / "notes.txt") is None


def test_parquet_profile(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}).to_parquet(path)
    prof = profile_table(path)
    assert prof is not None and prof["rows"] == 2 and set(prof["columns"]) == {"x", "y"}


@pytest.mark.integration
def test_snapshot_versions_and_unchanged(mlflow_home: Path, tmp_path: Path, unique: str) -> None:
    conn = connect()
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n2,1\n")
    v1 = snapshot(conn, data, f"ds-{unique}")
    assert (v1.version, v1.is_new, v1.file_count) == (1, True, 1)
    again = snapshot(conn, data, f"ds-{unique}")
    assert (again.version, again.is_new) == (1, False)
    data.write_text("x,y\n1,0\n2,1\n3,1\n")
    v2 = snapshot(conn, data, f"ds-{unique}")
    assert v2.version == 2 and v2.digest != v1.digest
    assert [v.version for v in list_versions(conn, f"ds-{unique}")] == [1, 2]
    assert get_version(conn, f"ds-{unique}").version == 2
    assert get_version(conn, f"ds-{unique}@1").digest == v1.digest
    d = diff_versions(conn, f"ds-{unique}@1", f"ds-{unique}@2")
    assert d.changed == ("train.csv",)
    assert d.tables["train.csv"]["rows"] == [2, 3]


@pytest.mark.integration
def test_folder_snapshot_with_copy(mlflow_home: Path, tmp_path: Path, unique: str) -> None:
    conn = connect()
    folder = tmp_path / "images"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "1.bin").write_bytes(b"\x00\x01")
    (folder / "labels.csv").write_text("id,label\n1,cat\n")
    v = snapshot(conn, folder, f"imgs-{unique}", copy=True, description="two files")
    assert v.is_copied and v.file_count == 2
    assert [e.path for e in load_manifest(conn, v)] == ["cats/1.bin", "labels.csv"]
    artifacts = {a.path for a in conn.client.list_artifacts(v.run_id, "data")}
    assert {"data/cats", "data/labels.csv"} <= artifacts
    (folder / "extra.txt").write_text("new")
    v2 = snapshot(conn, folder, f"imgs-{unique}")
    d = diff_versions(conn, v.ref, v2.ref)
    assert d.added == ("extra.txt",) and not d.removed and not d.changed


@pytest.mark.integration
def test_errors_name_the_thing(mlflow_home: Path, tmp_path: Path, unique: str) -> None:
    conn = connect()
    with pytest.raises(NotFound, match="does not exist"):
        snapshot(conn, tmp_path / "missing.csv", f"ds-{unique}")
    with pytest.raises(UserError, match="is not valid"):
        snapshot(conn, tmp_path, "bad name")
    with pytest.raises(NotFound, match=f"dataset 'nope-{unique}' has no versions"):
        get_version(conn, f"nope-{unique}")
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    snapshot(conn, data, f"ds-{unique}")
    with pytest.raises(NotFound, match="has no version 9") as info:
        get_version(conn, f"ds-{unique}@9")
    assert "versions are 1" in str(info.value.hint)


@pytest.mark.integration
def test_verify_path(mlflow_home: Path, tmp_path: Path, unique: str) -> None:
    conn = connect()
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    v = snapshot(conn, data, f"ds-{unique}")
    assert verify_path(v) == v.digest
    data.write_text("a\n2\n")
    with pytest.raises(IntegrityError, match="does not match"):
        verify_path(v)
    data.unlink()
    with pytest.raises(NotFound, match="not on disk"):
        verify_path(v)


def test_paths_inside_the_project_are_recorded_relative_and_found_from_any_checkout(tmp_path: Path) -> None:
    alice, bob = tmp_path / "home-a" / "proj", tmp_path / "home-b" / "proj"
    assert recorded_path(alice / "data" / "train.csv", alice) == "data/train.csv"
    assert recorded_path(alice, alice) == "."
    assert recorded_path(tmp_path / "elsewhere.csv", alice) == str(tmp_path / "elsewhere.csv")
    assert locate("data/train.csv", bob) == bob / "data" / "train.csv"
    assert locate(str(tmp_path / "elsewhere.csv"), bob) == tmp_path / "elsewhere.csv"


def test_data_root_finds_the_recorded_path_or_the_name_under_it(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    (copy / "data").mkdir(parents=True)
    assert locate("data/train.csv", tmp_path / "proj", copy) == copy / "data" / "train.csv"
    (copy / "train.csv").write_text("x\n")
    assert locate("data/train.csv", tmp_path / "proj", copy) == copy / "train.csv"
    (copy / "data" / "train.csv").write_text("x\n")
    assert locate("data/train.csv", tmp_path / "proj", copy) == copy / "data" / "train.csv"
    assert locate("/home/a/old/train.csv", tmp_path / "proj", copy) == copy / "train.csv"


def _snapshot_at_once(tmp_path: Path, name: str, writers: int) -> list[DatasetVersion]:
    """``writers`` threads snapshot different contents of dataset ``name`` at the same moment."""
    conn = connect()
    start = threading.Barrier(writers)
    made: list[DatasetVersion] = []
    failures: list[BaseException] = []

    def write(index: int) -> None:
        data = tmp_path / f"part-{index}.csv"
        data.write_text(f"x,y\n{index},{index % 2}\n")
        start.wait()
        try:
            made.append(snapshot(conn, data, name))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not failures, failures
    return made


def _assert_numbered_once_each(made: list[DatasetVersion], name: str, writers: int) -> None:
    assert sorted(v.version for v in made) == list(range(1, writers + 1))
    listed = list_versions(connect(), name)
    assert [v.version for v in listed] == list(range(1, writers + 1))
    assert {v.version: v.digest for v in listed} == {v.version: v.digest for v in made}
    assert len({v.digest for v in listed}) == writers
    for version in listed:
        assert load_manifest(connect(), version)[0].path.startswith("part-")


@pytest.mark.integration
def test_concurrent_snapshots_of_one_name_get_versions_1_to_n(
    mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    writers = 6
    made = _snapshot_at_once(tmp_path, f"race-{unique}", writers)
    _assert_numbered_once_each(made, f"race-{unique}", writers)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)  # a snapshot is ~10 requests, each through basic auth, on 2 shared CPUs
def test_concurrent_snapshots_on_the_team_server_get_versions_1_to_n(
    team_user: Callable[[str | None], object], tmp_path: Path, unique: str
) -> None:
    team_user("alice")
    writers = 5
    made = _snapshot_at_once(tmp_path, f"race-{unique}", writers)
    _assert_numbered_once_each(made, f"race-{unique}", writers)
