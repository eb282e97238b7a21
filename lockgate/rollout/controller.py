"""The rollout state machine: one transition table drives every strategy.

Pure: every function takes the spec, the current :class:`RolloutState`, the time (``now``, seconds)
and, for :func:`step`, a snapshot of cumulative per-variant stats and a policy; it returns the next
state and the actions for the shell to carry out (:class:`SetWeights`, :class:`Promote`,
:class:`Rollback`, :class:`Pause`, :class:`RecordEvent`). No clock, no I/O, no randomness.

A strategy compiles to a :func:`plan` (:mod:`lockgate.rollout.stages`): a sequence of
:class:`Stage` objects, each a phase with its weights and the time and requests it must last.
:func:`step` runs the same loop for all of them: analyse (the policy judges baseline and candidate
stats since the rollout started), roll back or halt on a bad verdict, otherwise advance when the
stage has its evidence and has lasted long enough, and finish after the last stage. A paused
rollout does not advance, but its analysis still rolls back a bad candidate. The phases and their
table are in :mod:`lockgate.rollout.phases`, the state and actions in :mod:`lockgate.rollout.state`;
this module re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from lockgate.errors import IllegalTransition, ValidationError
from lockgate.rollout.phases import LIVE_PHASES, TERMINAL_PHASES, TRANSITIONS, Phase
from lockgate.rollout.policy import RolloutPolicy, RolloutView
from lockgate.rollout.router import BUCKETS
from lockgate.rollout.spec import BlueGreenStrategy, DeploymentSpec
from lockgate.rollout.stages import Stage, candidate_share, final_phase, is_comparable, plan
from lockgate.rollout.state import (
    Action,
    Pause,
    Promote,
    RecordEvent,
    Result,
    Rollback,
    RolloutState,
    SetWeights,
    Snapshot,
    initial_state,
    loaded_variants,
    routing_table,
    serving_actions,
    stats_since,
    weights_for,
)
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.generation import generation_values
from lockgate.stats.verdict import Decision, Policy, Verdict

__all__ = [
    "LIVE_PHASES",
    "TERMINAL_PHASES",
    "TRANSITIONS",
    "Action",
    "Pause",
    "Phase",
    "Promote",
    "RecordEvent",
    "Rollback",
    "RolloutState",
    "SetWeights",
    "Snapshot",
    "Stage",
    "candidate_share",
    "initial_state",
    "is_comparable",
    "loaded_variants",
    "pause",
    "plan",
    "promote",
    "resume",
    "rollback",
    "routing_table",
    "serving_actions",
    "start",
    "stats_since",
    "step",
]

CONTROLLER = "controller"


def _move(state: RolloutState, to: Phase, now: float, reason: str, **changes: Any) -> RolloutState:
    """The only place a phase changes: checked against :data:`TRANSITIONS`. A finished rollout
    moves only while the version it replaced is still warm (a blue-green switch back)."""
    allowed = TRANSITIONS[state.phase]
    is_over = state.phase in TERMINAL_PHASES and not state.is_previous_warm(now)
    if is_over:
        allowed = frozenset()
    if to not in allowed:
        hint = (
            _finished_hint(state)
            if is_over
            else f"from {state.phase.value} it can move to: {', '.join(sorted(p.value for p in allowed))}."
        )
        raise IllegalTransition(
            f"cannot move a rollout from {state.phase.value} to {to.value}",
            hint=hint,
            detail={"from": state.phase.value, "to": to.value},
        )
    return replace(state, phase=to, reason=reason, updated_at=now, **changes)


_AFTER_THE_END = (
    "the rollout has finished; to roll out again, deploy a spec and start it: lockgate deploy SPEC --start."
)
"""What a person can do with a finished rollout (none of the commands moves it again)."""


def _finished_hint(state: RolloutState) -> str:
    """Why a finished rollout does not move, and what to do instead."""
    retire_at, promoted_at = state.retire_at, state.updated_at
    # a blue-green switch kept the previous version warm for a while
    if state.phase is Phase.PROMOTED and retire_at is not None and retire_at > (promoted_at or retire_at):
        until = datetime.fromtimestamp(retire_at, tz=UTC).isoformat(timespec="seconds")
        return (
            f"the previous version ({', '.join(state.retiring)}) was kept warm for a switch back "
            f"until {until} (keep_previous_warm_s), and that time is over; {_AFTER_THE_END}"
        )
    return _AFTER_THE_END


def _resume_hint(phase: Phase) -> str:
    """Why a rollout in ``phase`` cannot resume, and what to do instead."""
    if phase in TERMINAL_PHASES:
        return _AFTER_THE_END  # not even in a blue-green switch back's window: that is a rollback
    if phase is Phase.PENDING:
        return "it has not started: lockgate rollout start NAME."
    if phase is Phase.HALTED:
        return "a halted rollout waits for a person: promote it or roll it back."
    return f"it is {phase.value}, not paused: it carries on by itself."


def _event(
    before: RolloutState,
    after: RolloutState,
    now: float,
    actor: str,
    action: str,
    numbers: Mapping[str, float] | None = None,
) -> RecordEvent:
    return RecordEvent(
        at=now,
        actor=actor,
        action=action,
        reason=after.reason,
        from_phase=before.phase.value,
        to_phase=after.phase.value,
        numbers=dict(numbers or {}),
    )


# --- manual commands -------------------------------------------------------------------------


def start(
    spec: DeploymentSpec,
    state: RolloutState,
    snapshot: Snapshot,
    now: float,
    *,
    actor: str = CONTROLLER,
    reason: str = "rollout started",
) -> Result:
    """Begin the rollout: remember where the counters stand, enter the first stage."""
    if state.phase is not Phase.PENDING:
        # Only the first move out of pending is a start; anything else would restart a live rollout.
        raise IllegalTransition(
            f"cannot start a rollout that is {state.phase.value}",
            hint="a rollout starts once, from pending; create a new one to try again.",
            detail={"from": state.phase.value, "to": "start"},
        )
    begun = replace(
        state,
        started_at=now,
        stats_at_start={name: stats.copy() for name, stats in snapshot.items()},
    )
    stages = plan(spec)
    if not stages:
        return _finish(spec, begun, final_phase(spec), now, actor, "promote", reason)
    return _enter(spec, begun, stages, 0, snapshot, now, actor, "start", reason)


def promote(
    spec: DeploymentSpec,
    state: RolloutState,
    now: float,
    *,
    actor: str,
    reason: str | None = None,
    full: bool = False,
) -> Result:
    """Skip the remaining stages: the candidate takes all traffic. At a pause step that waits for
    approval, promote is the approval: the rollout moves on to the next stage (or, after the last
    one, promotes), as Argo Rollouts' ``promote`` does; ``full`` skips the remaining stages anyway."""
    stages = plan(spec)
    if (
        not full
        and state.phase is Phase.STEPPING
        and state.stage_index < len(stages)
        and stages[state.stage_index].needs_approval
        and state.stage_index + 1 < len(stages)
    ):
        why = reason or "approved by hand"
        # the counters at the pause's start stand in for now (a rollout policy reopens the window
        # at its first look anyway)
        entered = state.stats_at_stage_start
        return _enter(spec, state, stages, state.stage_index + 1, entered, now, actor, "approve", why)
    return _finish(spec, state, Phase.PROMOTED, now, actor, "promote", reason or "promoted by hand")


