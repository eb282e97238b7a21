"""Run a whole rollout on synthetic traffic with a simulated clock: no server, no sleep.

The same router, controller and policy as production, so a spec and a policy can be tried (and
tested) in well under a second: requests arrive each tick, the router assigns (and mirrors) them,
each variant's simulated answers feed its accumulators, and the controller steps on the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError
from lockgate.rollout.controller import (
    Action,
    RecordEvent,
    RolloutState,
    SetWeights,
    initial_state,
    routing_table,
    start,
    step,
)
from lockgate.rollout.router import RoutingTable, assign, bucket, random_bucket, should_shadow
from lockgate.rollout.spec import DeploymentSpec
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.verdict import Policy

__all__ = ["SimulationResult", "TimelineEntry", "TrafficSource", "simulate"]


class TrafficSource(Protocol):
    """What :func:`simulate` needs from traffic (``lockgate.testing.SimulatedTraffic`` is one)."""

    def arrivals(self, duration_s: float, rng: np.random.Generator | None = None) -> int: ...

    def keys(self, count: int, rng: np.random.Generator | None = None) -> list[str | None]: ...

    def serve(
        self, variant: str, count: int, rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]: ...


@dataclass(frozen=True)
class TimelineEntry:
    """One event of the simulated rollout, with the state of traffic when it happened."""

    at_s: float
    action: str
    from_phase: str
    to_phase: str
    reason: str
    weights_bp: Mapping[str, int]
    requests: Mapping[str, int]
    errors: Mapping[str, int]
    verdict: str | None
    numbers: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulationResult:
    """The timeline, the final state, and how many requests were sent (mirrors not counted)."""

    timeline: tuple[TimelineEntry, ...]
    state: RolloutState
    requests_sent: int
    duration_s: float
    stats: Mapping[str, VariantStats]

    def table(self) -> str:
        """The timeline as an aligned text table, for a terminal or a docstring."""
        lines = [f"{'t (s)':>8}  {'action':<9} {'phase':<13} {'weights (bp)':<26} reason"]
        for entry in self.timeline:
            weights = " ".join(f"{k}={v}" for k, v in entry.weights_bp.items())
            lines.append(
                f"{entry.at_s:>8.1f}  {entry.action:<9} {entry.to_phase:<13} {weights:<26} {entry.reason}"
            )
        return "\n".join(lines)


def simulate(
    spec: DeploymentSpec,
    policy: Policy,
    traffic: TrafficSource,
    seed: int = 0,
    *,
    total_requests: int = 10_000,
    tick_s: float = 1.0,
) -> SimulationResult:
    """Start the rollout at t=0, then each tick send requests and step, until it finishes or
    ``total_requests`` have been sent. Deterministic for a given ``seed``."""
    if total_requests < 1 or tick_s <= 0:
        raise ValidationError(
            "total_requests must be at least 1 and tick_s above 0", hint="e.g. 10000 and 1.0"
        )
    rng = np.random.default_rng(seed)
    salt = spec.routing_salt
    stats = {name: VariantStats() for name in spec.variants}
    timeline: list[TimelineEntry] = []
    now = 0.0
    state, actions = start(spec, initial_state(spec), stats, now)
    table = routing_table(state)
    table = _record(timeline, actions, state, stats, table)
    sent = 0
    while sent < total_requests and not state.is_finished:
        count = min(traffic.arrivals(tick_s, rng), total_requests - sent)
        served: dict[str, int] = {}
        mirrored = 0
        for key in traffic.keys(count, rng):
            index = bucket(salt, key) if key is not None else random_bucket(float(rng.random()))
            variant = assign(table, index)
            served[variant] = served.get(variant, 0) + 1
            if table.shadow_variant is not None and should_shadow(table, index):
                mirrored += 1
        if table.shadow_variant is not None and mirrored:
            served[table.shadow_variant] = served.get(table.shadow_variant, 0) + mirrored
        for variant, n in served.items():
            latencies, errors = traffic.serve(variant, n, rng)
            accumulated = stats[variant]
            accumulated.requests += n
            accumulated.errors += int(np.count_nonzero(errors))
            accumulated.latency.update(latencies)
        sent += count
        now += tick_s
        state, actions = step(spec, state, stats, now, policy)
        table = _record(timeline, actions, state, stats, table)
    return SimulationResult(tuple(timeline), state, sent, now, stats)


def _record(
    timeline: list[TimelineEntry],
    actions: tuple[Action, ...],
    state: RolloutState,
    stats: Mapping[str, VariantStats],
    table: RoutingTable,
) -> RoutingTable:
    """Apply the actions the way a shell would: swap in new tables, append events."""
    for action in actions:
        if isinstance(action, SetWeights):
            table = action.table()
        elif isinstance(action, RecordEvent):
            verdict = state.last_verdict
            timeline.append(
                TimelineEntry(
                    at_s=action.at,
                    action=action.action,
                    from_phase=action.from_phase,
                    to_phase=action.to_phase,
                    reason=action.reason,
                    weights_bp=dict(zip(table.variants, table.weights_bp, strict=True)),
                    requests={name: s.requests for name, s in stats.items()},
                    errors={name: s.errors for name, s in stats.items()},
                    verdict=verdict.decision.value if verdict else None,
                    numbers=dict(action.numbers),
                )
            )
    return table
