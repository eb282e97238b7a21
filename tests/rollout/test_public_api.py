"""The public API of lockgate.rollout and lockgate.testing, pinned: a change here is a decision."""

from __future__ import annotations

import subprocess
import sys

import lockgate.rollout
import lockgate.testing

ROLLOUT_API = [
    "BUCKETS",
    "LIVE_PHASES",
    "TERMINAL_PHASES",
    "TRANSITIONS",
    "AbStrategy",
    "Action",
    "Analysis",
    "AuditEvent",
    "BlueGreenStrategy",
    "CanaryStep",
    "CanaryStrategy",
    "Deployment",
    "DeploymentSpec",
    "DirectStrategy",
    "InMemoryStore",
    "Pause",
    "Phase",
    "PrimaryGoal",
    "Promote",
    "RecordEvent",
    "Rollback",
    "RollingStrategy",
    "RolloutPolicy",
    "RolloutState",
    "RolloutView",
    "RoutingKey",
    "RoutingTable",
    "SequentialRolloutPolicy",
    "SetWeights",
    "ShadowComparison",
    "ShadowStrategy",
    "SimulationResult",
    "Snapshot",
    "SqlStore",
    "Stage",
    "Store",
    "Strategy",
    "ThresholdPolicy",
    "TimelineEntry",
    "TrafficSource",
    "VariantScaling",
    "WarmupChecks",
    "assign",
    "bucket",
    "candidate_share",
    "default_store_url",
    "initial_state",
    "load_spec",
    "parse_spec",
    "pause",
    "plan",
    "policy_for",
    "promote",
    "random_bucket",
    "resume",
    "rollback",
    "routing_table",
    "should_shadow",
    "simulate",
    "start",
    "stats_since",
    "step",
]

TESTING_API = [
    "FakePredictionError",
    "FakePredictor",
    "InMemoryStore",
    "SimulatedTraffic",
    "VariantBehaviour",
]


def test_rollout_all_is_pinned_and_every_name_resolves() -> None:
    assert lockgate.rollout.__all__ == ROLLOUT_API
    for name in ROLLOUT_API:
        assert getattr(lockgate.rollout, name) is not None


def test_testing_all_is_pinned_and_every_name_resolves() -> None:
    assert lockgate.testing.__all__ == TESTING_API
    for name in TESTING_API:
        assert getattr(lockgate.testing, name) is not None


def test_unknown_names_still_raise_attribute_error() -> None:
    assert not hasattr(lockgate.rollout, "NoSuchThing")


def test_the_pure_core_does_not_import_the_database_layer() -> None:
    code = (
        "import sys, lockgate.rollout, lockgate.testing; "
        "print('sqlalchemy' in sys.modules, 'alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