def rollback(
    spec: DeploymentSpec,
    state: RolloutState,
    now: float,
    *,
    actor: str,
    reason: str = "rolled back by hand",
) -> Result:
    """Send all traffic back to the baseline and stop. After a blue-green switch, while the previous
    version is still warm (``keep_previous_warm_s``), this switches back at the next request."""
    return _finish(spec, state, Phase.ROLLED_BACK, now, actor, "rollback", reason)


def pause(
    spec: DeploymentSpec,
    state: RolloutState,
    now: float,
    *,
    actor: str,
    reason: str = "paused by hand",
    duration_s: float | None = None,
) -> Result:
    """Stop advancing (weights stay); resume by command or after ``duration_s``."""
    if duration_s is not None and duration_s <= 0:
        raise ValidationError(
            f"pause duration {duration_s} s is not positive",
            hint="give a duration above 0, or none to pause until resumed",
        )
    elapsed = now - state.stage_started_at if state.stage_started_at is not None else 0.0
    until = now + duration_s if duration_s is not None else None
    paused = _move(
        state,
        Phase.PAUSED,
        now,
        reason,
        paused_at=now,
        paused_from=state.phase,
        pause_until=until,
        stage_elapsed_s=elapsed,
    )
    return paused, (Pause(until), _event(state, paused, now, actor, "pause"))


