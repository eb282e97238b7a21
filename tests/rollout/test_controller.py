"""The rollout state machine: every strategy through one transition table, time passed in."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import IllegalTransition, ValidationError
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
    initial_state,
    loaded_variants,
    pause,
    plan,
    promote,
    resume,
    rollback,
    routing_table,
    serving_actions,
    start,
    stats_since,
    step,
)
from lockgate.rollout.policy import RolloutView
from lockgate.rollout.spec import DeploymentSpec, parse_spec
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.generation import MIN_GENERATIONS, GenerationStats
from lockgate.stats.verdict import Decision, Verdict


@dataclass
class FixedPolicy:
    """Says whatever the test tells it to, and remembers what it was shown."""

    decision: Decision = Decision.CONTINUE
    seen: tuple[VariantStats, VariantStats] | None = None

    def decide(self, baseline: VariantStats, candidate: VariantStats) -> Verdict:
        self.seen = (baseline, candidate)
        return Verdict(self.decision, (f"told to {self.decision.value}",), {"score": 1.0})


def make_spec(**strategy: Any) -> DeploymentSpec:
    return parse_spec(
        {
            "name": "fraud",
            "variants": {"stable": "models:/fraud/3", "canary": "models:/fraud/4"},
            "baseline": "stable",
            "candidate": "canary",
            "strategy": strategy,
        }
    )


CANARY = make_spec(
    type="canary",
    steps=[
        {"weight_percent": 5, "min_duration_s": 60, "min_requests": 100},
        {"weight_percent": 50, "min_duration_s": 60},
    ],
)


def served(requests: int, errors: int = 0, latency_ms: float = 10.0) -> VariantStats:
    stats = VariantStats(requests=requests, errors=errors)
    stats.latency.update(np.full(requests, latency_ms))
    return stats


def snap(stable: int, canary: int, canary_errors: int = 0) -> Snapshot:
    return {"stable": served(stable), "canary": served(canary, canary_errors)}


def of_type(actions: tuple[Action, ...], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def test_every_phase_has_a_row_and_finished_phases_go_nowhere() -> None:
    assert set(TRANSITIONS) == set(Phase)
    for phase in TERMINAL_PHASES - {Phase.PROMOTED}:
        assert TRANSITIONS[phase] == frozenset()
    # the one way out of a finished rollout: a blue-green switch back, while the old colour is warm
    # (test_blue_green_switches_back_while_the_previous_version_is_warm)
    assert TRANSITIONS[Phase.PROMOTED] == frozenset({Phase.ROLLED_BACK})
    for phase in LIVE_PHASES | {Phase.PAUSED, Phase.HALTED}:
        assert {Phase.PROMOTED, Phase.ROLLED_BACK} <= TRANSITIONS[phase]


def test_canary_walks_its_steps_and_promotes() -> None:
    policy = FixedPolicy(Decision.PROMOTE)
    state = initial_state(CANARY)
    assert state.phase is Phase.PENDING
    assert state.weights_bp == (("stable", 10_000), ("canary", 0))

    state, actions = start(CANARY, state, snap(1000, 0), now=0.0, actor="alice")
    assert state.phase is Phase.STEPPING
    assert state.weights_bp == (("stable", 9500), ("canary", 500))
    assert of_type(actions, SetWeights)[0].table().weight_of("canary") == 500
    [event] = of_type(actions, RecordEvent)
    assert (event.actor, event.action, event.from_phase, event.to_phase) == (
        "alice",
        "start",
        "pending",
        "stepping",
    )

    # Long enough, but too few requests: wait.
    state, actions = step(CANARY, state, snap(2000, 50), 61.0, policy)
    assert (state.phase, state.stage_index, actions) == (Phase.STEPPING, 0, ())
    # Enough requests, not long enough: wait.
    state, actions = step(CANARY, initial_after_start(), snap(2000, 150), 30.0, policy)
    assert actions == ()

    state, actions = step(CANARY, state, snap(3000, 150), 62.0, policy)
    assert (state.phase, state.stage_index) == (Phase.STEPPING, 1)
    assert state.weights_bp == (("stable", 5000), ("canary", 5000))
    assert state.stage_started_at == 62.0
    [event] = of_type(actions, RecordEvent)
    assert event.action == "advance"
    assert event.actor == "controller"
    assert event.numbers["candidate_requests"] == 150.0
    assert event.numbers["candidate_weight_bp"] == 5000.0

    state, actions = step(CANARY, state, snap(4000, 1000), 100.0, policy)
    assert actions == ()
    state, actions = step(CANARY, state, snap(4000, 1000), 122.0, policy)
    assert state.phase is Phase.PROMOTED
    assert state.weights_bp == (("stable", 0), ("canary", 10_000))
    assert of_type(actions, Promote) == [Promote("canary", ("stable",), 0.0)]
    assert of_type(actions, RecordEvent)[0].action == "promote"
    # A finished rollout ignores further ticks.
    assert step(CANARY, state, snap(5000, 2000), 200.0, policy) == (state, ())


def initial_after_start() -> RolloutState:
    state, _ = start(CANARY, initial_state(CANARY), snap(1000, 0), now=0.0)
    return state


def test_policy_sees_only_what_happened_since_the_start() -> None:
    policy = FixedPolicy()
    state, _ = start(CANARY, initial_state(CANARY), snap(1000, 0), now=0.0)
    step(CANARY, state, snap(1300, 40), 10.0, policy)
    assert policy.seen is not None
    baseline, candidate = policy.seen
    assert (baseline.requests, candidate.requests) == (300, 40)
    assert baseline.latency.count == 300


def test_a_rollback_verdict_sends_everything_back_at_once() -> None:
    state = initial_after_start()
    state, actions = step(CANARY, state, snap(2000, 50, 20), 5.0, FixedPolicy(Decision.ROLLBACK))
    assert state.phase is Phase.ROLLED_BACK
    assert state.weights_bp == (("stable", 10_000), ("canary", 0))
    assert of_type(actions, Rollback) == [Rollback("stable", ("canary",))]
    [event] = of_type(actions, RecordEvent)
    assert event.reason == "policy: told to rollback"
    assert event.numbers["score"] == 1.0
    assert event.numbers["candidate_errors"] == 20.0
    assert state.last_verdict is not None
    assert state.last_verdict.decision is Decision.ROLLBACK


def test_a_halt_verdict_parks_traffic_on_the_baseline_for_a_human() -> None:
    state = initial_after_start()
    state, actions = step(CANARY, state, snap(2000, 50), 5.0, FixedPolicy(Decision.HALT))
    assert state.phase is Phase.HALTED
    assert state.weights_bp == (("stable", 10_000), ("canary", 0))
    assert of_type(actions, Rollback) == []
    with pytest.raises(IllegalTransition):
        resume(CANARY, state, 6.0, actor="bob")
    state, actions = rollback(CANARY, state, 7.0, actor="bob", reason="SRM: broken bucketing")
    assert state.phase is Phase.ROLLED_BACK
    assert of_type(actions, RecordEvent)[0].actor == "bob"


def test_pause_freezes_the_stage_clock_and_resume_carries_on() -> None:
    policy = FixedPolicy(Decision.PROMOTE)
    state = initial_after_start()
    state, actions = pause(CANARY, state, 30.0, actor="carol", reason="holiday")
    assert state.phase is Phase.PAUSED
    assert of_type(actions, Pause) == [Pause(None)]
    # Paused: no advance however long it waits.
    state, actions = step(CANARY, state, snap(9000, 900), 1000.0, policy)
    assert (state.phase, actions) == (Phase.PAUSED, ())
    state, actions = resume(CANARY, state, 1000.0, actor="carol")
    assert state.phase is Phase.STEPPING
    assert state.stage_started_at == 970.0
    assert of_type(actions, RecordEvent)[0].action == "resume"
    # 30 s were used before the pause; 29 more are not enough, 30 are.
    assert step(CANARY, state, snap(9000, 900), 1029.0, policy)[0].stage_index == 0
    assert step(CANARY, state, snap(9000, 900), 1030.0, policy)[0].stage_index == 1


def test_a_timed_pause_resumes_by_itself() -> None:
    policy = FixedPolicy(Decision.PROMOTE)
    state = initial_after_start()
    state, actions = pause(CANARY, state, 10.0, actor="carol", duration_s=100.0)
    assert of_type(actions, Pause) == [Pause(110.0)]
    assert step(CANARY, state, snap(2000, 500), 109.0, policy)[0].phase is Phase.PAUSED
    state, actions = step(CANARY, state, snap(2000, 500), 200.0, policy)
    # Resumed at 110 with 10 s already run, so at 200 the 60 s step is done.
    assert (state.phase, state.stage_index) == (Phase.STEPPING, 1)
    assert [e.action for e in of_type(actions, RecordEvent)] == ["resume", "advance"]
    with pytest.raises(ValidationError):
        pause(CANARY, state, 10.0, actor="carol", duration_s=0.0)


def test_a_paused_rollout_still_rolls_back_a_bad_candidate() -> None:
    state, _ = pause(CANARY, initial_after_start(), 5.0, actor="carol")
    state, actions = step(CANARY, state, snap(2000, 50, 40), 6.0, FixedPolicy(Decision.ROLLBACK))
    assert state.phase is Phase.ROLLED_BACK
    assert state.paused_from is None
    assert of_type(actions, Rollback)


@pytest.mark.parametrize("command", [promote, rollback, pause])
def test_commands_on_a_finished_rollout_name_both_phases(command: Any) -> None:
    state, _ = promote(CANARY, initial_after_start(), 1.0, actor="dave")
    with pytest.raises(IllegalTransition) as info:
        command(CANARY, state, 2.0, actor="dave")
    assert "from promoted to" in str(info.value)
    assert info.value.http_status == 409
    # the hint says what a person can do next, not that it can move "nowhere"
    assert info.value.hint is not None and "nowhere" not in info.value.hint
    assert "lockgate deploy SPEC --start" in info.value.hint


@pytest.mark.parametrize(
    ("end", "hint"),
    [
        (rollback, "deploy a spec and start it"),
        (promote, "deploy a spec and start it"),
        (None, "lockgate rollout start"),
    ],
)
def test_resume_says_what_to_do_instead_of_pausing_first(end: Any, hint: str) -> None:
    """A finished or unstarted rollout cannot be paused, so "pause it first" would be a dead end."""
    state = initial_state(CANARY) if end is None else end(CANARY, initial_after_start(), 1.0, actor="d")[0]
    with pytest.raises(IllegalTransition) as info:
        resume(CANARY, state, 2.0, actor="dave")
    assert info.value.hint is not None and hint in info.value.hint
    assert "pause it first" not in info.value.hint


def test_pausing_twice_is_illegal() -> None:
    state, _ = pause(CANARY, initial_after_start(), 5.0, actor="carol")
    with pytest.raises(IllegalTransition, match="from paused to paused"):
        pause(CANARY, state, 6.0, actor="carol")


def test_manual_promote_and_rollback_carry_the_actor_and_reason() -> None:
    state, actions = promote(CANARY, initial_after_start(), 3.0, actor="erin", reason="hotfix")
    assert state.phase is Phase.PROMOTED
    [event] = of_type(actions, RecordEvent)
    assert (event.actor, event.reason, event.at) == ("erin", "hotfix", 3.0)
    state, actions = rollback(CANARY, initial_after_start(), 3.0, actor="erin")
    assert of_type(actions, RecordEvent)[0].reason == "rolled back by hand"


def test_direct_promotes_on_start() -> None:
    spec = make_spec(type="direct")
    assert plan(spec) == ()
    state, actions = start(spec, initial_state(spec), {}, 0.0)
    assert state.phase is Phase.PROMOTED
    assert of_type(actions, SetWeights) == [SetWeights((("stable", 0), ("canary", 10_000)))]


def test_blue_green_warms_on_a_mirror_then_switches_and_keeps_the_old_warm() -> None:
    spec = make_spec(
        type="blue_green",
        warmup={"shadow_fraction": 1.0, "min_requests": 100, "min_duration_s": 10},
        bake_s=60,
        keep_previous_warm_s=300,
    )
    policy = FixedPolicy(Decision.PROMOTE)
    state, actions = start(spec, initial_state(spec), snap(1000, 0), 0.0)
    assert state.phase is Phase.WARMING
    [weights] = of_type(actions, SetWeights)
    assert weights.weights_bp == (("stable", 10_000), ("canary", 0))
    assert (weights.shadow_variant, weights.shadow_fraction) == ("canary", 1.0)
    table = routing_table(state)
    assert (table.shadow_variant, table.shadow_bp) == ("canary", 10_000)

    state, actions = step(spec, state, snap(1200, 200), 11.0, policy)
    assert state.phase is Phase.BAKING
    [weights] = of_type(actions, SetWeights)
    assert weights.weights_bp == (("stable", 0), ("canary", 10_000))
    assert weights.shadow_fraction == 0.0
    # the baseline bakes loaded, as every variant of a live rollout: nothing retires yet
    assert state.retiring == () and loaded_variants(spec, state, 30.0) == ("stable", "canary")

    state, actions = step(spec, state, snap(1200, 900), 71.0, policy)
    assert state.phase is Phase.PROMOTED
    assert of_type(actions, Promote) == [Promote("canary", ("stable",), 300.0)]
    # the old colour stays loaded for keep_previous_warm_s after the switch, then goes
    assert (state.retiring, state.retire_at) == (("stable",), 371.0)
    assert state.is_previous_warm(370.9) and not state.is_previous_warm(371.0)
    assert loaded_variants(spec, state, 370.9) == ("stable", "canary")
    assert loaded_variants(spec, state, 371.0) == ("canary",)


def _blue_green_promoted(keep_s: float = 300.0) -> tuple[DeploymentSpec, RolloutState]:
    spec = make_spec(
        type="blue_green",
        warmup={"min_requests": 0, "min_duration_s": 0},
        bake_s=0,
        keep_previous_warm_s=keep_s,
    )
    state, _ = start(spec, initial_state(spec), {}, 0.0)
    state, _ = promote(spec, state, 10.0, actor="alice", full=True)
    assert state.phase is Phase.PROMOTED
    return spec, state


def test_blue_green_switches_back_while_the_previous_version_is_warm() -> None:
    spec, state = _blue_green_promoted()
    back, actions = rollback(spec, state, 309.0, actor="bob", reason="p99 doubled")
    assert back.phase is Phase.ROLLED_BACK
    assert of_type(actions, SetWeights) == [SetWeights((("stable", 10_000), ("canary", 0)))]
    assert of_type(actions, Rollback) == [Rollback("stable", ("canary",))]
    [event] = of_type(actions, RecordEvent)
    assert (event.from_phase, event.to_phase, event.actor) == ("promoted", "rolled_back", "bob")
    # the old colour serves again; the new one retires now
    assert (back.retiring, back.retire_at) == (("canary",), 309.0)
    assert loaded_variants(spec, back, 309.0) == ("stable",)
    # and it is over: a rolled-back rollout does not move again
    with pytest.raises(IllegalTransition):
        promote(spec, back, 310.0, actor="bob")


def test_after_the_warm_window_a_blue_green_promotion_is_final() -> None:
    spec, state = _blue_green_promoted()
    with pytest.raises(IllegalTransition) as info:
        rollback(spec, state, 310.0, actor="bob")
    assert info.value.hint is not None
    assert "kept warm for a switch back until" in info.value.hint
    assert "keep_previous_warm_s" in info.value.hint and "lockgate deploy SPEC --start" in info.value.hint
    # inside the window only the way back is open, and the hint says so
    with pytest.raises(IllegalTransition) as paused:
        pause(spec, state, 20.0, actor="bob")
    assert paused.value.hint == "from promoted it can move to: rolled_back."


def test_strategies_without_a_warm_window_retire_the_old_version_at_once() -> None:
    state, actions = promote(CANARY, initial_after_start(), 1.0, actor="dave")
    assert of_type(actions, Promote) == [Promote("canary", ("stable",), 0.0)]
    assert (state.retiring, state.retire_at) == (("stable",), 1.0)
    assert not state.is_previous_warm(1.0)
    assert loaded_variants(CANARY, state, 1.0) == ("canary",)
    rolled, _ = rollback(CANARY, initial_after_start(), 2.0, actor="dave")
    assert (rolled.retiring, rolled.retire_at) == (("canary",), 2.0)


def test_serving_actions_rebuild_what_a_stored_state_serves() -> None:
    """What a restarted shell (or another gateway) carries out: the same table, pause and retirement."""
    state = initial_after_start()
    [weights] = serving_actions(CANARY, state, 5.0)
    assert isinstance(weights, SetWeights) and weights.table() == routing_table(state)
    paused, _ = pause(CANARY, state, 5.0, actor="x", duration_s=30)
    assert serving_actions(CANARY, paused, 6.0)[1:] == (Pause(35.0),)
    spec, promoted = _blue_green_promoted()
    assert serving_actions(spec, promoted, 110.0)[1:] == (Promote("canary", ("stable",), 200.0),)
    assert serving_actions(spec, promoted, 400.0)[1:] == (Promote("canary", ("stable",), 0.0),)
    back, _ = rollback(spec, promoted, 20.0, actor="bob")
    assert serving_actions(spec, back, 21.0)[1:] == (Rollback("stable", ("canary",)),)
    rolling = make_spec(type="rolling", replicas=4, batch_size=1, min_duration_s=10)
    stepping, _ = start(rolling, initial_state(rolling), {}, 0.0)
    [sized] = serving_actions(rolling, stepping, 1.0)
    assert isinstance(sized, SetWeights) and sized.replicas == (("stable", 3), ("canary", 1))


def test_blue_green_warmup_checks_reject_a_slow_candidate() -> None:
    spec = make_spec(
        type="blue_green",
        warmup={"min_requests": 10, "min_duration_s": 0, "max_p99_latency_ms": 50},
    )
    state, _ = start(spec, initial_state(spec), {}, 0.0)
    slow = {"stable": served(100), "canary": served(100, latency_ms=200.0)}
    state, actions = step(spec, state, slow, 1.0, FixedPolicy(Decision.PROMOTE))
    assert state.phase is Phase.ROLLED_BACK
    assert "p99" in of_type(actions, RecordEvent)[0].reason


def test_rolling_replaces_workers_a_batch_at_a_time() -> None:
    spec = make_spec(type="rolling", replicas=5, batch_size=2, min_duration_s=10)
    assert [s.candidate_bp for s in plan(spec)] == [4000, 8000, 10_000]
    assert plan(spec)[0].replicas == (("stable", 3), ("canary", 2))
    policy = FixedPolicy(Decision.PROMOTE)
    state, actions = start(spec, initial_state(spec), {}, 0.0)
    replicas = [of_type(actions, SetWeights)[0].replicas]
    for now in (10.0, 20.0, 30.0):
        state, actions = step(spec, state, snap(100, 100), now, policy)
        replicas.append(of_type(actions, SetWeights)[0].replicas)
    assert state.phase is Phase.PROMOTED
    assert replicas == [
        (("stable", 3), ("canary", 2)),
        (("stable", 1), ("canary", 4)),
        (("stable", 0), ("canary", 5)),
        (),
    ]


@pytest.mark.parametrize(("promote_on_pass", "end"), [(False, Phase.COMPLETED), (True, Phase.PROMOTED)])
def test_shadow_never_routes_to_the_candidate(promote_on_pass: bool, end: Phase) -> None:
    spec = make_spec(
        type="shadow",
        fraction=0.2,
        min_duration_s=60,
        min_requests=100,
        promote_on_pass=promote_on_pass,
    )
    state, _ = start(spec, initial_state(spec), {}, 0.0)
    assert state.phase is Phase.SHADOWING
    assert state.weight_of("canary") == 0
    assert routing_table(state).shadow_bp == 2000
    state, actions = step(spec, state, snap(1000, 200), 60.0, FixedPolicy(Decision.PROMOTE))
    assert state.phase is end
    assert state.shadow_fraction == 0.0
    expected = 10_000 if promote_on_pass else 0
    assert state.weight_of("canary") == expected
    assert of_type(actions, RecordEvent)[0].action == ("promote" if promote_on_pass else "complete")


def test_ab_waits_for_the_policy_and_gives_up_at_max_duration() -> None:
    spec = make_spec(type="ab", split_percent=50, min_requests=10, max_duration_s=3600)
    state, _ = start(spec, initial_state(spec), {}, 0.0)
    assert state.weights_bp == (("stable", 5000), ("canary", 5000))
    waiting = FixedPolicy(Decision.CONTINUE)
    assert step(spec, state, snap(500, 500), 1000.0, waiting)[1] == ()
    won, _ = step(spec, state, snap(500, 500), 1000.0, FixedPolicy(Decision.PROMOTE))
    assert won.phase is Phase.PROMOTED
    state, actions = step(spec, state, snap(500, 500), 3600.0, waiting)
    assert state.phase is Phase.ROLLED_BACK
    assert "no evidence after 3600 s" in of_type(actions, RecordEvent)[0].reason


def test_state_round_trips_through_json() -> None:
    state = initial_after_start()
    state, _ = step(CANARY, state, snap(1500, 60, 3), 5.0, FixedPolicy())
    state, _ = pause(CANARY, state, 6.0, actor="x", duration_s=10)
    again = RolloutState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again.to_dict() == state.to_dict()
    assert again.phase is Phase.PAUSED
    assert again.paused_from is Phase.STEPPING
    assert again.last_verdict == state.last_verdict
    assert again.stats_at_start["stable"].requests == 1000
    _, promoted = _blue_green_promoted()
    stored = RolloutState.from_dict(json.loads(json.dumps(promoted.to_dict())))
    assert (stored.retiring, stored.retire_at) == (("stable",), 310.0)
    assert stored == promoted
    # a state stored before retirements were recorded reads as one that retires nothing
    older = {k: v for k, v in promoted.to_dict().items() if k not in ("retiring", "retire_at")}
    assert RolloutState.from_dict(older).retiring == ()


def test_stats_since_treats_a_counter_reset_as_a_fresh_start() -> None:
    assert stats_since(served(50), served(100)).requests == 50
    assert stats_since(None, served(100)).requests == 0
    assert stats_since(served(100), None).requests == 100


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=0, max_size=30),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30),
    st.lists(st.floats(0.1, 1e4), min_size=1, max_size=30),
)
def test_stats_since_undoes_a_merge(before: list[float], after: list[float], lat: list[float]) -> None:
    first, second = VariantStats(), VariantStats()
    for value in before:
        first.record(5.0, is_error=value > 0)
        first.record_outcome(value)
    for value, latency in zip(after, lat * len(after), strict=False):
        second.record(latency, is_error=value > 0)
        second.record_outcome(value)
    delta = stats_since(first + second, first)
    assert (delta.requests, delta.errors) == (second.requests, second.errors)
    assert np.array_equal(delta.latency.counts, second.latency.counts)
    assert delta.outcome.count == second.outcome.count
    assert delta.outcome.mean == pytest.approx(second.outcome.mean, abs=1e-6)
    assert delta.outcome.m2 == pytest.approx(second.outcome.m2, rel=1e-6, abs=1e-3)


COMMANDS = st.sampled_from(["start", "tick", "promote", "rollback", "pause", "resume"])


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["canary", "blue_green", "rolling", "shadow", "ab", "direct"]),
    st.lists(st.tuples(COMMANDS, st.sampled_from(list(Decision)), st.floats(0, 100)), max_size=25),
)
def test_no_sequence_of_commands_breaks_the_transition_table(
    kind: str, commands: list[tuple[str, Decision, float]]
) -> None:
    options: dict[str, Any] = {
        "canary": {"steps": [{"weight_percent": 10, "min_duration_s": 20}, {"weight_percent": 60}]},
        "blue_green": {"warmup": {"min_requests": 0, "min_duration_s": 5}, "bake_s": 10},
        "rolling": {"replicas": 3, "min_duration_s": 10},
        "shadow": {"min_requests": 0, "min_duration_s": 30},
        "ab": {"min_requests": 0, "max_duration_s": 120},
        "direct": {},
    }
    spec = make_spec(type=kind, **options[kind])
    state, now, count = initial_state(spec), 0.0, 0
    for command, decision, advance_s in commands:
        now += advance_s
        count += 100
        before = state
        try:
            if command == "start":
                state, actions = start(spec, state, snap(count, count), now)
            elif command == "tick":
                state, actions = step(spec, state, snap(count, count), now, FixedPolicy(decision))
            elif command == "resume":
                state, actions = resume(spec, state, now, actor="t")
            else:
                state, actions = {"promote": promote, "rollback": rollback, "pause": pause}[command](
                    spec, state, now, actor="t"
                )
        except IllegalTransition:
            assert state is before
            assert command != "start" or before.phase is not Phase.PENDING
            continue
        events = of_type(actions, RecordEvent)
        hops = [(Phase(e.from_phase), Phase(e.to_phase)) for e in events]
        for source, target in hops:
            assert target in TRANSITIONS[source]
        if state.phase is not before.phase:
            assert events, "every phase change is recorded"
        assert sum(w for _, w in state.weights_bp) == 10_000
        if state.phase in TERMINAL_PHASES | {Phase.HALTED}:
            assert state.shadow_fraction == 0.0
        routing_table(state)  # always a valid table


def test_a_rollout_starts_only_once() -> None:
    state = initial_after_start()
    with pytest.raises(IllegalTransition, match="cannot start a rollout that is stepping"):
        start(CANARY, state, snap(1, 1), 5.0)


def test_a_spec_that_shrank_under_a_running_rollout_is_refused() -> None:
    state = replace(initial_after_start(), stage_index=5)
    with pytest.raises(IllegalTransition, match="spec has 2"):
        step(CANARY, state, snap(1, 1), 5.0, FixedPolicy())


@dataclass
class RecordingRolloutPolicy:
    """A RolloutPolicy that answers ``decision`` and keeps every view it was shown."""

    views: list[RolloutView]
    decision: Decision = Decision.CONTINUE

    def judge(self, view: RolloutView) -> Verdict:
        self.views.append(view)
        return Verdict(self.decision, (f"told to {self.decision.value}",))


def test_a_rollout_policy_sees_the_whole_rollout_and_the_stage_window() -> None:
    from lockgate.rollout.controller import candidate_share

    policy = RecordingRolloutPolicy([], Decision.PROMOTE)
    state, _ = start(CANARY, initial_state(CANARY), {"stable": served(50), "canary": served(0)}, 0.0)
    # the first look opens stage 1's window; min_requests counts from there
    state, _ = step(CANARY, state, {"stable": served(60), "canary": served(1)}, 1.0, policy)
    assert state.is_stage_window_open and state.stage_index == 0
    at_stage_one = {"stable": served(1961), "canary": served(101)}
    state, _ = step(CANARY, state, at_stage_one, 61.0, policy)
    assert state.stage_index == 1
    assert [v.expected_share for v in policy.views] == [0.05, 0.05]
    # requests still routed by the old (5%) table while the advance was written: not stage 2's
    leaked = {"stable": served(2061), "canary": served(106)}
    state, _ = step(CANARY, state, leaked, 62.0, policy)
    assert state.is_stage_window_open and policy.views[-1].expected_share == 0.5
    later = {"stable": served(3061), "canary": served(1106)}
    step(CANARY, state, later, 70.0, policy)
    view = policy.views[-1]
    # the stage window counts since stage 2's window opened; the evidence since the rollout began
    assert (view.stage_baseline.requests, view.stage_candidate.requests) == (1000, 1000)
    assert (view.baseline.requests, view.candidate.requests) == (3011, 1106)
    assert not view.is_mirrored and not view.is_experiment
    mirrored = plan(make_spec(type="shadow", fraction=0.25))[0]
    assert candidate_share(mirrored) == pytest.approx(0.2)
    # the state, with the counters at the stage's start, survives a round trip through JSON
    assert RolloutState.from_dict(state.to_dict()) == state


# --- advancing on evidence, and what happens without it ------------------------------------


def test_a_stage_advances_only_on_evidence_and_rolls_back_at_its_longest_duration() -> None:
    waiting = RecordingRolloutPolicy([], Decision.CONTINUE)
    state, _ = start(CANARY, initial_state(CANARY), snap(1000, 0), 0.0)
    # long enough and enough requests, but no evidence: the stage waits (max 3 x 60 s by default)
    state, actions = step(CANARY, state, snap(3000, 500), 61.0, waiting)
    state, actions = step(CANARY, state, snap(4000, 700), 179.0, waiting)
    assert (state.phase, state.stage_index, actions) == (Phase.STEPPING, 0, ())
    assert plan(CANARY)[0].max_duration_s == 180.0
    state, actions = step(CANARY, state, snap(4000, 700), 180.0, waiting)
    assert state.phase is Phase.ROLLED_BACK
    [event] = of_type(actions, RecordEvent)
    assert "no evidence after 180 s (stage 1 of 2)" in event.reason and "the baseline stays" in event.reason
    assert of_type(actions, Rollback) == [Rollback("stable", ("canary",))]


def test_on_inconclusive_hold_pauses_for_a_person_and_harm_still_rolls_back() -> None:
    spec = replace(CANARY, analysis=replace(CANARY.analysis, on_inconclusive="hold"))
    waiting = RecordingRolloutPolicy([], Decision.CONTINUE)
    state, _ = start(spec, initial_state(spec), snap(1000, 0), 0.0)
    state, _ = step(spec, state, snap(3000, 500), 1.0, waiting)
    state, actions = step(spec, state, snap(4000, 700), 180.0, waiting)
    assert state.phase is Phase.PAUSED
    assert of_type(actions, Pause) == [Pause(None)]
    assert "held: no evidence after 180 s" in of_type(actions, RecordEvent)[0].reason
    # weights stay as they were; the analysis still runs and rolls back harm
    assert state.weight_of("canary") == 500
    harmful = RecordingRolloutPolicy([], Decision.ROLLBACK)
    state, _ = step(spec, state, snap(5000, 900), 200.0, harmful)
    assert state.phase is Phase.ROLLED_BACK


def test_a_step_may_set_its_own_longest_duration_and_a_bake_needs_no_evidence() -> None:
    spec = make_spec(type="canary", steps=[{"weight_percent": 5, "min_duration_s": 10, "max_duration_s": 15}])
    assert plan(spec)[0].max_duration_s == 15.0
    with pytest.raises(ValidationError, match=r"steps\[0\].max_duration_s: must be at least min_duration_s"):
        make_spec(type="canary", steps=[{"weight_percent": 5, "min_duration_s": 10, "max_duration_s": 5}])
    green = make_spec(type="blue_green", warmup={"min_requests": 10, "min_duration_s": 1}, bake_s=30)
    policy = RecordingRolloutPolicy([], Decision.PROMOTE)
    state, _ = start(green, initial_state(green), {}, 0.0)
    state, _ = step(green, state, snap(100, 100), 1.0, policy)
    state, _ = step(green, state, snap(200, 200), 2.0, policy)
    assert state.phase is Phase.BAKING
    # the bake has one arm only: the policy is not asked, and time alone ends it
    asked = len(policy.views)
    policy.decision = Decision.CONTINUE
    state, _ = step(green, state, snap(200, 900), 33.0, policy)
    assert state.phase is Phase.PROMOTED and len(policy.views) == asked


def test_an_ab_stage_tells_the_policy_it_is_an_experiment() -> None:
    spec = make_spec(type="ab", split_percent=50, min_requests=10, max_duration_s=3600)
    policy = RecordingRolloutPolicy([], Decision.PROMOTE)
    state, _ = start(spec, initial_state(spec), {}, 0.0)
    state, _ = step(spec, state, snap(500, 500), 10.0, policy)  # opens the stage's window
    state, _ = step(spec, state, snap(600, 600), 20.0, policy)
    assert policy.views[-1].is_experiment and state.phase is Phase.PROMOTED


APPROVAL = make_spec(
    type="canary",
    steps=[
        {"weight_percent": 5, "min_duration_s": 60},
        {"pause": {}},
        {"weight_percent": 50, "min_duration_s": 60},
        {"pause": {"duration_s": 30}},
    ],
)


def test_a_pause_step_waits_at_its_weight_for_rollout_promote() -> None:
    """Argo Rollouts' `pause: {}`: evidence and time do not move it on; `promote` approves it."""
    policy = FixedPolicy(Decision.PROMOTE)
    state, _ = start(APPROVAL, initial_state(APPROVAL), snap(0, 0), now=0.0)
    state, actions = step(APPROVAL, state, snap(5000, 300), 61.0, policy)
    assert (state.stage_index, state.weight_of("canary")) == (1, 500)
    assert "waiting for approval: lockgate rollout promote fraud" in state.reason
    for now in (100.0, 10_000.0, 1e6):  # however long, however good the numbers
        assert step(APPROVAL, state, snap(50_000, 3000), now, policy)[0].stage_index == 1
    # a harmful candidate is still rolled back while it waits
    assert step(APPROVAL, state, snap(5000, 300), 70.0, FixedPolicy(Decision.ROLLBACK))[0].phase is (
        Phase.ROLLED_BACK
    )
    approved, actions = promote(APPROVAL, state, 200.0, actor="erin")
    assert (approved.phase, approved.stage_index, approved.weight_of("canary")) == (Phase.STEPPING, 2, 5000)
    [event] = of_type(actions, RecordEvent)
    assert (event.action, event.actor, event.reason) == ("approve", "erin", "approved by hand")
    # a pause with a duration moves on by itself; the last stage then promotes
    state, _ = step(APPROVAL, approved, snap(60_000, 6000), 261.0, policy)
    assert (state.stage_index, state.weight_of("canary")) == (3, 5000)
    assert step(APPROVAL, state, snap(70_000, 7000), 280.0, policy)[0].stage_index == 3
    assert step(APPROVAL, state, snap(70_000, 7000), 292.0, policy)[0].phase is Phase.PROMOTED
    # --full (and promote anywhere else) still skips to the end
    assert promote(APPROVAL, approved, 201.0, actor="erin")[0].phase is Phase.PROMOTED
    full, _ = promote(APPROVAL, step(APPROVAL, approved, snap(0, 0), 0.0, policy)[0], 1.0, actor="e")
    assert full.phase is Phase.PROMOTED


