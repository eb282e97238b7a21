"""What a rollout costs under each strategy: extra replica-hours, money, time, rollback and risk.

Pure: plain numbers and a spec in, a :class:`CostEstimate` out; ``lockgate plan --cost`` prints it.
Every strategy is costed from the stages :func:`~lockgate.rollout.controller.plan` gives it, so the
model and the controller cannot disagree about what a rollout does. The assumptions (docs/cost.md):

- the baseline keeps its whole fleet until the candidate is promoted (so a rollback needs no start);
  "extra" is what runs on top of it. The candidate gets the same headroom as the baseline: its fleet
  for a share ``s`` of traffic has the capacity of ``s`` times the baseline's fleet, at its own
  per-replica throughput (an optimized version needs fewer replicas);
- a stage lasts its ``min_duration_s`` or until the candidate has seen its ``min_requests``,
  whichever is later; an A/B test lasts until the fixed-horizon sample size that
  ``lockgate plan-test`` prints is reached (capped at ``max_duration_s``);
- blue-green runs the candidate's full fleet through warm-up and bake, and the baseline's fleet stays
  warm for ``keep_previous_warm_s`` after the switch; a canary adds its share; shadow adds compute for
  the mirrored fraction; rolling adds one batch (a surge batch) for the whole rollout;
- rolling back is one routing-table swap while the baseline is warm; where it is not (``direct``,
  ``rolling``) a rollback waits for baseline replicas to start (``replica_start_s``);
- risk exposure counts the requests the unproven candidate answers before it is promoted (shadow's
  answers are never returned: zero; ``direct`` promotes unjudged: all of them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from lockgate.errors import UserError
from lockgate.rollout.controller import Phase, Stage, plan
from lockgate.rollout.router import BUCKETS
from lockgate.rollout.spec import (
    AbStrategy,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    DeploymentSpec,
    DirectStrategy,
    RollingStrategy,
    ShadowStrategy,
    Strategy,
)

__all__ = [
    "STRATEGY_KINDS",
    "CostEstimate",
    "CostInputs",
    "StrategyCost",
    "estimate_cost",
    "specs_by_strategy",
]

STRATEGY_KINDS = ("direct", "blue_green", "canary", "rolling", "shadow", "ab")

#: The canary used when the spec's own strategy is another one (the docs' example steps).
DEFAULT_CANARY_STEPS = (
    CanaryStep(5, min_duration_s=300, min_requests=1000),
    CanaryStep(25, min_duration_s=300, min_requests=2000),
    CanaryStep(50, min_duration_s=600),
)


@dataclass(frozen=True)
class CostInputs:
    """The numbers a cost estimate needs; invalid values raise :class:`UserError` naming the option.

    ``replicas`` ``None`` means just enough baseline replicas for ``traffic_rps``;
    ``candidate_throughput_rps`` ``None`` means the same as the baseline's. ``ab_baseline_rate``
    and ``ab_mde`` size the A/B test exactly as ``lockgate plan-test --baseline --mde`` does.
    """

    price_per_replica_hour: float
    traffic_rps: float
    replica_throughput_rps: float
    replicas: int | None = None
    candidate_throughput_rps: float | None = None
    horizon_s: float = 30 * 86400.0
    replica_start_s: float = 60.0
    ab_baseline_rate: float = 0.10
    ab_mde: float = 0.01
    ab_alpha: float = 0.05
    ab_power: float = 0.8

    def __post_init__(self) -> None:
        for option, value in (
            ("--price", self.price_per_replica_hour),
            ("--traffic", self.traffic_rps),
            ("--throughput", self.replica_throughput_rps),
            ("--candidate-throughput", self.candidate_throughput_rps),
        ):
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise UserError(f"{option} {value:g} must be a positive number", hint=f"e.g. {option} 2.5")
        for option, value in (("--duration", self.horizon_s), ("--replica-start", self.replica_start_s)):
            if not math.isfinite(value) or value < 0:
                raise UserError(f"{option} {value:g} must be zero or more", hint=f"e.g. {option} 60")
        if self.replicas is not None and self.replicas < self.needed_replicas:
            raise UserError(
                f"--replicas {self.replicas} at {self.replica_throughput_rps:g} req/s each serve "
                f"{self.replicas * self.replica_throughput_rps:g} req/s, less than the traffic "
                f"{self.traffic_rps:g} req/s",
                hint=f"use --replicas {self.needed_replicas} or more, or leave it out",
            )

    @property
    def needed_replicas(self) -> int:
        return _ceil(self.traffic_rps / self.replica_throughput_rps)

    @property
    def baseline_replicas(self) -> int:
        return self.replicas if self.replicas is not None else self.needed_replicas

    @property
    def capacity_rps(self) -> float:
        """What the baseline fleet can serve: the candidate gets the same headroom."""
        return self.baseline_replicas * self.replica_throughput_rps

    @property
    def candidate_rps_per_replica(self) -> float:
        return self.candidate_throughput_rps or self.replica_throughput_rps

    def candidate_replicas(self, share: float) -> int:
        """Candidate replicas for ``share`` of the traffic (at least one when the share is above 0)."""
        if share <= 0:
            return 0
        return max(1, _ceil(share * self.capacity_rps / self.candidate_rps_per_replica))


def measured_speedup(metrics: Mapping[str, float]) -> float | None:
    """The throughput ratio ``lockgate optimize`` measured for a version against its parent (its run
    logs ``throughput_per_s`` and ``parent_throughput_per_s``, same inputs, same machine), or None."""
    mine, parent = metrics.get("throughput_per_s"), metrics.get("parent_throughput_per_s")
    if mine is None or parent is None or not (math.isfinite(mine) and math.isfinite(parent)):
        return None
    if mine <= 0 or parent <= 0:
        return None
    return mine / parent


@dataclass(frozen=True)
class StrategyCost:
    """One strategy's estimate. ``risk_requests`` is ``inf`` when the candidate is promoted unjudged."""

    strategy: str
    is_spec_strategy: bool
    duration_s: float
    extra_replica_hours: float
    cost: float
    rollback_time_s: float
    risk_requests: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CostEstimate:
    """All six strategies side by side, and what promotion changes in steady state."""

    inputs: CostInputs
    baseline_replicas: int
    candidate_replicas: int
    strategies: tuple[StrategyCost, ...] = field(default_factory=tuple)

    @property
    def steady_state_delta_cost(self) -> float:
        """Cost change over ``inputs.horizon_s`` once the candidate serves everything."""
        replicas = self.candidate_replicas - self.baseline_replicas
        return replicas * self.inputs.horizon_s / 3600.0 * self.inputs.price_per_replica_hour

    def for_strategy(self, kind: str) -> StrategyCost:
        for row in self.strategies:
            if row.strategy == kind:
                return row
        raise KeyError(kind)


