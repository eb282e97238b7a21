from __future__ import annotations

import numpy as np
import pandas as pd

from lockgate.monitor.live import LiveDrift
from lockgate.monitor.reference import reference_from_frame

RNG = np.random.default_rng(7)
TRAIN = pd.DataFrame({"age": RNG.normal(40, 10, 5000), "income": RNG.normal(50, 5, 5000)})
REFERENCE = reference_from_frame(TRAIN, dataset="train@1", digest="abc")


def test_one_request_in_n_is_kept_and_nothing_is_sketched_until_the_fold() -> None:
    drift = LiveDrift(REFERENCE, sample_every=4)
    for _ in range(40):
        drift.offer("stable", TRAIN.iloc[:5], ["age", "income"])
    assert (drift.seen, drift.sampled) == (40, 0)
    assert drift.reports() == {}
    assert drift.fold() == 10
    assert drift.sampled == 10 and drift.fold() == 0


def test_a_shifted_variant_drifts_and_a_faithful_one_does_not() -> None:
    drift = LiveDrift(REFERENCE, sample_every=1)
    same = TRAIN.sample(1000, random_state=1).to_numpy()
    shifted = same + np.array([25.0, 0.0])  # age moves, income stays
    for start in range(0, 1000, 50):
        drift.offer("stable", same[start : start + 50], ["age", "income"])
        drift.offer("next", pd.DataFrame(shifted[start : start + 50], columns=["age", "income"]), [])
    drift.fold()
    reports = drift.reports()
    assert reports["stable"].drifted == ()
    assert reports["next"].drifted == ("age",)
    summary = drift.summary()
    assert summary["reference"] == {"dataset": "train@1", "digest": "abc"}
    age = summary["variants"]["next"]["features"]["age"]
    assert age["status"] == "drift" and age["psi"] > 1.0 and age["live_count"] == 1000
    assert summary["variants"]["next"]["drifted"] == ["age"]


def test_a_full_queue_drops_and_counts_and_unknown_shapes_are_skipped() -> None:
    drift = LiveDrift(REFERENCE, sample_every=1, max_pending=2)
    for _ in range(5):
        drift.offer("stable", np.zeros((1, 3)), ["a", "b", "c"])  # not the reference's columns
    assert drift.dropped == 3
    assert drift.fold() == 2
    assert drift.summary()["variants"]["stable"]["features"]["age"]["live_count"] == 0


def test_predictions_wait_for_their_reference_then_drift_per_variant() -> None:
    from lockgate.monitor.predictions import reference_sketch

    drift = LiveDrift(REFERENCE, sample_every=1)
    rows = TRAIN.iloc[:10]
    for _ in range(30):
        drift.offer("stable", rows, [], {"predictions": np.array([0, 1] * 5)}, "predictions")
        drift.offer("next", rows, [], {"predictions": np.ones(10, dtype=np.int64)}, "predictions")
    drift.fold()
    assert drift.output_reports() == {}
    assert drift.summary()["predictions"]["state"] == "computing"
    drift.set_output_reference(
        reference_sketch(np.array([0, 1] * 500), "categorical"), name="predictions", source="s"
    )
    reports = drift.output_reports()
    assert reports["stable"].status == "ok" and reports["stable"].live_count == 300
    assert reports["next"].status == "drift" and reports["next"].numbers["psi"] > 1.0
    summary = drift.summary()["predictions"]
    assert (
        summary["state"] == "ready"
        and summary["kind"] == "categorical"
        and summary["reference_count"] == 1000
    )
    assert summary["variants"]["next"]["status"] == "drift"


def test_without_a_reference_of_predictions_the_reason_is_shown() -> None:
    drift = LiveDrift(REFERENCE, sample_every=1)
    drift.set_output_error("a model that takes tensor inputs cannot be run on a table's rows")
    drift.offer("stable", TRAIN.iloc[:5], [], {"predictions": np.zeros(5)}, None)
    drift.fold()
    summary = drift.summary()["predictions"]
    assert summary["state"] == "unavailable" and "tensor" in summary["error"] and summary["variants"] == {}


def test_stacked_rows_sketch_exactly_like_one_request_at_a_time() -> None:
    rows = TRAIN.to_numpy()[:300]
    at_once, one_by_one = LiveDrift(REFERENCE, sample_every=1), LiveDrift(REFERENCE, sample_every=1)
    for index in range(0, 300, 3):
        at_once.offer("stable", rows[index : index + 3], ["age", "income"])
        at_once.offer("next", rows[index : index + 3].astype(np.float32), ["age", "income"])
    assert at_once.fold() == 200
    for index in range(0, 300, 3):
        for variant, chunk in (("stable", rows[index : index + 3]), ("next", rows[index : index + 3])):
            one_by_one.offer(
                variant, chunk.astype(np.float32) if variant == "next" else chunk, ["age", "income"]
            )
            one_by_one.fold()
    for variant in ("stable", "next"):
        for name in ("age", "income"):
            stacked, single = at_once._live[variant][name], one_by_one._live[variant][name]
            assert stacked.to_dict() == single.to_dict()
