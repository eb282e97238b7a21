"""What a strategy compiles to: the stages a rollout goes through, each with its weights and limits."""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.errors import ValidationError
from lockgate.rollout.phases import Phase
from lockgate.rollout.router import BUCKETS
from lockgate.rollout.spec import (
    AbStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    DeploymentSpec,
    DirectStrategy,
    RollingStrategy,
    ShadowStrategy,
)

__all__ = ["INCONCLUSIVE_FACTOR", "Stage", "candidate_share", "final_phase", "is_comparable", "plan"]


@dataclass(frozen=True)
class Stage:
    """One stretch of a rollout: a phase, the candidate's weight and mirror, and how long it lasts.

    The stage ends when it has lasted ``min_duration_s``, the candidate has served
    ``min_requests`` since it began and, where the two arms can be compared, the policy has the
    evidence (verdict promote: every guardrail non-inferior, or an A/B winner). A stage still
    without evidence at ``max_duration_s`` ends as the spec's ``on_inconclusive`` says (roll back by
    default, or hold). ``max_error_rate`` and ``max_p99_latency_ms`` are absolute checks on the
    candidate when the stage ends.
    """

    phase: Phase
    candidate_bp: int
    min_duration_s: float = 0.0
    min_requests: int = 0
    shadow_fraction: float = 0.0
    replicas: tuple[tuple[str, int], ...] = ()
    max_duration_s: float | None = None
    is_experiment: bool = False
    max_error_rate: float | None = None
    max_p99_latency_ms: float | None = None
    needs_approval: bool = False  # a pause step with no duration: waits for `lockgate rollout promote`


def candidate_share(stage: Stage) -> float:
    """The candidate's expected share of the requests the two arms see during ``stage``.

    Routed traffic splits by weight; mirrored copies (shadow, blue-green warm-up) add ``f`` of the
    baseline's requests to the candidate: a share of f / (1 + f).
    """
    if stage.candidate_bp == 0 and stage.shadow_fraction > 0:
        return stage.shadow_fraction / (1.0 + stage.shadow_fraction)
    return stage.candidate_bp / BUCKETS


def plan(spec: DeploymentSpec) -> tuple[Stage, ...]:
    """The stages a strategy goes through; after the last one the rollout finishes."""
    strategy = spec.strategy
    if isinstance(strategy, DirectStrategy):
        return ()
    if isinstance(strategy, CanaryStrategy):
        return tuple(
            Stage(
                Phase.STEPPING,
                s.weight_bp,
                s.min_duration_s,
                s.min_requests,
                max_duration_s=None if s.is_pause else _max_duration(s.min_duration_s, s.max_duration_s),
                needs_approval=s.needs_approval,
            )
            for s in strategy.steps
        )
    if isinstance(strategy, BlueGreenStrategy):
        warmup = strategy.warmup
        return (
            Stage(
                Phase.WARMING,
                0,
                warmup.min_duration_s,
                warmup.min_requests,
                shadow_fraction=warmup.shadow_fraction,
                max_duration_s=_max_duration(warmup.min_duration_s, None),
                max_error_rate=warmup.max_error_rate,
                max_p99_latency_ms=warmup.max_p99_latency_ms,
            ),
            # the baseline stays loaded while it bakes, like every variant of a live rollout
            Stage(Phase.BAKING, BUCKETS, strategy.bake_s, strategy.bake_min_requests),
        )
    if isinstance(strategy, RollingStrategy):
        stages = []
        replaced = 0
        while replaced < strategy.replicas:
            replaced = min(strategy.replicas, replaced + strategy.batch_size)
            stages.append(
                Stage(
                    Phase.STEPPING,
                    replaced * BUCKETS // strategy.replicas,
                    strategy.min_duration_s,
                    strategy.min_requests,
                    replicas=(
                        (spec.baseline, strategy.replicas - replaced),
                        (spec.candidate, replaced),
                    ),
                    max_duration_s=_max_duration(strategy.min_duration_s, None),
                )
            )
        return tuple(stages)
    if isinstance(strategy, ShadowStrategy):
        return (
            Stage(
                Phase.SHADOWING,
                0,
                strategy.min_duration_s,
                strategy.min_requests,
                shadow_fraction=strategy.fraction,
                max_duration_s=_max_duration(strategy.min_duration_s, None),
            ),
        )
    if isinstance(strategy, AbStrategy):
        return (
            Stage(
                Phase.EXPERIMENTING,
                round(strategy.split_percent * 100),
                strategy.min_duration_s,
                strategy.min_requests,
                max_duration_s=strategy.max_duration_s,
                is_experiment=True,
            ),
        )
    raise ValidationError(f"strategy {strategy!r} has no plan", hint="use a known strategy type")


INCONCLUSIVE_FACTOR = 3.0
"""A stage without its own ``max_duration_s`` waits for evidence up to this many times its
``min_duration_s`` (a stage without a duration waits for evidence as long as it takes)."""


def _max_duration(min_duration_s: float, given: float | None) -> float | None:
    if given is not None:
        return given
    return INCONCLUSIVE_FACTOR * min_duration_s if min_duration_s > 0 else None


def is_comparable(stage: Stage) -> bool:
    """Whether both arms see traffic in ``stage``, so the policy can compare them."""
    return 0.0 < candidate_share(stage) < 1.0


def final_phase(spec: DeploymentSpec) -> Phase:
    strategy = spec.strategy
    if isinstance(strategy, ShadowStrategy) and not strategy.promote_on_pass:
        return Phase.COMPLETED
    return Phase.PROMOTED
