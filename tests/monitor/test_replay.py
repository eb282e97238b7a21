"""Replaying captured requests against a candidate, with real scikit-learn models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, Ridge

from lockgate.monitor.capture import encode_inputs, encode_outputs
from lockgate.monitor.replay import replay
from lockgate.rollout.store import CapturedRequest
from lockgate.serving.protocol import ModelInput, Outputs


def _rows(
    inputs: list[np.ndarray], outputs: list[Outputs | None], latency_ms: float = 2.0
) -> list[CapturedRequest]:
    return [
        CapturedRequest(
            deployment="churn",
            request_id=f"r{index}",
            at=float(index),
            variant="stable",
            model_name="cancer",
            model_version="1",
            status=200 if answer is not None else 500,
            latency_ms=latency_ms,
            inputs=encode_inputs(x),
            outputs=None if answer is None else encode_outputs(answer),
        )
        for index, (x, answer) in enumerate(zip(inputs, outputs, strict=True))
    ]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return x[::10], y[::10]


def _classifier(c: float, x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=5000).fit(x, y)


def test_the_same_model_agrees_on_every_label(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    model = _classifier(1.0, x, y)

    def predict(inputs: ModelInput) -> Outputs:
        return {"label": model.predict(inputs)}

    requests = [x[i : i + 1] for i in range(len(x))]
    report = replay(_rows(requests, [predict(r) for r in requests]), predict, primary_output="label")
    assert report.replayed == report.compared == len(x)
    assert report.comparison.agreement == 1.0
    assert report.to_dict()["labels"]["flip_rate"] == 0.0


def test_a_different_model_flips_some_labels_and_the_flips_are_counted(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = data
    served, candidate = _classifier(1.0, x, y), _classifier(1e-6, x, y)
    requests = [x[i : i + 1] for i in range(len(x))]
    recorded = [{"label": served.predict(r)} for r in requests]
    report = replay(
        _rows(requests, recorded), lambda r: {"label": candidate.predict(r)}, primary_output="label"
    )
    expected = float(np.mean(served.predict(x) == candidate.predict(x)))
    assert report.comparison.agreement == pytest.approx(expected) and expected < 1.0
    assert sum(report.comparison.flips.values()) == round((1 - expected) * len(x))


def test_numbers_give_differences_and_latency_sits_side_by_side(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    served, candidate = Ridge(alpha=1.0).fit(x, y), Ridge(alpha=100.0).fit(x, y)
    requests = [x[i : i + 1] for i in range(20)]
    recorded: list[Outputs | None] = [{"score": served.predict(r)} for r in requests]
    ticks = itertools.count(step=0.001)  # every model call takes 1 ms on this clock
    report = replay(
        _rows(requests, recorded, latency_ms=5.0),
        lambda r: {"score": candidate.predict(r)},
        primary_output="score",
        clock=lambda: next(ticks),
    )
    numbers = report.to_dict()["numbers"]
    diffs = np.abs(served.predict(x[:20]) - candidate.predict(x[:20]))
    assert numbers["max_abs_difference"] == pytest.approx(diffs.max())
    assert numbers["mean_abs_difference"] == pytest.approx(diffs.mean())
    latency = report.to_dict()["latency_ms"]
    assert latency["candidate_p50"] == pytest.approx(1.0) and latency["recorded_p99"] == pytest.approx(5.0)
    assert report.to_dict()["labels"] is None


def test_failures_on_either_side_are_counted_not_compared(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = data
    requests = [x[i : i + 1] for i in range(4)]
    recorded: list[Outputs | None] = [{"label": np.array([1])}, None, {"label": np.array([0])}, None]
    calls = itertools.count()

    def flaky(inputs: ModelInput) -> Outputs:
        if next(calls) == 0:
            raise RuntimeError("candidate broke")
        return {"label": np.array([0])}

    report = replay(_rows(requests, recorded), flaky, primary_output="label")
    assert (report.captured, report.replayed, report.compared) == (4, 3, 1)
    assert report.candidate_errors == 1 and report.recorded_errors == 2
    assert report.first_error == "RuntimeError: candidate broke"
    assert report.recorded_by == {"stable (cancer v1)": 4}