def test_a_pause_step_round_trips_and_cannot_come_first() -> None:
    assert parse_spec(APPROVAL.to_dict()) == APPROVAL
    with pytest.raises(ValidationError, match=r"strategy.steps\[0\].pause.*cannot be the first step"):
        make_spec(type="canary", steps=[{"pause": {}}, {"weight_percent": 5}])
    with pytest.raises(ValidationError, match="weight_percent"):
        make_spec(type="canary", steps=[{"weight_percent": 5}, {"pause": {}}, {"weight_percent": 5}])
    with pytest.raises(ValidationError, match="minutes"):
        make_spec(type="canary", steps=[{"weight_percent": 5}, {"pause": {"minutes": 3}}])


def test_an_analysis_metric_past_its_limit_rolls_back_the_candidate() -> None:
    """Argo's analysis metric: a number from a provider (Prometheus), judged at every look."""
    spec = parse_spec(
        {
            **CANARY.to_dict(),
            "analysis": {
                "metrics": [
                    {"name": "checkout_errors", "query": 'rate(x{variant="{{variant}}"}[1m])', "max": 0.05},
                    {"name": "revenue", "query": "sum(y)", "min": 10},
                ]
            },
        }
    )
    assert parse_spec(spec.to_dict()) == spec
    assert spec.analysis.metrics[0].query_for("fraud", "canary") == 'rate(x{variant="canary"}[1m])'
    state = start(spec, initial_state(spec), snap(0, 0), now=0.0)[0]
    fine = {"checkout_errors": {"stable": 0.2, "canary": 0.01}, "revenue": {"canary": 12.0}}
    kept, _ = step(spec, state, snap(100, 10), 1.0, FixedPolicy(), fine)
    assert kept.phase is Phase.STEPPING  # the baseline's own value is not judged
    assert step(spec, state, snap(100, 10), 1.0, FixedPolicy(), {})[0].phase is Phase.STEPPING  # none yet
    bad = {"checkout_errors": {"stable": 0.01, "canary": 0.08}, "revenue": {"canary": 3.0}}
    rolled, actions = step(spec, state, snap(100, 10), 2.0, FixedPolicy(), bad)
    assert rolled.phase is Phase.ROLLED_BACK
    [event] = of_type(actions, RecordEvent)
    assert "checkout_errors of the candidate is 0.08, above its max 0.05" in event.reason
    assert "revenue of the candidate is 3, below its min 10" in event.reason
    assert event.numbers["metric_checkout_errors_stable"] == 0.01
    with pytest.raises(ValidationError, match="needs max or min"):
        parse_spec({**CANARY.to_dict(), "analysis": {"metrics": [{"name": "a", "query": "q"}]}})