def resume(
    spec: DeploymentSpec,
    state: RolloutState,
    now: float,
    *,
    actor: str,
    reason: str = "resumed by hand",
) -> Result:
    """Carry on from where the pause stopped the stage clock."""
    if state.phase is not Phase.PAUSED or state.paused_from is None:
        raise IllegalTransition(
            f"cannot resume a rollout that is {state.phase.value}",
            hint=f"only a paused rollout resumes; {_resume_hint(state.phase)}",
            detail={"from": state.phase.value, "to": "resume"},
        )
    resumed = _move(
        state,
        state.paused_from,
        now,
        reason,
        stage_started_at=now - state.stage_elapsed_s,
        paused_at=None,
        paused_from=None,
        pause_until=None,
        stage_elapsed_s=0.0,
    )
    return resumed, (_event(state, resumed, now, actor, "resume"),)


# --- the tick --------------------------------------------------------------------------------


def step(
    spec: DeploymentSpec,
    state: RolloutState,
    snapshot: Snapshot,
    now: float,
    policy: Policy,
    external: Mapping[str, Mapping[str, float]] | None = None,
) -> Result:
    """One controller tick: analyse, then roll back, halt, wait, advance or finish.

    ``external``: the values of the spec's ``analysis.metrics`` at this look, metric name →
    variant → value, as a metrics provider gave them (a missing value is not judged); a
    candidate's value past its limit rolls the rollout back like a harmful verdict. A metric
    without a query is a generation metric, read from the variants' own counters since the
    rollout began (:func:`generation_values`)."""
    actions: tuple[Action, ...] = ()
    if state.phase is Phase.PAUSED and state.pause_until is not None and now >= state.pause_until:
        state, actions = resume(spec, state, state.pause_until, actor=CONTROLLER, reason="pause elapsed")
    if state.phase not in LIVE_PHASES and state.phase is not Phase.PAUSED:
        return state, actions
    stages = plan(spec)
    if state.stage_index >= len(stages):
        raise IllegalTransition(
            f"the rollout is at stage {state.stage_index + 1} but its spec has {len(stages)}",
            hint="the spec changed under a running rollout; roll it back and start a new one.",
            detail={"from": state.phase.value, "to": "step"},
        )
    stage = stages[state.stage_index]
    if isinstance(policy, RolloutPolicy) and not state.is_stage_window_open:
        # The first look after a stage's weights changed opens its window: requests routed by the
        # old table while the change was being written count neither toward its split nor toward
        # its min_requests. (A plain Policy judges since the start and keeps the entry counts.)
        state = replace(
            state,
            stats_at_stage_start={name: stats.copy() for name, stats in snapshot.items()},
            requests_at_stage_start={name: stats.requests for name, stats in snapshot.items()},
            is_stage_window_open=True,
        )
    baseline = stats_since(snapshot.get(spec.baseline), state.stats_at_start.get(spec.baseline))
    candidate = stats_since(snapshot.get(spec.candidate), state.stats_at_start.get(spec.candidate))
    comparable = is_comparable(stage)
    if isinstance(policy, RolloutPolicy):
        stage_window = state.stats_at_stage_start or state.stats_at_start
        view = RolloutView(
            baseline,
            candidate,
            stats_since(snapshot.get(spec.baseline), stage_window.get(spec.baseline)),
            stats_since(snapshot.get(spec.candidate), stage_window.get(spec.candidate)),
            candidate_share(stage),
            is_mirrored=stage.candidate_bp == 0 and stage.shadow_fraction > 0,
            is_experiment=stage.is_experiment,
        )
        verdict = (
            policy.judge(view)
            if comparable
            else Verdict(
                Decision.CONTINUE,
                (
                    "one arm has all the traffic "
                    f"(candidate share {candidate_share(stage):g}): nothing to compare",
                ),
                {"n_baseline": float(baseline.requests), "n_candidate": float(candidate.requests)},
            )
        )
    else:
        verdict = policy.decide(baseline, candidate)
    state = replace(state, last_verdict=verdict)
    numbers = _numbers(spec, state, verdict, baseline, candidate, snapshot, now)
    why = "; ".join(verdict.reasons) or verdict.decision.value
    if verdict.decision is Decision.ROLLBACK:
        reason = f"policy: {why}"
        return _then(
            actions,
            _finish(spec, state, Phase.ROLLED_BACK, now, CONTROLLER, "rollback", reason, numbers),
        )
    if verdict.decision is Decision.HALT:
        reason = f"policy: {why}"
        return _then(
            actions,
            _finish(spec, state, Phase.HALTED, now, CONTROLLER, "halt", reason, numbers),
        )
    breaches = []
    generated = {spec.baseline: baseline.generation, spec.candidate: candidate.generation}
    for metric in spec.analysis.metrics:
        measured = (
            generation_values(metric.name, generated)
            if metric.is_generation
            else (external or {}).get(metric.name, {})
        )
        for variant, value in measured.items():
            numbers[f"metric_{metric.name}_{variant}"] = float(value)
        candidate_value = measured.get(spec.candidate)
        breach = metric.breach(candidate_value) if candidate_value is not None else None
        if breach is not None:
            breaches.append(f"{metric.name} of the candidate is {candidate_value:g}, {breach}")
    if breaches:
        reason = "analysis metric: " + "; ".join(breaches)
        return _then(
            actions,
            _finish(spec, state, Phase.ROLLED_BACK, now, CONTROLLER, "rollback", reason, numbers),
        )
    if state.phase is Phase.PAUSED or state.stage_started_at is None:
        return state, actions
    if stage.needs_approval:
        # a pause step: it is judged like any stage (harm still rolls back), but only a person
        # moves it on, with `lockgate rollout promote`
        return state, actions

    elapsed_s = now - state.stage_started_at
    # The default (rollout) policy advances on evidence; a plain policy, like the threshold one,
    # advances on time unless it is an A/B test, which always waits for a winner.
    needs_evidence = comparable if isinstance(policy, RolloutPolicy) else stage.is_experiment
    has_evidence = not needs_evidence or verdict.decision is Decision.PROMOTE
    is_ready = elapsed_s >= stage.min_duration_s and numbers["stage_requests"] >= stage.min_requests
    if not (is_ready and has_evidence):
        if stage.max_duration_s is None or elapsed_s < stage.max_duration_s:
            return state, actions
        reason = (
            f"no evidence after {stage.max_duration_s:g} s (stage {state.stage_index + 1} of "
            f"{len(stages)}): {why}"
            if is_ready
            else f"stage {state.stage_index + 1} did not reach {stage.min_requests:,} requests in "
            f"{stage.max_duration_s:g} s"
        )
        if spec.analysis.on_inconclusive == "hold":
            held, held_actions = pause(
                spec, state, now, actor=CONTROLLER, reason=f"held: {reason}; a person decides"
            )
            return held, actions + held_actions
        return _then(
            actions,
            _finish(
                spec,
                state,
                Phase.ROLLED_BACK,
                now,
                CONTROLLER,
                "rollback",
                f"{reason}; the baseline stays",
                numbers,
            ),
        )
    failed = _absolute_checks(stage, candidate)
    if failed:
        return _then(
            actions,
            _finish(spec, state, Phase.ROLLED_BACK, now, CONTROLLER, "rollback", failed, numbers),
        )
    done = f"stage {state.stage_index + 1} of {len(stages)} passed ({why})"
    if state.stage_index + 1 < len(stages):
        entered = _enter(
            spec,
            state,
            stages,
            state.stage_index + 1,
            snapshot,
            now,
            CONTROLLER,
            "advance",
            done,
            numbers,
        )
        return _then(actions, entered)
    action = "promote" if final_phase(spec) is Phase.PROMOTED else "complete"
    return _then(
        actions,
        _finish(spec, state, final_phase(spec), now, CONTROLLER, action, done, numbers),
    )


