from __future__ import annotations

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.gates.drift import population_stability_index
from lockgate.monitor.drift import psi_from_counts as monitor_psi
from lockgate.stats.psi import psi_from_counts, shares


def test_identical_counts_have_no_drift_and_a_shift_has_some() -> None:
    assert psi_from_counts([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    assert psi_from_counts([50, 50], [90, 10]) > 0.25


def test_an_empty_bin_is_floored_not_infinite() -> None:
    assert np.isfinite(psi_from_counts([100, 0], [50, 50]))


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValidationError, match="negative"):
        shares([1, -1])


def test_the_gate_and_live_drift_compute_the_same_psi() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=5_000), rng.normal(0.3, 1.0, size=5_000)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
    counts = [
        np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1) for x in (ref, cur)
    ]
    assert population_stability_index(ref, cur) == pytest.approx(monitor_psi(*counts))
    assert monitor_psi is psi_from_counts
