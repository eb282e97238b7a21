"""Checked lineage: reading through ``lockgate.data`` and ``track(datasets=...)`` record the digest of
the bytes a run used, and refuse files that are not the version they name."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

import lockgate
import lockgate.data
from lockgate.errors import IntegrityError, NotFound, UserError
from lockgate.tracking.connection import connect
from lockgate.tracking.datasets import DatasetVersion, snapshot
from lockgate.tracking.digest import FileEntry
from lockgate.tracking.reading import (
    CHANGED_TAG,
    VERIFIED_HASHED,
    VERIFIED_READ,
    CheckedData,
    describe_differences,
    link_for,
    mismatch_error,
)


def _version(digest: str = "d" * 64) -> DatasetVersion:
    return DatasetVersion("tumours", 1, digest, "data/train.csv", False, 1, 10, 0, "run1")


def test_describe_differences_names_the_files() -> None:
    recorded = [FileEntry("a.csv", 1, "h1"), FileEntry("b.csv", 1, "h2"), FileEntry("gone.csv", 1, "h3")]
    on_disk = [FileEntry("a.csv", 1, "h1"), FileEntry("b.csv", 1, "EDITED"), FileEntry("new.csv", 1, "h4")]
    assert describe_differences(recorded, on_disk) == "b.csv changed, new.csv added, gone.csv missing"
    many = [FileEntry(f"f{i}.csv", 1, "x") for i in range(8)]
    assert describe_differences([], many).endswith("f4.csv added and 3 more")


def test_the_refusal_names_the_files_and_the_ways_out() -> None:
    checked = CheckedData(_version(), Path("/p/data/train.csv"), (FileEntry("train.csv", 3, "e"),))
    error = mismatch_error(checked, "train.csv changed", is_tracking=True)
    assert "the data at '/p/data/train.csv' is not tumours@1: train.csv changed" in error.message
    assert error.hint is not None
    assert "lockgate data snapshot /p/data/train.csv --name tumours" in error.hint
    assert "on_changed='record'" in error.hint
    assert "on_changed" not in str(mismatch_error(checked, "x", is_tracking=False).hint)


def test_a_link_names_the_version_only_when_the_bytes_are_it() -> None:
    entries = (FileEntry("train.csv", 3, "e"),)
    same = CheckedData(_version(), Path("t"), entries)
    matching = CheckedData(_version(same.digest), Path("t"), entries)
    link = link_for(matching, "train", VERIFIED_READ)
    assert (link.version, link.digest, link.verified, link.changed_from) == (1, same.digest, "read", None)
    edited = link_for(CheckedData(_version(), Path("t"), entries), "train", VERIFIED_HASHED)
    assert (edited.version, edited.digest, edited.changed_from) == (None, same.digest, 1)


def test_an_unknown_on_changed_is_refused() -> None:
    with pytest.raises(UserError, match="on_changed='ignore' is not one of 'refuse', 'record'"):
        lockgate.track(on_changed="ignore")


# -- against a real MLflow store --------------------------------------------------------------------
def _dataset(tmp_path: Path, unique: str, *, copy: bool = False) -> tuple[Path, DatasetVersion]:
    data = tmp_path / "data" / "train.csv"
    data.parent.mkdir(exist_ok=True)
    data.write_text("x,y\n1,0\n2,1\n")
    return data, snapshot(connect(), data, f"tumours-{unique}", copy=copy)


def _links(run_id: str) -> list[dict[str, object]]:
    return list(json.loads(connect().client.get_run(run_id).data.tags["lockgate.datasets"]))


@pytest.mark.integration
def test_a_script_that_reads_through_lockgate_data_gets_the_link_with_the_verified_digest(
    mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    _, version = _dataset(tmp_path, unique)
    with lockgate.track(run_name="reads", capture_env=False) as run:
        frame = lockgate.data.load(version.ref)
    assert isinstance(frame, pd.DataFrame) and frame["y"].tolist() == [0, 1]
    assert [(d.name, d.version, d.digest, d.verified) for d in run.datasets] == [
        (version.name, 1, version.digest, VERIFIED_READ)
    ]
    assert _links(run.run_id) == [run.datasets[0].to_dict()]
    inputs = connect().client.get_run(run.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest) for i in inputs] == [(version.name, version.digest[:32])]


@pytest.mark.integration
def test_a_script_that_reads_nothing_is_credited_with_nothing(mlflow_home: Path) -> None:
    with lockgate.track(run_name="reads-nothing", capture_env=False) as run:
        pass
    assert run.datasets == ()
    assert "lockgate.datasets" not in connect().client.get_run(run.run_id).data.tags


@pytest.mark.integration
def test_reading_an_edited_file_is_refused_and_links_nothing(
    mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    data, version = _dataset(tmp_path, unique)
    data.write_text("x,y\n1,0\n2,0\n")
    with lockgate.track(run_name="edited", capture_env=False) as run:
        with pytest.raises(IntegrityError, match=r"is not tumours-\w+@1: train\.csv changed") as info:
            lockgate.data.load(version.ref)
        with pytest.raises(IntegrityError, match=r"train\.csv changed"):
            lockgate.data.path(version.ref)
    assert f"lockgate data snapshot {data} --name {version.name}" in str(info.value.hint)
    assert run.datasets == ()


@pytest.mark.integration
def test_track_refuses_edited_files_before_the_run_exists(
    mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    data, version = _dataset(tmp_path, unique)
    data.write_text("x,y\n1,0\n2,0\n")
    refused = lockgate.track(run_name="refused", datasets=[version.ref])
    with pytest.raises(IntegrityError, match=r"train\.csv changed") as info, refused:
        pytest.fail("the block must not run")
    assert "on_changed='record'" in str(info.value.hint)
    conn = connect()
    assert conn.client.search_runs([conn.experiment_id()]) == []


@pytest.mark.integration
def test_track_records_edited_files_as_an_unregistered_version_when_asked(
    mlflow_home: Path, tmp_path: Path, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    data, version = _dataset(tmp_path, unique)
    data.write_text("x,y\n1,0\n2,0\n")
    recorded = lockgate.track(run_name="recorded", datasets=[version.ref], on_changed="record")
    with caplog.at_level(logging.WARNING, "lockgate.tracking"), recorded as run:
        pass
    (link,) = run.datasets
    assert (link.name, link.version, link.changed_from, link.verified) == (version.name, None, 1, "hashed")
    assert link.digest != version.digest
    tags = connect().client.get_run(run.run_id).data.tags
    assert tags[CHANGED_TAG] == version.ref
    assert "recorded as an unregistered digest" in caplog.text


@pytest.mark.integration
def test_a_version_checked_at_the_start_then_read_is_linked_once_as_read(
    mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    _, version = _dataset(tmp_path, unique)
    with lockgate.track(run_name="both", capture_env=False, datasets=[version.ref]) as run:
        assert run.datasets[0].verified == VERIFIED_HASHED
        lockgate.data.load(version.ref)
        lockgate.data.path(version.name)  # the latest version: the same data
    assert [(d.version, d.verified) for d in run.datasets] == [(1, VERIFIED_READ)]
    assert [d["verified"] for d in _links(run.run_id)] == [VERIFIED_READ]
    assert len(connect().client.get_run(run.run_id).inputs.dataset_inputs) == 1


@pytest.mark.integration
def test_a_folder_is_checked_file_by_file_and_returned_as_its_path(
    mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    folder = tmp_path / "scans"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.bin").write_bytes(b"\x00\x01")
    (folder / "labels.csv").write_text("id,label\n1,a\n")
    version = snapshot(connect(), folder, f"scans-{unique}")
    assert lockgate.data.path(version.ref) == folder  # outside a run: checked, nothing recorded
    assert lockgate.data.load(version.ref) == folder
    (folder / "extra.txt").write_text("new")
    (folder / "a" / "1.bin").write_bytes(b"\x00\x02")
    with pytest.raises(IntegrityError, match=r"a/1\.bin changed, extra\.txt added"):
        lockgate.data.path(version.ref)


@pytest.mark.integration
def test_files_are_found_under_the_data_root_and_a_copied_snapshot_is_pulled(
    mlflow_home: Path, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, version = _dataset(tmp_path, unique, copy=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(data), elsewhere / "train.csv")
    monkeypatch.setenv("LOCKGATE_DATA_ROOT", str(elsewhere))
    assert lockgate.data.path(version.ref) == elsewhere / "train.csv"
    monkeypatch.delenv("LOCKGATE_DATA_ROOT")
    assert not data.exists()
    frame = lockgate.data.load(version.ref)  # not on disk here: pulled from the artifact store
    assert data.read_text() == "x,y\n1,0\n2,1\n"
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2


@pytest.mark.integration
def test_files_not_on_disk_of_a_snapshot_without_copy_are_a_clear_error(
    mlflow_home: Path, tmp_path: Path, unique: str
) -> None:
    data, version = _dataset(tmp_path, unique)
    data.unlink()
    with pytest.raises(NotFound, match="is not on disk") as info:
        lockgate.data.load(version.ref)
    assert "LOCKGATE_DATA_ROOT" in str(info.value.hint)