def _then(before: tuple[Action, ...], result: Result) -> Result:
    state, actions = result
    return state, before + actions


def _enter(
    spec: DeploymentSpec,
    state: RolloutState,
    stages: tuple[Stage, ...],
    index: int,
    snapshot: Snapshot,
    now: float,
    actor: str,
    action: str,
    reason: str,
    numbers: Mapping[str, float] | None = None,
) -> Result:
    stage = stages[index]
    if stage.needs_approval:
        reason = f"{reason}; waiting for approval: lockgate rollout promote {spec.name}"
    weights = weights_for(spec, stage.candidate_bp)
    shadow = spec.candidate if stage.shadow_fraction > 0 else None
    entered = _move(
        state,
        stage.phase,
        now,
        reason,
        stage_index=index,
        weights_bp=weights,
        shadow_variant=shadow,
        shadow_fraction=stage.shadow_fraction,
        replicas=stage.replicas,
        stage_started_at=now,
        requests_at_stage_start={name: stats.requests for name, stats in snapshot.items()},
        stats_at_stage_start={name: stats.copy() for name, stats in snapshot.items()},
        is_stage_window_open=False,
    )
    set_weights = SetWeights(weights, shadow, stage.shadow_fraction, stage.replicas)
    event_numbers = {**(numbers or {}), "candidate_weight_bp": float(stage.candidate_bp)}
    return entered, (set_weights, _event(state, entered, now, actor, action, event_numbers))


