from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow.entities import Metric

from lockgate.errors import UserError
from lockgate.tracking.spill import SpillFile, backoff_s, spill_folder


def test_backoff_doubles_from_half_a_second_up_to_eight() -> None:
    assert [backoff_s(a) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


@given(st.integers(min_value=0, max_value=10_000))
def test_backoff_is_positive_bounded_and_never_shrinks(attempt: int) -> None:
    assert 0 < backoff_s(attempt) <= backoff_s(attempt + 1) <= 8.0


def test_spill_file_keeps_points_and_status_in_order(tmp_path: Path) -> None:
    spill = SpillFile.for_run(tmp_path, "r1", "http://127.0.0.1:1")
    assert spill.path == spill_folder(tmp_path) / "r1.jsonl"
    spill.append_metrics([Metric("loss", 0.5, 1000, 0), Metric("loss", 0.25, 1001, 1)])
    spill.append_metrics([Metric("acc", 1.0, 1002, 2)])
    again = SpillFile.for_run(tmp_path, "r1", "http://127.0.0.1:1")  # reopening keeps what is there
    again.append_status("FINISHED")
    assert again.read() == (
        "r1",
        "http://127.0.0.1:1",
        [("loss", 0.5, 1000, 0), ("loss", 0.25, 1001, 1), ("acc", 1.0, 1002, 2)],
        "FINISHED",
    )


def test_a_last_line_cut_short_by_a_crash_keeps_the_points_before_it(tmp_path: Path) -> None:
    spill = SpillFile.for_run(tmp_path, "r2", "u")
    spill.append_metrics([Metric("loss", 1.0, 1, 0)])
    with spill.path.open("a") as out:
        out.write('{"metrics": [["loss", 2.0, 2')
    assert spill.read() == ("r2", "u", [("loss", 1.0, 1, 0)], None)


def test_a_broken_line_in_the_middle_is_a_user_error_naming_the_line(tmp_path: Path) -> None:
    spill = SpillFile.for_run(tmp_path, "r3", "u")
    with spill.path.open("a") as out:
        out.write("not json\n")
    spill.append_status("FAILED")
    with pytest.raises(UserError, match=r"r3.jsonl' line 2 is not JSON"):
        spill.read()
