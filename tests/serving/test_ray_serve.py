"""The Ray Serve backend's own parts, without a cluster: the replica options a spec's scaling
becomes, errors crossing the process boundary, and the command's refusals (exit code 2).

The backend end to end (a canary with automatic rollback on Ray included) is
``tests/serving/test_conformance.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed: pip install 'lockgate[ray]'")

from lockgate.errors import LockgateError, NotFound, UserError, ValidationError
from lockgate.rollout.spec import VariantScaling, parse_spec
from lockgate.serving.ray_serve import (
    DEFAULT_REPLICA_CPUS,
    RayOptions,
    _error_of,
    _is_pickle_registry_race,
    _raise_error,
    replica_options,
    serve_ray,
    variant_app_name,
)
from lockgate.serving.server import ServeConfig
from lockgate.serving.variant import ServingPolicy


def test_a_fixed_replica_count_and_the_default_cpus() -> None:
    options = replica_options(VariantScaling(replicas=3), ServingPolicy(), replica_cpus=0.25)
    assert options["num_replicas"] == 3
    assert options["ray_actor_options"] == {"num_cpus": 0.25}
    assert "autoscaling_config" not in options
    # enough requests in flight per replica to fill a batch
    assert options["max_ongoing_requests"] >= ServingPolicy().max_batch_size
    assert replica_options(VariantScaling(), ServingPolicy(), replica_cpus=0.5)["num_replicas"] == 1


def test_an_autoscaling_range_with_its_own_cpus() -> None:
    spec = parse_spec(
        {
            "name": "fraud",
            "variants": {"stable": "models:/f/1", "canary": "models:/f/2"},
            "baseline": "stable",
            "candidate": "canary",
            "strategy": {"type": "direct"},
            "scaling": {
                "canary": {
                    "num_cpus": 1,
                    "autoscaling": {"min_replicas": 0, "max_replicas": 4, "target_ongoing_requests": 2},
                }
            },
        }
    )
    options = replica_options(spec.scaling_of("canary"), ServingPolicy(), replica_cpus=DEFAULT_REPLICA_CPUS)
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 0,
        "max_replicas": 4,
        "initial_replicas": 1,  # one is up before the first request, even when idle may scale to 0
        "target_ongoing_requests": 2.0,
    }
    assert options["ray_actor_options"] == {"num_cpus": 1.0}


def test_each_variant_is_its_own_application() -> None:
    assert variant_app_name("lockgate", "fraud", "canary") == "lockgate.fraud.canary"
    assert variant_app_name("lockgate", "fraud", "stable") != variant_app_name("other", "fraud", "stable")


@pytest.mark.parametrize(
    ("raised", "expected", "words"),
    [
        (NotFound("no such thing", hint="look elsewhere"), NotFound, "no such thing"),
        (ValueError("could not convert 'x' to float"), ValidationError, "model 'churn' rejected the input"),
        (KeyError("age"), ValidationError, "rejected the input"),
    ],
)
def test_user_errors_cross_the_boundary_as_themselves(
    raised: Exception, expected: type[LockgateError], words: str
) -> None:
    with pytest.raises(expected) as info:
        _raise_error(_error_of(raised), "churn")
    assert words in info.value.message
    assert info.value.hint  # every user error says the fix


def test_a_failing_model_stays_a_server_error() -> None:
    with pytest.raises(RuntimeError, match="model 'churn' failed on Ray Serve: RuntimeError: boom"):
        _raise_error(_error_of(RuntimeError("boom")), "churn")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"num_cpus": 0}, "--ray-cpus must be > 0"),
        ({"address": "ray://head:10001", "num_cpus": 2}, "drop --ray-cpus"),
        ({"replica_cpus": 0}, "replica_cpus must be > 0"),
    ],
)
def test_bad_ray_options_are_user_errors(options: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError) as info:
        RayOptions(**options)
    assert words in f"{info.value.message} {info.value.hint}"


@pytest.mark.parametrize(
    ("config", "words"),
    [
        (ServeConfig("models:/churn@champion"), "not a single MODEL_URI"),
        (ServeConfig(""), "nothing to serve"),
        (ServeConfig("", store_url="sqlite:///x.db", workers=2), "--workers is for the embedded backend"),
    ],
)
def test_serve_ray_refuses_before_starting_ray(config: ServeConfig, words: str) -> None:
    with pytest.raises(UserError, match=words):
        serve_ray(config, RayOptions())


def test_the_cli_says_what_is_wrong_with_the_backend(cli: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = cli("serve", "--backend", "kubernetes", "--store", "sqlite:///x.db")
    assert code == 2 and "--backend must be embedded or ray" in err
    code, _, err = cli("serve", "--ray-cpus", "2", "--store", "sqlite:///x.db")
    assert code == 2 and "need --backend ray" in err
    code, _, err = cli("serve", "models:/churn@champion", "--backend", "ray")
    assert code == 2 and "--deployment SPEC.yaml" in err


def test_only_ray_serves_pickle_registry_race_is_deployed_again() -> None:
    race = ValueError("Module 'ray.serve._private.request_router' is not registered for pickle by value")
    assert _is_pickle_registry_race(race)
    assert not _is_pickle_registry_race(ValueError("num_replicas must be a positive integer"))
