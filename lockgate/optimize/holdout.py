"""Which rows judge an optimization: one split of one file, the same for the parent and every candidate.

A tabular model is judged on a fixed 30% of one data file (``--data``, or the table file the parent's
training run recorded); the other 70% are what distillation and static-quantization calibration learn
from. The split depends on the number of rows alone (a fixed seed, never the optimizer's own seed), so
every optimize run on the same file, the parent's row and each candidate's, this week's and last
week's, scores the same rows, and the description of it travels with every record.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["HELD_OUT_SHARE", "SPLIT_SEED", "describe_split", "held_out_split"]

HELD_OUT_SHARE = 0.3
SPLIT_SEED = 0


def held_out_split(n_rows: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(rows to learn from, rows to judge on): indexes into a table of ``n_rows`` rows."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n_rows)
    cut = int(n_rows * (1.0 - HELD_OUT_SHARE))
    return order[:cut], order[cut:]


def describe_split(file_name: str, n_held_out: int, n_rows: int, *, is_run_data: bool) -> str:
    """One sentence saying which rows the quality numbers come from, for tables, tags and JSON.

    ``is_run_data``: the file is the one the parent's training run recorded (no ``--data``), whose
    rows the parent may have been fitted on.
    """
    text = (
        f"the same held-out {HELD_OUT_SHARE:.0%} of {file_name} ({n_held_out} of {n_rows} rows, "
        f"split seed {SPLIT_SEED}) for the parent and every candidate"
    )
    if is_run_data:
        text += (
            "; the parent's training run recorded this file, so the parent may have been fitted on these "
            "rows: the numbers compare the candidates with the parent (pass --data with unseen rows "
            "for accuracy on new data)"
        )
    return text
