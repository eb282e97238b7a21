"""What the controller keeps between ticks (:class:`RolloutState`) and the actions it returns for
the shell to carry out, plus :func:`stats_since`, the window of counts a rollout judges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from lockgate.rollout.phases import TERMINAL_PHASES, Phase
from lockgate.rollout.router import BUCKETS, RoutingTable
from lockgate.rollout.spec import DeploymentSpec
from lockgate.stats.accumulators import LatencyHistogram, Moments, Proportion, VariantStats
from lockgate.stats.generation import GenerationStats
from lockgate.stats.verdict import Decision, Verdict

__all__ = [
    "Action",
    "Pause",
    "Promote",
    "RecordEvent",
    "Rollback",
    "RolloutState",
    "SetWeights",
    "Snapshot",
    "baseline_weights",
    "initial_state",
    "loaded_variants",
    "routing_table",
    "serving_actions",
    "stats_since",
    "weights_for",
]

Snapshot: TypeAlias = Mapping[str, VariantStats]
"""Cumulative stats per variant name, summed over workers (missing variants count as empty)."""


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetWeights:
    """Route traffic by these weights (basis points, baseline first), mirror, and size workers.

    ``replicas``: the replica count of each variant listed, on a backend that has replicas; a
    variant not listed runs the replicas its spec's ``scaling`` asks for. (Ray Serve keeps at least
    one replica of a variant that is still loaded: a count of 0 is the way back kept warm.) Every
    variant of a rollout that has not finished stays loaded (warm), so the way back is a table swap.
    """

    weights_bp: tuple[tuple[str, int], ...]
    shadow_variant: str | None = None
    shadow_fraction: float = 0.0
    replicas: tuple[tuple[str, int], ...] = ()

    def table(self) -> RoutingTable:
        """The immutable routing table to swap in."""
        return RoutingTable.from_weights(
            self.weights_bp,
            shadow_variant=self.shadow_variant if self.shadow_fraction > 0 else None,
            shadow_fraction=self.shadow_fraction,
        )


@dataclass(frozen=True)
class Promote:
    """``variant`` is now the champion; ``retire`` stays loaded ``retire_after_s`` more (blue-green's
    ``keep_previous_warm_s``: a rollback inside it is a table swap), then is unloaded."""

    variant: str
    retire: tuple[str, ...] = ()
    retire_after_s: float = 0.0


@dataclass(frozen=True)
class Rollback:
    """All traffic is back on ``variant``; ``retire`` (the candidate) is unloaded."""

    variant: str
    retire: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pause:
    """The rollout stopped advancing; it resumes by command or, when set, at ``until``."""

    until: float | None = None


@dataclass(frozen=True)
class RecordEvent:
    """One entry for the append-only audit log: who did what, when, why, and the numbers."""

    at: float
    actor: str
    action: str
    reason: str
    from_phase: str
    to_phase: str
    numbers: Mapping[str, float] = field(default_factory=dict)


Action: TypeAlias = SetWeights | Promote | Rollback | Pause | RecordEvent
Result: TypeAlias = tuple["RolloutState", tuple[Action, ...]]


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutState:
    """Everything the controller knows between ticks; JSON-able with :meth:`to_dict`.

    ``stats_at_start`` holds each variant's cumulative stats when the rollout started: analysis
    judges what happened since then. ``requests_at_stage_start`` counts toward a stage's
    ``min_requests``. A paused rollout keeps the time its stage had run in ``stage_elapsed_s``.
    """

    phase: Phase = Phase.PENDING
    stage_index: int = 0
    weights_bp: tuple[tuple[str, int], ...] = ()
    shadow_variant: str | None = None
    shadow_fraction: float = 0.0
    replicas: tuple[tuple[str, int], ...] = ()
    started_at: float | None = None
    stage_started_at: float | None = None
    paused_at: float | None = None
    paused_from: Phase | None = None
    pause_until: float | None = None
    stage_elapsed_s: float = 0.0
    stats_at_start: Mapping[str, VariantStats] = field(default_factory=dict)
    requests_at_stage_start: Mapping[str, int] = field(default_factory=dict)
    stats_at_stage_start: Mapping[str, VariantStats] = field(default_factory=dict)
    is_stage_window_open: bool = True
    last_verdict: Verdict | None = None
    reason: str = ""
    updated_at: float | None = None
    retiring: tuple[str, ...] = ()
    retire_at: float | None = None

    @property
    def is_finished(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def is_previous_warm(self, now: float) -> bool:
        """Whether a promoted rollout still keeps the version it replaced loaded at ``now``."""
        return (
            self.phase is Phase.PROMOTED
            and bool(self.retiring)
            and self.retire_at is not None
            and now < self.retire_at
        )

    def weight_of(self, variant: str) -> int:
        return dict(self.weights_bp).get(variant, 0)

    def to_dict(self) -> dict[str, Any]:
        verdict = self.last_verdict
        return {
            "phase": self.phase.value,
            "stage_index": self.stage_index,
            "weights_bp": [[name, weight] for name, weight in self.weights_bp],
            "shadow_variant": self.shadow_variant,
            "shadow_fraction": self.shadow_fraction,
            "replicas": [[name, count] for name, count in self.replicas],
            "started_at": self.started_at,
            "stage_started_at": self.stage_started_at,
            "paused_at": self.paused_at,
            "paused_from": self.paused_from.value if self.paused_from else None,
            "pause_until": self.pause_until,
            "stage_elapsed_s": self.stage_elapsed_s,
            "stats_at_start": {k: v.to_dict() for k, v in self.stats_at_start.items()},
            "requests_at_stage_start": dict(self.requests_at_stage_start),
            "stats_at_stage_start": {k: v.to_dict() for k, v in self.stats_at_stage_start.items()},
            "is_stage_window_open": self.is_stage_window_open,
            "last_verdict": None
            if verdict is None
            else {
                "decision": verdict.decision.value,
                "reasons": list(verdict.reasons),
                "numbers": dict(verdict.numbers),
            },
            "reason": self.reason,
            "updated_at": self.updated_at,
            "retiring": list(self.retiring),
            "retire_at": self.retire_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        verdict = data.get("last_verdict")
        return cls(
            phase=Phase(data["phase"]),
            stage_index=int(data["stage_index"]),
            weights_bp=tuple((str(n), int(w)) for n, w in data["weights_bp"]),
            shadow_variant=data.get("shadow_variant"),
            shadow_fraction=float(data.get("shadow_fraction", 0.0)),
            replicas=tuple((str(n), int(c)) for n, c in data.get("replicas", ())),
            started_at=data.get("started_at"),
            stage_started_at=data.get("stage_started_at"),
            paused_at=data.get("paused_at"),
            paused_from=Phase(data["paused_from"]) if data.get("paused_from") else None,
            pause_until=data.get("pause_until"),
            stage_elapsed_s=float(data.get("stage_elapsed_s", 0.0)),
            stats_at_start={k: VariantStats.from_dict(v) for k, v in data.get("stats_at_start", {}).items()},
            requests_at_stage_start={
                str(k): int(v) for k, v in data.get("requests_at_stage_start", {}).items()
            },
            stats_at_stage_start={
                k: VariantStats.from_dict(v) for k, v in data.get("stats_at_stage_start", {}).items()
            },
            is_stage_window_open=bool(data.get("is_stage_window_open", True)),
            last_verdict=None
            if verdict is None
            else Verdict(
                Decision(verdict["decision"]),
                tuple(verdict["reasons"]),
                {str(k): float(v) for k, v in verdict["numbers"].items()},
            ),
            reason=str(data.get("reason", "")),
            updated_at=data.get("updated_at"),
            retiring=tuple(str(n) for n in data.get("retiring", ())),
            retire_at=data.get("retire_at"),
        )


def baseline_weights(spec: DeploymentSpec) -> tuple[tuple[str, int], ...]:
    """All traffic on the baseline, the candidate listed with weight 0."""
    return ((spec.baseline, BUCKETS), (spec.candidate, 0))


def weights_for(spec: DeploymentSpec, candidate_bp: int) -> tuple[tuple[str, int], ...]:
    """The baseline first, the candidate last with ``candidate_bp`` basis points."""
    return ((spec.baseline, BUCKETS - candidate_bp), (spec.candidate, candidate_bp))


def initial_state(spec: DeploymentSpec) -> RolloutState:
    """A rollout not yet started: all traffic on the baseline."""
    return RolloutState(weights_bp=baseline_weights(spec), reason="created")


def routing_table(state: RolloutState) -> RoutingTable:
    """The routing table a state implies (what a restarted shell swaps in)."""
    return SetWeights(state.weights_bp, state.shadow_variant, state.shadow_fraction).table()


def serving_actions(spec: DeploymentSpec, state: RolloutState, now: float) -> tuple[Action, ...]:
    """The actions that bring a shell to what ``state`` serves, for a shell that did not see the
    moves that led there (a restart, another gateway on the same store): the weights, the pause,
    and the retirement still owed (whose delay is what is left of it at ``now``)."""
    actions: list[Action] = [
        SetWeights(state.weights_bp, state.shadow_variant, state.shadow_fraction, state.replicas)
    ]
    if state.phase is Phase.PAUSED:
        actions.append(Pause(state.pause_until))
    if state.retiring:
        left_s = max(0.0, (state.retire_at or now) - now)
        if state.phase is Phase.PROMOTED:
            actions.append(Promote(spec.candidate, state.retiring, left_s))
        elif state.phase is Phase.ROLLED_BACK:
            actions.append(Rollback(spec.baseline, state.retiring))
    return tuple(actions)


def loaded_variants(spec: DeploymentSpec, state: RolloutState, now: float) -> tuple[str, ...]:
    """The variants a shell must have loaded to serve ``state`` at ``now``: all of the spec's,
    less those a finished rollout retired (once their time to stay warm is over)."""
    is_retired = state.retire_at is not None and now >= state.retire_at
    gone = set(state.retiring) if is_retired else set()
    return tuple(name for name in spec.variants if name not in gone)


def stats_since(current: VariantStats | None, start: VariantStats | None) -> VariantStats:
    """What a variant served between two cumulative snapshots.

    A ``current`` below ``start`` means the counters were reset (the workers restarted), so all of
    ``current`` counts, as Prometheus does for a counter reset.
    """
    if current is None:
        return VariantStats()
    if start is None or start.requests == 0 or current.requests < start.requests:
        return current.copy()
    latency = _histogram_since(current.latency, start.latency)
    return VariantStats(
        requests=current.requests - start.requests,
        errors=max(current.errors - start.errors, 0),
        latency=latency,
        outcome=_moments_since(current.outcome, start.outcome),
        conversions=Proportion(
            max(current.conversions.trials - start.conversions.trials, 0),
            max(current.conversions.successes - start.conversions.successes, 0),
        ),
        units=current.units.since(start.units),
        generation=_generation_since(current.generation, start.generation),
    )


def _histogram_since(current: LatencyHistogram, start: LatencyHistogram) -> LatencyHistogram:
    return LatencyHistogram(
        current.bounds_ms,
        np.maximum(current.counts - start.counts, 0),
        max(current.sum_ms - start.sum_ms, 0.0),
    )


def _generation_since(
    current: GenerationStats | None, start: GenerationStats | None
) -> GenerationStats | None:
    """What a variant generated between two cumulative snapshots (all of it after a reset)."""
    if current is None or start is None or current.requests < start.requests:
        return None if current is None else current.copy()
    return GenerationStats(
        requests=current.requests - start.requests,
        errors=max(current.errors - start.errors, 0),
        timeouts=max(current.timeouts - start.timeouts, 0),
        empty=max(current.empty - start.empty, 0),
        prompt_tokens=max(current.prompt_tokens - start.prompt_tokens, 0),
        completion_tokens=max(current.completion_tokens - start.completion_tokens, 0),
        priced_tokens=max(current.priced_tokens - start.priced_tokens, 0),
        cost=max(current.cost - start.cost, 0.0),
        ttft=_histogram_since(current.ttft, start.ttft),
        inter_token=_histogram_since(current.inter_token, start.inter_token),
        tokens_per_s=_moments_since(current.tokens_per_s, start.tokens_per_s),
    )


def _moments_since(current: Moments, start: Moments) -> Moments:
    """Undo Chan et al.'s merge: the moments of the values added after ``start``."""
    count = current.count - start.count
    if count <= 0:
        return Moments()
    mean = (current.mean * current.count - start.mean * start.count) / count
    delta = mean - start.mean
    m2 = current.m2 - start.m2 - delta * delta * start.count * count / current.count
    return Moments(count, mean, max(m2, 0.0))