def specs_by_strategy(spec: DeploymentSpec, *, replicas: int) -> dict[str, DeploymentSpec]:
    """The spec under each of the six strategies: its own where it has one, defaults elsewhere.

    Defaults: the strategy dataclasses' own defaults; a canary of 5%/25%/50%
    (:data:`DEFAULT_CANARY_STEPS`); rolling over ``replicas`` workers one at a time.
    """
    defaults: dict[str, Strategy] = {
        "direct": DirectStrategy(),
        "blue_green": BlueGreenStrategy(),
        "canary": CanaryStrategy(DEFAULT_CANARY_STEPS),
        "rolling": RollingStrategy(replicas=replicas),
        "shadow": ShadowStrategy(),
        "ab": AbStrategy(),
    }
    defaults[spec.strategy.kind] = spec.strategy
    return {kind: replace(spec, strategy=defaults[kind]) for kind in STRATEGY_KINDS}


def estimate_cost(spec: DeploymentSpec, inputs: CostInputs) -> CostEstimate:
    """Cost every strategy for this spec's deployment at these prices and this traffic."""
    variants = specs_by_strategy(spec, replicas=inputs.baseline_replicas)
    rows = tuple(
        _strategy_cost(variants[kind], inputs, is_spec_strategy=kind == spec.strategy.kind)
        for kind in STRATEGY_KINDS
    )
    return CostEstimate(inputs, inputs.baseline_replicas, inputs.candidate_replicas(1.0), rows)


