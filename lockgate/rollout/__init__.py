"""Rollouts: a new model version meets a slice of traffic, and numbers decide how far it goes."""

from __future__ import annotations

from lockgate.rollout.spec import (
    AbStrategy,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    DeploymentSpec,
    DirectStrategy,
    RollingStrategy,
    RoutingKey,
    ShadowStrategy,
    Strategy,
    WarmupChecks,
    load_spec,
    parse_spec,
)

__all__ = [
    "AbStrategy",
    "BlueGreenStrategy",
    "CanaryStep",
    "CanaryStrategy",
    "DeploymentSpec",
    "DirectStrategy",
    "RollingStrategy",
    "RoutingKey",
    "ShadowStrategy",
    "Strategy",
    "WarmupChecks",
    "load_spec",
    "parse_spec",
]
