"""The deployment loop's executor: every action the controller returns, carried out on live variants.

The controller is the real one (pure, time passed in), the variants are real in-process variants
with their batchers running, and the clock is a number the test moves. What is checked is what a
request would meet: the table in force, which variants are loaded and answer, when one is unloaded.
The same actions over HTTP, on the embedded backend and on Ray Serve, are
``tests/serving/test_conformance.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from lockgate.errors import Conflict
from lockgate.rollout.controller import (
    Action,
    RecordEvent,
    RolloutState,
    initial_state,
    loaded_variants,
    pause,
    promote,
    resume,
    rollback,
    routing_table,
    serving_actions,
    start,
)
from lockgate.rollout.spec import DeploymentSpec, VariantScaling, parse_spec
from lockgate.rollout.store import Deployment
from lockgate.serving.backend import InProcessBackend
from lockgate.serving.executor import ActionExecutor, routed
from lockgate.serving.live import LiveDeployment
from lockgate.serving.payload import InferenceRequest
from lockgate.serving.predictor import FunctionPredictor, column_signature
from lockgate.serving.variant import Variant


def _variant(deployment: str, name: str, uri: str) -> Variant:
    answer = 1.0 if name == "green" else 0.0
    predictor = FunctionPredictor(lambda x: np.full(len(x), answer), column_signature(["x"]))
    return Variant(name, "1", predictor, key=f"{deployment}/{name}")


def _spec(**strategy: Any) -> DeploymentSpec:
    return parse_spec(
        {
            "name": "churn",
            "variants": {"blue": "models:/churn/1", "green": "models:/churn/2"},
            "baseline": "blue",
            "candidate": "green",
            "strategy": strategy,
            "scaling": {"green": {"replicas": 3}},
        }
    )


BLUE_GREEN = _spec(
    type="blue_green", warmup={"min_requests": 0, "min_duration_s": 0}, bake_s=0, keep_previous_warm_s=300
)
CANARY = _spec(type="canary", steps=[{"weight_percent": 10, "min_requests": 1_000_000}])


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingBackend:
    """A backend that has replicas and writes down each resize (Ray's real one: the conformance tests)."""

    has_replicas: bool = True
    loads_concurrently: bool = False
    resized: list[tuple[str, VariantScaling]] = field(default_factory=list)

    def load(self, deployment: str, variant: str, uri: str, scaling: VariantScaling) -> Variant:
        return _variant(deployment, variant, uri)

    def resize(self, variant: Variant, scaling: VariantScaling) -> None:
        self.resized.append((variant.key, scaling))


@dataclass
class Loop:
    """One deployment served by an executor, its stored state moved by the pure controller."""

    spec: DeploymentSpec
    executor: ActionExecutor
    clock: Clock
    live: LiveDeployment
    state: RolloutState
    version: int = 1

    def carry_out(self, result: tuple[RolloutState, tuple[Action, ...]]) -> bool:
        self.state, actions = result
        self.version += 1
        deployment = Deployment(self.spec.name, self.spec, self.state, self.version, 0.0, self.clock.now)
        return self.executor.carry_out(self.live, deployment, actions)

    async def tick_at(self, now: float) -> None:
        self.clock.now = now
        await self.executor.tick([self.live])

    async def answer(self) -> set[str]:
        """Which variants answer a handful of keyed requests (each through its batcher)."""
        answered = set()
        for key in range(40):
            variant, _, _ = self.live.choose(f"user-{key}")
            await variant.infer(InferenceRequest(np.zeros((1, 1)), 1))
            answered.add(variant.model_name)
        return answered


def run(
    spec: DeploymentSpec,
    body: Callable[[Loop], Awaitable[None]],
    *,
    backend: Any = None,
    grace_s: float = 30.0,
) -> None:
    async def main() -> None:
        clock = Clock()
        backend_ = backend or InProcessBackend(lambda d, v, u: _variant(d, v, u))
        variants = {
            name: backend_.load(spec.name, name, uri, spec.scaling_of(name))
            for name, uri in spec.variants.items()
        }
        for variant in variants.values():
            variant.start()
        state = initial_state(spec)
        live = LiveDeployment(spec, variants, routing_table(state))
        loop = Loop(spec, ActionExecutor(backend_, grace_s=grace_s, clock=clock), clock, live, state)
        try:
            await body(loop)
        finally:
            for variant in [*variants.values()]:
                await variant.stop()

    asyncio.run(main())


def test_set_weights_swaps_in_the_table_the_action_gives() -> None:
    async def body(loop: Loop) -> None:
        assert await loop.answer() == {"blue"}
        assert loop.carry_out(start(CANARY, loop.state, {}, 0.0))
        assert loop.live.table == routing_table(loop.state)
        assert loop.live.table.weight_of("green") == 1000
        assert (loop.live.phase, loop.live.version) == ("stepping", loop.version)
        assert await loop.answer() == {"blue", "green"}
        [point] = loop.executor.timeline.points("churn")
        assert point.weights_percent == {"blue": 90.0, "green": 10.0}

    run(CANARY, body)


def test_a_table_that_sends_traffic_to_an_unloaded_variant_is_not_swapped() -> None:
    async def body(loop: Loop) -> None:
        before = loop.live.table
        del loop.live.variants["green"]
        assert not loop.carry_out(start(CANARY, loop.state, {}, 0.0))
        assert loop.live.table is before and loop.live.version == 0  # tried again at the next apply

    run(CANARY, body)


def test_pause_is_recorded_and_a_resume_clears_it() -> None:
    async def body(loop: Loop) -> None:
        loop.carry_out(start(CANARY, loop.state, {}, 0.0))
        table = loop.live.table
        loop.carry_out(pause(CANARY, loop.state, 5.0, actor="alice", duration_s=60))
        assert (loop.live.is_paused, loop.live.paused_until) == (True, 65.0)
        assert loop.live.table is table  # a pause holds the weights
        loop.carry_out(resume(CANARY, loop.state, 10.0, actor="alice"))
        assert (loop.live.is_paused, loop.live.paused_until) == (False, None)

    run(CANARY, body)


def test_promote_keeps_the_previous_version_answering_for_retire_after_s_then_unloads_it() -> None:
    async def body(loop: Loop) -> None:
        loop.carry_out(start(BLUE_GREEN, loop.state, {}, 0.0))
        loop.clock.now = 10.0
        loop.carry_out(promote(BLUE_GREEN, loop.state, 10.0, actor="alice", full=True))
        assert await loop.answer() == {"green"}
        blue = loop.live.variants["blue"]
        assert loop.live.retire_at == {"blue": 310.0}
        await loop.tick_at(309.0)
        assert loop.live.variants["blue"] is blue  # warm: loaded, its batcher running
        assert (await blue.infer(InferenceRequest(np.zeros((1, 1)), 1)))["predictions"].tolist() == [0.0]
        await loop.tick_at(310.0)
        assert "blue" not in loop.live.variants and blue.batcher is not None and blue.batcher._worker is None
        # the status still says what it served, and its counters stay in the snapshot
        assert loop.live.model_of("blue") == ("blue", "1")
        assert set(loop.live.snapshot()) == {"blue", "green"}
        assert await loop.answer() == {"green"}

    run(BLUE_GREEN, body)


def test_a_switch_back_inside_the_window_loads_nothing_and_retires_the_new_version() -> None:
    async def body(loop: Loop) -> None:
        loop.carry_out(start(BLUE_GREEN, loop.state, {}, 0.0))
        loop.clock.now = 10.0
        loop.carry_out(promote(BLUE_GREEN, loop.state, 10.0, actor="alice", full=True))
        blue = loop.live.variants["blue"]
        await loop.tick_at(200.0)
        loop.carry_out(rollback(BLUE_GREEN, loop.state, 200.0, actor="bob"))
        # the next request is the old colour's, the very variant that stayed warm
        assert await loop.answer() == {"blue"} and loop.live.variants["blue"] is blue
        assert loop.live.retire_at == {"green": 200.0}
        await loop.tick_at(229.0)  # green had traffic until 200: the grace keeps it a while
        assert "green" in loop.live.variants
        await loop.tick_at(230.0)
        assert set(loop.live.variants) == {"blue"}
        await loop.tick_at(400.0)  # blue's old retirement was cancelled by the switch back
        assert set(loop.live.variants) == {"blue"}

    run(BLUE_GREEN, body)


def test_a_variant_that_just_lost_its_traffic_keeps_answering_for_the_grace_period() -> None:
    async def body(loop: Loop) -> None:
        loop.carry_out(start(CANARY, loop.state, {}, 0.0))
        loop.clock.now = 50.0
        loop.carry_out(promote(CANARY, loop.state, 50.0, actor="alice"))  # retire_after_s 0
        await loop.tick_at(60.0)
        assert "blue" in loop.live.variants  # a request routed just before the swap still lands
        await loop.tick_at(80.0)
        assert set(loop.live.variants) == {"green"}

    run(CANARY, body)


def test_rollback_unloads_the_candidate() -> None:
    async def body(loop: Loop) -> None:
        loop.carry_out(start(CANARY, loop.state, {}, 0.0))
        loop.clock.now = 5.0
        loop.carry_out(rollback(CANARY, loop.state, 5.0, actor="alice"))
        assert await loop.answer() == {"blue"}
        await loop.tick_at(5.0)
        assert set(loop.live.variants) == {"blue"}
        assert loop.live.model_of("green") == ("green", "1")

    run(CANARY, body, grace_s=0.0)


def test_a_record_event_is_the_runners_and_changes_nothing_here() -> None:
    async def body(loop: Loop) -> None:
        table = loop.live.table
        event = RecordEvent(1.0, "alice", "note", "why", "pending", "pending")
        deployment = Deployment("churn", CANARY, loop.state, 2, 0.0, 1.0)
        assert loop.executor.carry_out(loop.live, deployment, (event,))
        assert loop.live.table is table and set(loop.live.variants) == {"blue", "green"}

    run(CANARY, body)


def test_the_in_process_backend_has_no_replicas_to_size() -> None:
    rolling = _spec(type="rolling", replicas=4, batch_size=2, min_duration_s=10)

    async def body(loop: Loop) -> None:
        backend = loop.executor.backend
        assert backend.has_replicas is False
        loop.carry_out(start(rolling, loop.state, {}, 0.0))
        await loop.tick_at(1.0)  # the stage's counts are for a backend with replicas: none asked
        with pytest.raises(Conflict, match="no replicas"):
            backend.resize(loop.live.variants["blue"], VariantScaling(replicas=2))

    run(rolling, body)


def test_a_backend_with_replicas_runs_each_stages_counts_then_the_specs_again() -> None:
    rolling = _spec(type="rolling", replicas=4, batch_size=2, min_duration_s=10)
    backend = RecordingBackend()

    async def body(loop: Loop) -> None:
        loop.carry_out(start(rolling, loop.state, {}, 0.0))
        await loop.tick_at(1.0)
        assert sorted(backend.resized, key=str) == [
            ("churn/blue", VariantScaling(replicas=2)),
            ("churn/green", VariantScaling(replicas=2)),
        ]
        backend.resized.clear()
        loop.carry_out(start(rolling, initial_state(rolling), {}, 0.0))  # the same stage again
        await loop.tick_at(2.0)
        assert backend.resized == []  # already that size
        loop.clock.now = 3.0
        loop.carry_out(promote(rolling, loop.state, 3.0, actor="alice"))
        await loop.tick_at(4.0)
        # the promoted variant runs its spec's scaling again; blue, retiring, is left as it is
        assert backend.resized == [("churn/green", VariantScaling(replicas=3))]

    run(rolling, body, backend=backend)


def test_a_restarted_shell_serves_the_stored_state_alike() -> None:
    """What a restart (or another gateway) does with a stored state: the same table, pause and
    retirement, and only the variants that state still needs are loaded."""

    async def body(loop: Loop) -> None:
        loop.carry_out(start(BLUE_GREEN, loop.state, {}, 0.0))
        loop.clock.now = 10.0
        loop.carry_out(promote(BLUE_GREEN, loop.state, 10.0, actor="alice", full=True))
        stored = loop.state
        for now, needed in ((100.0, {"blue", "green"}), (400.0, {"green"})):
            names = loaded_variants(BLUE_GREEN, stored, now)
            assert set(names) == needed
            fresh = LiveDeployment(
                BLUE_GREEN, {n: loop.live.variants[n] for n in names}, routing_table(stored)
            )
            executor = ActionExecutor(InProcessBackend(_variant), clock=Clock(now))
            deployment = Deployment("churn", BLUE_GREEN, stored, 9, 0.0, now)
            assert executor.carry_out(fresh, deployment, serving_actions(BLUE_GREEN, stored, now))
            assert fresh.table == loop.live.table
            assert fresh.retire_at == ({"blue": 310.0} if "blue" in needed else {})
        paused, _ = pause(
            CANARY, start(CANARY, initial_state(CANARY), {}, 0.0)[0], 1.0, actor="x", duration_s=5
        )
        fresh = LiveDeployment(CANARY, dict(loop.live.variants), routing_table(initial_state(CANARY)))
        executor = ActionExecutor(InProcessBackend(_variant), clock=Clock(2.0))
        deployment = Deployment("churn", CANARY, paused, 9, 0.0, 2.0)
        assert executor.carry_out(fresh, deployment, serving_actions(CANARY, paused, 2.0))
        assert fresh.table == routing_table(paused) and (fresh.is_paused, fresh.paused_until) == (True, 6.0)

    run(BLUE_GREEN, body)


def test_routed_names_the_variants_a_table_sends_requests_to() -> None:
    state, _ = start(BLUE_GREEN, initial_state(BLUE_GREEN), {}, 0.0)
    assert routed(routing_table(state)) == {"blue", "green"}  # green by its mirror
    assert routed(routing_table(initial_state(BLUE_GREEN))) == {"blue"}