def _finish(
    spec: DeploymentSpec,
    state: RolloutState,
    to: Phase,
    now: float,
    actor: str,
    action: str,
    reason: str,
    numbers: Mapping[str, float] | None = None,
) -> Result:
    candidate_bp = BUCKETS if to is Phase.PROMOTED else 0
    weights = weights_for(spec, candidate_bp)
    strategy = spec.strategy
    keep_s = 0.0
    if to is Phase.PROMOTED and isinstance(strategy, BlueGreenStrategy):
        keep_s = strategy.keep_previous_warm_s
    retiring = {Phase.PROMOTED: (spec.baseline,), Phase.ROLLED_BACK: (spec.candidate,)}.get(to, ())
    finished = _move(
        state,
        to,
        now,
        reason,
        weights_bp=weights,
        shadow_variant=None,
        shadow_fraction=0.0,
        replicas=(),
        paused_at=None,
        paused_from=None,
        pause_until=None,
        retiring=retiring,
        retire_at=now + keep_s if retiring else None,
    )
    actions: list[Action] = [SetWeights(weights)]
    if to is Phase.PROMOTED:
        actions.append(Promote(spec.candidate, retiring, keep_s))
    elif to is Phase.ROLLED_BACK:
        actions.append(Rollback(spec.baseline, retiring))
    event_numbers = {**(numbers or {}), "candidate_weight_bp": float(candidate_bp)}
    actions.append(_event(state, finished, now, actor, action, event_numbers))
    return finished, tuple(actions)


def _absolute_checks(stage: Stage, candidate: VariantStats) -> str:
    """Why the candidate fails the stage's absolute limits ("" when it passes)."""
    failures = []
    if stage.max_error_rate is not None and candidate.error_rate > stage.max_error_rate:
        failures.append(f"candidate error rate {candidate.error_rate:.4f} is above {stage.max_error_rate:g}")
    if stage.max_p99_latency_ms is not None:
        p99 = candidate.latency.quantile(0.99)
        if p99 > stage.max_p99_latency_ms:
            failures.append(f"candidate p99 {p99:.1f} ms is above {stage.max_p99_latency_ms:g} ms")
    return "; ".join(failures)


def _numbers(
    spec: DeploymentSpec,
    state: RolloutState,
    verdict: Verdict,
    baseline: VariantStats,
    candidate: VariantStats,
    snapshot: Snapshot,
    now: float,
) -> dict[str, float]:
    current = snapshot.get(spec.candidate)
    at_stage_start = state.requests_at_stage_start.get(spec.candidate, 0)
    total = current.requests if current is not None else 0
    # A counter below its start means the workers restarted: count from zero again.
    stage_requests = total - at_stage_start if total >= at_stage_start else total
    elapsed = now - state.stage_started_at if state.stage_started_at is not None else 0.0
    return {
        **{str(k): float(v) for k, v in verdict.numbers.items()},
        "baseline_requests": float(baseline.requests),
        "baseline_errors": float(baseline.errors),
        "candidate_requests": float(candidate.requests),
        "candidate_errors": float(candidate.errors),
        "stage_index": float(state.stage_index),
        "stage_requests": float(stage_requests),
        "stage_elapsed_s": float(elapsed),
    }
