from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from lockgate.errors import ValidationError
from lockgate.monitor.drift import (
    DriftThresholds,
    drift_report,
    js_distance,
    ks_from_counts,
    psi_from_counts,
)
from lockgate.monitor.reference import Reference, reference_from_frame
from lockgate.monitor.sketch import EmbeddingSketch, NumericSketch

counts = st.lists(st.integers(0, 1000), min_size=2, max_size=12)


@given(counts)
def test_identical_distributions_do_not_drift(c: list[int]) -> None:
    if sum(c) == 0:
        return
    assert psi_from_counts(c, c) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(c, c) == pytest.approx(0.0, abs=1e-7)
    assert ks_from_counts(c, c)[0] == pytest.approx(0.0, abs=1e-12)


@given(counts, counts)
def test_measures_are_bounded_and_non_negative(a: list[int], b: list[int]) -> None:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    assert psi_from_counts(a, b) >= -1e-12
    assert 0.0 <= js_distance(a, b) <= 1.0 + 1e-12
    stat, p = ks_from_counts(a, b)
    assert 0.0 <= stat <= 1.0 + 1e-12 and 0.0 <= p <= 1.0


def test_binned_ks_is_close_to_scipy_and_never_above_it() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(0, 1, 4000), rng.normal(0.15, 1, 3000)
    sketch = NumericSketch.from_reference(ref, bins=200)
    live = sketch.empty_like()
    live.update(cur)
    stat, p = ks_from_counts(sketch.counts, live.counts)
    exact = ks_2samp(ref, cur)
    assert stat <= exact.statistic + 1e-12
    assert stat == pytest.approx(exact.statistic, abs=0.01)
    assert p == pytest.approx(exact.pvalue, rel=0.5, abs=1e-6)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValidationError, match="negative"):
        psi_from_counts([1, -1], [1, 1])


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0, country: str = "fr") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + shift, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "country": rng.choice(["fr", "de", country], n),
        }
    )


def test_report_finds_the_shifted_feature_only() -> None:
    rng = np.random.default_rng(1)
    reference = reference_from_frame(_frame(rng, 5000), dataset="customers@1", digest="abc")
    live = reference.empty_live()
    frame = _frame(rng, 3000, shift=8.0, country="us")
    for name, sketch in live.items():
        sketch.update(frame[name].tolist() if name == "country" else frame[name].to_numpy())
    report = drift_report(reference.sketches, live)
    assert set(report.drifted) == {"age", "country"}
    by_name = {f.name: f for f in report.features}
    assert by_name["income"].status == "ok"
    assert by_name["age"].numbers["psi"] > 0.2


def test_too_little_live_data_is_not_called_drift() -> None:
    rng = np.random.default_rng(2)
    reference = reference_from_frame(_frame(rng, 1000))
    live = reference.empty_live()
    live["age"].update(rng.normal(90, 1, 50))
    report = drift_report(reference.sketches, live, DriftThresholds(min_count=200))
    assert not report.has_drift
    assert {f.status for f in report.features} == {"insufficient data"}


def test_embedding_drift_by_centroid() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, (500, 16)) + 3.0
    reference = {"embedding": EmbeddingSketch.from_reference(base)}
    same = {"embedding": EmbeddingSketch.from_reference(rng.normal(0, 1, (500, 16)) + 3.0)}
    moved = {"embedding": EmbeddingSketch.from_reference(rng.normal(0, 1, (500, 16)) - 3.0)}
    assert not drift_report(reference, same).has_drift
    assert drift_report(reference, moved).drifted == ("embedding",)


def test_reference_round_trip() -> None:
    rng = np.random.default_rng(4)
    reference = reference_from_frame(_frame(rng, 300), dataset="d@1", digest="ff", exclude=("income",))
    again = Reference.from_dict(reference.to_dict())
    assert set(again.sketches) == {"age", "country"}
    assert again.dataset == "d@1" and again.digest == "ff"


def test_samples_of_the_reference_distribution_are_not_called_drift() -> None:
    # iid samples of the training distribution, at the sizes a server judges (600 live values against
    # 2,000 reference rows): a JS threshold of 0.1 called about one in three such samples drifted
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"x": rng.normal(0, 1, 2000), "y": rng.normal(0, 1, 2000)})
    reference = reference_from_frame(train)
    flagged = 0
    for _ in range(200):
        live = reference.empty_live()
        for sketch in live.values():
            sketch.update(rng.normal(0, 1, 600))
        flagged += drift_report(reference.sketches, live).has_drift
    assert flagged <= 2  # the KS test alone may fire 1 in 1,000 per feature
