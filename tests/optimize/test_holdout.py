"""The rows that judge an optimization: fixed by the file, the same for every record."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lockgate.optimize.holdout import describe_split, held_out_split


@given(st.integers(min_value=0, max_value=5000))
def test_the_split_is_a_partition_with_30_percent_held_out(n_rows: int) -> None:
    train, held = held_out_split(n_rows)
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(n_rows))
    assert len(train) == int(n_rows * 0.7)


def test_the_same_file_always_gets_the_same_rows() -> None:
    first, second = held_out_split(569), held_out_split(569)
    assert np.array_equal(first[1], second[1]) and np.array_equal(first[0], second[0])


def test_the_description_says_which_rows_and_what_they_mean() -> None:
    given_data = describe_split("holdout.csv", 171, 569, is_run_data=False)
    assert "holdout.csv (171 of 569 rows" in given_data and "every candidate" in given_data
    assert "fitted on" not in given_data
    run_data = describe_split("train.csv", 120, 398, is_run_data=True)
    assert "may have been fitted on these rows" in run_data and "--data" in run_data