def _strategy_cost(spec: DeploymentSpec, inputs: CostInputs, *, is_spec_strategy: bool) -> StrategyCost:
    strategy = spec.strategy
    traffic = inputs.traffic_rps
    full_fleet = inputs.candidate_replicas(1.0)
    notes: list[str] = []
    duration_s = 0.0
    replica_seconds = 0.0
    risk = 0.0
    for stage in plan(spec):
        share = stage.candidate_bp / BUCKETS
        seen_share = share + stage.shadow_fraction * (1.0 - share)
        stage_s = _stage_duration(stage, traffic * seen_share)
        if stage.phase is Phase.EXPERIMENTING and isinstance(strategy, AbStrategy):
            stage_s, note = _ab_duration(strategy, inputs, stage_s)
            notes.extend(note)
        if isinstance(strategy, BlueGreenStrategy):
            extra = full_fleet  # the candidate's whole fleet is warm in warm-up and bake
        elif isinstance(strategy, RollingStrategy):
            extra = strategy.batch_size  # one surge batch, started before a baseline batch stops
        else:
            extra = inputs.candidate_replicas(seen_share)
        duration_s += stage_s
        replica_seconds += extra * stage_s
        risk += traffic * share * stage_s
    rollback_s = 0.0
    if isinstance(strategy, BlueGreenStrategy):
        replica_seconds += inputs.baseline_replicas * strategy.keep_previous_warm_s
        notes.append(
            f"the baseline's {inputs.baseline_replicas} replicas stay warm "
            f"{_short(strategy.keep_previous_warm_s)} after the switch"
        )
    elif isinstance(strategy, DirectStrategy):
        risk = math.inf
        rollback_s = inputs.replica_start_s
        notes.append("no analysis: every request after the switch is unjudged")
    elif isinstance(strategy, RollingStrategy):
        rollback_s = inputs.replica_start_s
        notes.append("baseline workers must start again to roll back")
    elif isinstance(strategy, ShadowStrategy) and not strategy.promote_on_pass:
        notes.append("ends 'completed': the baseline keeps serving")
    hours = replica_seconds / 3600.0
    return StrategyCost(
        strategy=strategy.kind,
        is_spec_strategy=is_spec_strategy,
        duration_s=duration_s,
        extra_replica_hours=hours,
        cost=hours * inputs.price_per_replica_hour,
        rollback_time_s=rollback_s,
        risk_requests=risk,
        notes=tuple(notes),
    )


def _stage_duration(stage: Stage, candidate_rps: float) -> float:
    """A stage ends when it has lasted ``min_duration_s`` and the candidate has seen ``min_requests``."""
    by_requests = stage.min_requests / candidate_rps if candidate_rps > 0 else 0.0
    return max(stage.min_duration_s, by_requests)


def _ab_duration(strategy: AbStrategy, inputs: CostInputs, stage_s: float) -> tuple[float, list[str]]:
    from lockgate.stats.power import sample_size_two_proportions

    split = strategy.split_percent / 100.0
    ratio = split / (1.0 - split)
    n_baseline = sample_size_two_proportions(
        inputs.ab_baseline_rate, inputs.ab_mde, alpha=inputs.ab_alpha, power=inputs.ab_power, ratio=ratio
    )
    total = n_baseline + math.ceil(n_baseline * ratio)
    planned_s = max(stage_s, total / inputs.traffic_rps)
    note = f"{total:,} samples for {inputs.ab_baseline_rate:g} → {inputs.ab_baseline_rate + inputs.ab_mde:g}"
    if planned_s > strategy.max_duration_s:
        return strategy.max_duration_s, [
            f"{note}, more than max_duration_s allows: "
            f"the test ends undecided at {_short(strategy.max_duration_s)}"
        ]
    return planned_s, [note + " (as `lockgate plan-test`)"]


def _ceil(value: float) -> int:
    """Ceiling that ignores float noise (0.25 * 200 / 50 is exactly one replica, not two)."""
    return math.ceil(value - 1e-9)


def _short(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
