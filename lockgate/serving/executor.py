"""The shell that carries out what the controller decides: every action, on every backend.

:func:`~lockgate.rollout.controller.step` returns actions; :class:`ActionExecutor` maps each one onto
the live deployments and the :class:`~lockgate.serving.backend.Backend`:

- ``SetWeights``: swap in the routing table the action gives (one assignment); on a backend with
  replicas, size each variant as the action lists (a variant not listed: its spec's scaling);
- ``Pause``: record it for the status (a timed pause resumes at the first tick after it ends);
- ``Promote``: keep the replaced variants loaded ``retire_after_s`` (blue-green's
  ``keep_previous_warm_s``: a switch back inside it is a table swap), then unload them;
- ``Rollback``: unload the candidate;
- ``RecordEvent``: nothing here (the runner wrote it to the audit log with the state).

:meth:`ActionExecutor.carry_out` only swaps the table and notes what is owed, so it may run in the
runner's thread; :meth:`ActionExecutor.tick` (on the event loop) unloads and resizes. A variant is
never unloaded sooner than ``grace_s`` after it last had traffic, so a request routed to it just
before the swap (its body still arriving) is answered by it; and never while the table routes to it
(a switch back cancels its retirement).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence

from lockgate.monitor.timeline import WeightTimeline
from lockgate.rollout.controller import Action, Pause, Phase, Promote, RecordEvent, Rollback, SetWeights
from lockgate.rollout.router import RoutingTable
from lockgate.rollout.spec import VariantScaling
from lockgate.rollout.store import Deployment
from lockgate.serving.backend import Backend
from lockgate.serving.live import LiveDeployment
from lockgate.serving.variant import Variant

__all__ = ["RETIRE_GRACE_S", "ActionExecutor", "routed"]

RETIRE_GRACE_S = 30.0
"""How long a variant that lost its traffic keeps answering the requests already routed to it."""


def routed(table: RoutingTable) -> frozenset[str]:
    """The variants ``table`` sends requests to: a weight above zero, or the shadow."""
    names = {name for name, weight in zip(table.variants, table.weights_bp, strict=True) if weight > 0}
    if table.shadow_variant is not None and table.shadow_bp > 0:
        names.add(table.shadow_variant)
    return frozenset(names)


class ActionExecutor:
    """Carries out the controller's actions on the deployments one process serves.

    ``backend`` loads and sizes variants; ``grace_s`` is the least time a variant keeps answering
    after it lost its traffic; ``clock`` is wall time (the controller's); ``timeline`` records the
    weights over time for the dashboard.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        grace_s: float = RETIRE_GRACE_S,
        clock: Callable[[], float] = time.time,
        timeline: WeightTimeline | None = None,
    ) -> None:
        self.backend = backend
        self.grace_s = grace_s
        self.clock = clock
        self.timeline = timeline if timeline is not None else WeightTimeline()
        self._routed_until: dict[tuple[str, str], float] = {}  # last time the table sent it traffic
        self._sizes: dict[tuple[str, str], VariantScaling] = {}  # replicas in force, when not the spec's
        self._resizes: dict[tuple[str, str], VariantScaling] = {}  # asked for, not yet carried out
        self._replaced: list[tuple[Variant, float]] = []  # off a redeployed spec: stopped after grace

    # ------------------------------------------------------------------ the actions

    def carry_out(self, live: LiveDeployment, deployment: Deployment, actions: Sequence[Action]) -> bool:
        """Serve ``deployment``'s stored state by carrying out ``actions`` (what the controller
        returned with it). False when the table would send traffic to a variant that is not loaded
        here: nothing is swapped, and the caller loads it and tries again."""
        now = self.clock()
        state = deployment.state
        for action in actions:
            if isinstance(action, SetWeights) and not routed(action.table()) <= set(live.variants):
                return False
        live.phase = state.phase.value
        live.version = deployment.version
        live.decision = state.last_verdict.decision.value if state.last_verdict is not None else None
        live.is_paused, live.paused_until = state.phase is Phase.PAUSED, None
        for action in actions:
            match action:
                case SetWeights():
                    self._set_weights(live, action, now)
                case Pause(until=until):
                    live.is_paused, live.paused_until = True, until
                case Promote(retire=retire, retire_after_s=after_s):
                    self._retire(live, retire, now + after_s)
                case Rollback(retire=retire):
                    self._retire(live, retire, now)
                case RecordEvent():
                    pass  # the runner wrote it to the audit log with the state
        weights = {name: live.table.weight_of(name) / 100.0 for name in live.table.variants}
        self.timeline.record(live.spec.name, now, live.phase, weights)
        return True

    def _set_weights(self, live: LiveDeployment, action: SetWeights, now: float) -> None:
        name = live.spec.name
        table = action.table()
        for variant in routed(live.table) - routed(table):
            self._routed_until[(name, variant)] = now
        live.table = table  # one assignment: a request sees the old table or the new
        for variant in routed(table):
            live.retire_at.pop(variant, None)  # a switch back: it serves again
        if self.backend.has_replicas:
            counts = dict(action.replicas)
            for variant in live.variants:
                scaling = live.spec.scaling_of(variant)
                if variant in counts:
                    scaling = VariantScaling(replicas=counts[variant], num_cpus=scaling.num_cpus)
                key = (name, variant)
                if self._sizes.get(key, live.spec.scaling_of(variant)) != scaling:
                    self._resizes[key] = scaling

    def _retire(self, live: LiveDeployment, variants: Iterable[str], at: float) -> None:
        for variant in variants:
            if variant in live.variants and variant not in routed(live.table):
                live.retire_at[variant] = at

    # ------------------------------------------------------------------ what is owed

    def replaced(self, variants: Iterable[Variant]) -> None:
        """Variants a new spec no longer uses: stopped after the grace period."""
        at = self.clock() + self.grace_s
        self._replaced.extend((variant, at) for variant in variants)

    def forget(self, name: str) -> None:
        """Deployment ``name`` was loaded again: its variants run their spec's scaling."""
        self._sizes = {key: size for key, size in self._sizes.items() if key[0] != name}
        self._resizes = {key: size for key, size in self._resizes.items() if key[0] != name}
        self._routed_until = {key: at for key, at in self._routed_until.items() if key[0] != name}

    async def tick(self, deployments: Iterable[LiveDeployment]) -> None:
        """Unload what is due, stop what a redeploy replaced, resize what was asked for."""
        now = self.clock()
        for live in list(deployments):
            name = live.spec.name
            for variant_name, at in list(live.retire_at.items()):
                lost_traffic_at = self._routed_until.get((name, variant_name), float("-inf"))
                if now >= max(at, lost_traffic_at + self.grace_s):
                    unloaded = live.unload(variant_name)
                    if unloaded is not None:
                        await unloaded.stop()
            for key, scaling in list(self._resizes.items()):
                if key[0] != name:
                    continue
                served = live.variants.get(key[1])
                if served is None or key[1] in live.retire_at:
                    del self._resizes[key]  # gone or going: a switch back asks again
                    continue
                del self._resizes[key]
                await asyncio.to_thread(self.backend.resize, served, scaling)
                self._sizes[key] = scaling
        due = [variant for variant, at in self._replaced if now >= at]
        self._replaced = [(variant, at) for variant, at in self._replaced if now < at]
        for replaced in due:
            await replaced.stop()

    async def stop(self) -> None:
        """Stop every replaced variant still waiting for its grace period (the server stops)."""
        replaced, self._replaced = self._replaced, []
        await asyncio.gather(*(variant.stop() for variant, _ in replaced))
