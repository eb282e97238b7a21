"""Rollouts: a new model version meets a slice of traffic, and numbers decide how far it goes.

The pure core (spec, router, controller, policy, shadow comparison, simulation) takes plain values
and the time, and returns plain values; the store is the one shell here. A serving shell loops:
snapshot accumulators → :func:`step` → persist state and events → swap in the new routing table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lockgate.rollout.analysis import PrimaryGoal
from lockgate.rollout.controller import (
    LIVE_PHASES,
    TERMINAL_PHASES,
    TRANSITIONS,
    Action,
    Pause,
    Phase,
    Promote,
    RecordEvent,
    Rollback,
    RolloutState,
    SetWeights,
    Snapshot,
    Stage,
    candidate_share,
    initial_state,
    pause,
    plan,
    promote,
    resume,
    rollback,
    routing_table,
    start,
    stats_since,
    step,
)
from lockgate.rollout.policy import (
    RolloutPolicy,
    RolloutView,
    SequentialRolloutPolicy,
    ThresholdPolicy,
    policy_for,
)
from lockgate.rollout.router import (
    BUCKETS,
    RoutingTable,
    assign,
    bucket,
    random_bucket,
    should_shadow,
)
from lockgate.rollout.shadow import ShadowComparison
from lockgate.rollout.simulate import SimulationResult, TimelineEntry, TrafficSource, simulate
from lockgate.rollout.spec import (
    AbStrategy,
    Analysis,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    DeploymentSpec,
    DirectStrategy,
    RollingStrategy,
    RoutingKey,
    ShadowStrategy,
    Strategy,
    VariantScaling,
    WarmupChecks,
    load_spec,
    parse_spec,
)
from lockgate.rollout.store import (
    AuditEvent,
    Deployment,
    InMemoryStore,
    Store,
    default_store_url,
)

if TYPE_CHECKING:
    from lockgate.rollout.sqlstore import SqlStore

__all__ = [
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


def __getattr__(name: str) -> Any:
    # SqlStore brings SQLAlchemy and Alembic (most of a second to import); the pure core, which the
    # request path imports, should not pay for them.
    if name == "SqlStore":
        from lockgate.rollout.sqlstore import SqlStore

        return SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
