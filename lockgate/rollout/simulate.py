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
from lockgate.rollout.router import BUCKETS, RoutingTable, assign_many, bucket_and_unit
from lockgate.rollout.spec import DeploymentSpec
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.units import UNITS
from lockgate.stats.verdict import Policy

__all__ = ["SimulationResult", "TimelineEntry", "TrafficSource", "simulate"]


class TrafficSource(Protocol):
    """What :func:`simulate` needs from traffic (``lockgate.testing.SimulatedTraffic`` is one).

    Requests come from ``users`` users numbered from 0; user ``u`` sends the routing key
    ``key_of(u)`` when its request carries one. ``outcomes`` may return None (no feedback).
    """

    users: int

    def key_of(self, user: int) -> str: ...

    def arrivals(self, duration_s: float, rng: np.random.Generator | None = None) -> int: ...

    def requests(
        self, count: int, rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]: ...

    def serve(
        self, variant: str, count_or_users: npt.NDArray[np.int64], rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]: ...

    def outcomes(
        self, variant: str, users: npt.NDArray[np.int64], rng: np.random.Generator | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None: ...


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
    # every user's bucket and analysis unit, hashed once (the same function the server calls)
    hashed = np.array(
        [bucket_and_unit(salt, traffic.key_of(u)) for u in range(traffic.users)], dtype=np.int64
    )
    user_bucket, user_unit = hashed[:, 0], hashed[:, 1]
    stats = {name: VariantStats() for name in spec.variants}
    pending: list[_Pending] = []
    timeline: list[TimelineEntry] = []
    now = 0.0
    state, actions = start(spec, initial_state(spec), stats, now)
    table = routing_table(state)
    table = _record(timeline, actions, state, stats, table)
    sent = 0
    while sent < total_requests and not state.is_finished:
        count = min(traffic.arrivals(tick_s, rng), total_requests - sent)
        users, keyed = traffic.requests(count, rng)
        buckets = np.where(keyed, user_bucket[users], rng.integers(0, BUCKETS, count))
        units = np.where(keyed, user_unit[users], rng.integers(0, UNITS, count))
        chosen = assign_many(table, buckets)
        for index, variant in enumerate(table.variants):
            mask = chosen == index
            if table.shadow_variant is not None and variant != table.shadow_variant:
                # mirrored copies of this variant's requests in the shadow's range
                mask_shadow = mask & (buckets >= BUCKETS - table.shadow_bp)
                _serve(
                    traffic,
                    table.shadow_variant,
                    users[mask_shadow],
                    units[mask_shadow],
                    now,
                    stats,
                    pending,
                    rng,
                )
            _serve(traffic, variant, users[mask], units[mask], now, stats, pending, rng)
        sent += count
        now += tick_s
        pending = _deliver(pending, now, stats)
        state, actions = step(spec, state, stats, now, policy)
        table = _record(timeline, actions, state, stats, table)
    return SimulationResult(tuple(timeline), state, sent, now, stats)


@dataclass(frozen=True)
class _Pending:
    """Outcomes not yet joined: each arrives at its ``due_s``."""

    variant: str
    due_s: npt.NDArray[np.float64]
    units: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def _serve(
    traffic: TrafficSource,
    variant: str,
    users: npt.NDArray[np.int64],
    units: npt.NDArray[np.int64],
    now: float,
    stats: Mapping[str, VariantStats],
    pending: list[_Pending],
    rng: np.random.Generator,
) -> None:
    if users.size == 0:
        return
    latencies, errors = traffic.serve(variant, users, rng)
    stats[variant].record_many(latencies, errors, units)
    outcomes = traffic.outcomes(variant, users[~errors], rng)
    if outcomes is not None:
        values, delays = outcomes
        pending.append(_Pending(variant, now + delays, units[~errors], values))


def _deliver(pending: list[_Pending], now: float, stats: Mapping[str, VariantStats]) -> list[_Pending]:
    """Join the outcomes that have arrived by ``now``; keep the rest."""
    left: list[_Pending] = []
    for batch in pending:
        due = batch.due_s <= now
        if due.any():
            stats[batch.variant].record_outcomes(batch.values[due], batch.units[due])
        if not due.all():
            keep = ~due
            left.append(_Pending(batch.variant, batch.due_s[keep], batch.units[keep], batch.values[keep]))
    return left


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
