"""The test doubles users import from lockgate.testing."""

from __future__ import annotations

import numpy as np
import pytest

from lockgate.errors import ValidationError
from lockgate.testing import (
    FakePredictionError,
    FakePredictor,
    SimulatedTraffic,
    VariantBehaviour,
)


def test_fake_predictor_is_deterministic_and_fails_on_schedule() -> None:
    slept: list[float] = []
    predictor = FakePredictor(output=lambda row: sum(row), latency_ms=20, fail_every=3, sleep=slept.append)
    assert predictor.predict([[1, 2], [3, 4]]).tolist() == [3, 7]
    assert predictor.predict([[0, 1]]).tolist() == [1]
    with pytest.raises(FakePredictionError, match="failed call 3"):
        predictor.predict([[1, 1]])
    assert predictor.calls == 3
    assert predictor.rows_seen == 3
    assert slept == [0.02, 0.02, 0.02]


def test_fake_predictor_constant_output_and_no_sleep_by_default() -> None:
    predictor = FakePredictor(output=0.5, latency_ms=1000)
    assert predictor.predict(np.zeros((4, 2))).tolist() == [0.5] * 4
    with pytest.raises(ValidationError):
        FakePredictor(latency_ms=-1)


def test_simulated_traffic_is_seeded() -> None:
    behaviours = {"a": VariantBehaviour(0.1, 20.0), "b": VariantBehaviour(0.5, 5.0)}
    one, two = SimulatedTraffic(behaviours, seed=4), SimulatedTraffic(behaviours, seed=4)
    assert one.keys(50) == two.keys(50)
    assert one.arrivals(10.0) == two.arrivals(10.0)
    lat_one, err_one = one.serve("a", 100)
    lat_two, err_two = two.serve("a", 100)
    assert np.array_equal(lat_one, lat_two)
    assert np.array_equal(err_one, err_two)


def test_simulated_traffic_follows_its_behaviour() -> None:
    traffic = SimulatedTraffic(
        {"slow": VariantBehaviour(0.2, 50.0, 0.1)}, requests_per_s=200, keyless_fraction=0.5
    )
    latencies, errors = traffic.serve("slow", 20_000)
    assert float(np.median(latencies)) == pytest.approx(50.0, rel=0.02)
    assert errors.mean() == pytest.approx(0.2, abs=0.01)
    assert traffic.arrivals(100.0) == pytest.approx(20_000, rel=0.05)
    keys = traffic.keys(2_000)
    assert sum(k is None for k in keys) == pytest.approx(1_000, rel=0.1)
    with pytest.raises(ValidationError, match="no behaviour for variant 'other'"):
        traffic.serve("other", 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"error_rate": 1.5}, {"latency_median_ms": 0.0}, {"latency_sigma": -1.0}],
)
def test_bad_behaviours_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        VariantBehaviour(**kwargs)


def test_users_differ_and_keep_what_makes_them_differ() -> None:
    behaviours = {"a": VariantBehaviour(0.01, 10.0), "b": VariantBehaviour(0.02, 10.0)}
    traffic = SimulatedTraffic(
        behaviours, users=2000, user_error_beta=(2, 198), user_latency_sigma=0.5, seed=3
    )
    assert traffic.error_factor.mean() == pytest.approx(1.0, abs=0.05)
    assert traffic.error_factor.std() > 0.5  # Beta(2, 198): users far apart
    again = SimulatedTraffic(behaviours, users=2000, user_error_beta=(2, 198), user_latency_sigma=0.5, seed=3)
    assert np.array_equal(traffic.error_factor, again.error_factor)  # the same users for one seed
    users = np.repeat(np.arange(10), 5000)
    _, errors = traffic.serve("b", users, np.random.default_rng(0))
    per_user = errors.reshape(10, 5000).mean(axis=1)
    expected = np.minimum(0.02 * traffic.error_factor[:10], 1.0)
    assert np.allclose(per_user, expected, atol=0.01)


@pytest.mark.parametrize("shape", ["lognormal", "pareto", "bimodal"])
def test_every_latency_shape_has_the_median_asked_for_and_scales_every_quantile(shape: str) -> None:
    rng = np.random.default_rng(1)
    base = VariantBehaviour(latency_median_ms=20.0, latency_shape=shape)  # type: ignore[arg-type]
    slow = VariantBehaviour(latency_median_ms=30.0, latency_shape=shape)  # type: ignore[arg-type]
    ones = np.ones(200_000)
    fast_q = np.quantile(base.latencies(ones, rng), [0.5, 0.9, 0.99])
    slow_q = np.quantile(slow.latencies(ones, rng), [0.5, 0.9, 0.99])
    assert np.allclose(slow_q / fast_q, 1.5, rtol=0.08)
    if shape != "bimodal":
        assert fast_q[0] == pytest.approx(20.0, rel=0.03)
    with pytest.raises(ValidationError, match="latency_shape"):
        VariantBehaviour(latency_shape="uniform")  # type: ignore[arg-type]


def test_outcomes_come_with_their_delays() -> None:
    traffic = SimulatedTraffic(
        {"a": VariantBehaviour(conversion_rate=0.3)}, outcome_delay_s=60.0, user_conversion_beta=(3, 7)
    )
    outcome = traffic.outcomes("a", np.arange(20_000) % 5000, np.random.default_rng(2))
    assert outcome is not None
    values, delays = outcome
    assert values.mean() == pytest.approx(0.3, abs=0.02) and set(np.unique(values)) <= {0.0, 1.0}
    assert delays.mean() == pytest.approx(60.0, rel=0.05)
    assert SimulatedTraffic({"a": VariantBehaviour()}).outcomes("a", np.arange(3)) is None