def _generated(requests: int, ttft_ms: float, *, empty: int = 0) -> VariantStats:
    stats = VariantStats(requests=requests)
    stats.generation = GenerationStats()
    for index in range(requests):
        stats.generation.add(
            prompt_tokens=10, completion_tokens=5, ttft_ms=ttft_ms, duration_ms=50.0, is_empty=index < empty
        )
    return stats


def test_a_generation_metric_needs_no_query_and_rolls_back_a_slow_candidate() -> None:
    """``ttft_ms`` and ``empty_answer_rate`` come from the variants' own generation counters,
    measured since the rollout began, once a variant has MIN_GENERATIONS answers."""
    spec = parse_spec(
        {
            **CANARY.to_dict(),
            "analysis": {
                "metrics": [{"name": "ttft_ms", "max": 100}, {"name": "empty_answer_rate", "max": 0.1}]
            },
        }
    )
    assert spec.analysis.metrics[0].is_generation and parse_spec(spec.to_dict()) == spec
    state = start(
        spec, initial_state(spec), {"stable": _generated(5, 900.0), "canary": _generated(5, 900.0)}, 0.0
    )[0]
    few = {"stable": _generated(10, 900.0), "canary": _generated(MIN_GENERATIONS - 1, 900.0)}
    assert step(spec, state, few, 1.0, FixedPolicy())[0].phase is Phase.STEPPING  # too few to judge
    fast = {"stable": _generated(40, 900.0), "canary": _generated(40, 20.0)}
    assert step(spec, state, fast, 1.0, FixedPolicy())[0].phase is Phase.STEPPING
    slow = {"stable": _generated(40, 20.0), "canary": _generated(40, 900.0, empty=10)}
    rolled, actions = step(spec, state, slow, 2.0, FixedPolicy())
    assert rolled.phase is Phase.ROLLED_BACK
    [event] = of_type(actions, RecordEvent)
    assert "ttft_ms of the candidate is" in event.reason and "above its max 100" in event.reason
    assert "empty_answer_rate of the candidate is 0.285714" in event.reason  # 10 of the 35 since the start
    with pytest.raises(ValidationError, match="needs a query"):
        parse_spec({**CANARY.to_dict(), "analysis": {"metrics": [{"name": "ttft", "max": 1}]}})
