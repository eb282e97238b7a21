"""The cost model, checked against numbers worked out by hand (docs/cost.md shows the same case)."""

from __future__ import annotations

import math

import pytest

from lockgate.errors import UserError
from lockgate.rollout.cost import STRATEGY_KINDS, CostInputs, estimate_cost, specs_by_strategy
from lockgate.rollout.spec import DeploymentSpec, parse_spec
from lockgate.stats.power import sample_size_two_proportions


def _spec(strategy: dict[str, object] | None = None) -> DeploymentSpec:
    return parse_spec(
        {
            "name": "fraud",
            "variants": {"stable": "models:/fraud/3", "canary": "models:/fraud/4"},
            "baseline": "stable",
            "candidate": "canary",
            "strategy": strategy
            or {
                "type": "canary",
                "steps": [
                    {"weight_percent": 5, "min_duration_s": 300, "min_requests": 1000},
                    {"weight_percent": 25, "min_duration_s": 300, "min_requests": 2000},
                    {"weight_percent": 50, "min_duration_s": 600},
                ],
            },
        }
    )


# 200 req/s on replicas of 50 req/s each: 4 baseline replicas, $2 per replica-hour.
INPUTS = CostInputs(price_per_replica_hour=2.0, traffic_rps=200.0, replica_throughput_rps=50.0)


def test_all_six_strategies_side_by_side_with_the_specs_own_marked() -> None:
    estimate = estimate_cost(_spec(), INPUTS)
    assert [row.strategy for row in estimate.strategies] == list(STRATEGY_KINDS)
    assert [row.strategy for row in estimate.strategies if row.is_spec_strategy] == ["canary"]
    assert estimate.baseline_replicas == 4 and estimate.candidate_replicas == 4


def test_canary_adds_its_share() -> None:
    row = estimate_cost(_spec(), INPUTS).for_strategy("canary")
    # 5%: 10 req/s, 1000 requests take 100 s < 300 s; 25%: 50 req/s, 40 s < 300 s; 50%: 600 s.
    assert row.duration_s == 1200
    # extra replicas ceil(10/50)=1, ceil(50/50)=1, ceil(100/50)=2: 1*300 + 1*300 + 2*600 = 1800 s
    assert row.extra_replica_hours == pytest.approx(0.5)
    assert row.cost == pytest.approx(1.0)
    # requests the candidate answered: 10*300 + 50*300 + 100*600
    assert row.risk_requests == pytest.approx(78_000)
    assert row.rollback_time_s == 0


def test_a_step_waits_for_its_requests() -> None:
    spec = _spec(
        {"type": "canary", "steps": [{"weight_percent": 5, "min_duration_s": 10, "min_requests": 5000}]}
    )
    row = estimate_cost(spec, INPUTS).for_strategy("canary")
    assert row.duration_s == pytest.approx(500)  # 5000 requests at 10 req/s


def test_blue_green_holds_double_capacity_while_both_colours_are_warm() -> None:
    row = estimate_cost(_spec(), INPUTS).for_strategy("blue_green")
    # defaults: warm-up 30 s (100 mirrored requests take 0.5 s), bake 60 s, old colour warm 600 s
    assert row.duration_s == pytest.approx(90)
    assert row.extra_replica_hours == pytest.approx(4 * (90 + 600) / 3600)
    assert row.risk_requests == pytest.approx(200 * 60)  # the bake serves everything, unpromoted


def test_shadow_doubles_compute_for_the_mirrored_fraction_and_risks_nothing() -> None:
    spec = _spec({"type": "shadow", "fraction": 0.5, "min_duration_s": 600, "min_requests": 0})
    row = estimate_cost(spec, INPUTS).for_strategy("shadow")
    assert row.extra_replica_hours == pytest.approx(2 * 600 / 3600)  # half of 4 replicas, 10 min
    assert row.risk_requests == 0


def test_rolling_adds_one_batch() -> None:
    spec = _spec({"type": "rolling", "replicas": 4, "batch_size": 2, "min_duration_s": 60})
    row = estimate_cost(spec, INPUTS).for_strategy("rolling")
    assert row.duration_s == 120  # two batches of 60 s
    assert row.extra_replica_hours == pytest.approx(2 * 120 / 3600)
    assert row.risk_requests == pytest.approx(100 * 60 + 200 * 60)
    assert row.rollback_time_s == INPUTS.replica_start_s


def test_ab_lasts_the_plan_test_sample_size() -> None:
    row = estimate_cost(_spec(), INPUTS).for_strategy("ab")
    n = sample_size_two_proportions(0.10, 0.01, alpha=0.05, power=0.8, ratio=1.0)
    assert n == 14_751  # what `lockgate plan-test --baseline 0.10 --mde 0.01` prints per arm
    assert row.duration_s == pytest.approx(2 * n / 200)
    assert row.risk_requests == pytest.approx(n)  # half of the traffic for that long
    assert row.extra_replica_hours == pytest.approx(2 * (2 * n / 200) / 3600)


def test_an_ab_test_longer_than_its_limit_ends_undecided() -> None:
    spec = _spec({"type": "ab", "max_duration_s": 60})
    row = estimate_cost(spec, INPUTS).for_strategy("ab")
    assert row.duration_s == 60
    assert "undecided" in row.notes[0]


def test_direct_is_free_but_unjudged() -> None:
    row = estimate_cost(_spec(), INPUTS).for_strategy("direct")
    assert row.cost == 0 and math.isinf(row.risk_requests)
    assert row.rollback_time_s == INPUTS.replica_start_s


def test_an_optimized_candidate_needs_fewer_replicas() -> None:
    inputs = CostInputs(2.0, 200.0, 50.0, candidate_throughput_rps=100.0, horizon_s=30 * 86400)
    estimate = estimate_cost(_spec(), inputs)
    assert estimate.candidate_replicas == 2
    assert estimate.steady_state_delta_cost == pytest.approx(-2 * 720 * 2.0)
    # each canary step now fits on one candidate replica: 1*300 + 1*300 + 1*600
    assert estimate.for_strategy("canary").extra_replica_hours == pytest.approx(1200 / 3600)


def test_headroom_is_kept_for_the_candidate() -> None:
    inputs = CostInputs(2.0, 200.0, 50.0, replicas=8, candidate_throughput_rps=100.0)
    assert estimate_cost(_spec(), inputs).candidate_replicas == 4  # 400 req/s of capacity, as before


def test_too_few_replicas_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--replicas 3"):
        CostInputs(2.0, 200.0, 50.0, replicas=3)
    with pytest.raises(UserError, match="--price"):
        CostInputs(0.0, 200.0, 50.0)


def test_the_other_strategies_keep_the_specs_variants() -> None:
    specs = specs_by_strategy(_spec(), replicas=4)
    assert set(specs) == set(STRATEGY_KINDS)
    assert all(s.variants == _spec().variants for s in specs.values())


def test_the_measured_speedup_is_the_runs_throughput_over_its_parents() -> None:
    from lockgate.rollout.cost import measured_speedup

    assert measured_speedup({"throughput_per_s": 300.0, "parent_throughput_per_s": 100.0}) == 3.0
    assert measured_speedup({"throughput_per_s": 300.0}) is None  # not an optimized version
    assert measured_speedup({"throughput_per_s": 300.0, "parent_throughput_per_s": 0.0}) is None
    assert measured_speedup({"throughput_per_s": float("nan"), "parent_throughput_per_s": 1.0}) is None
