"""The controller loop and the manual commands: the shell around :func:`step` and the store.

A :class:`RolloutRunner` drives the deployments one serving process holds. Each :meth:`tick`
writes this worker's cumulative counters to the store, and, for a live rollout whose lease it
holds, reads every worker's merged counters, calls the pure :func:`step`, writes the new state and
its events in one compare-and-set, and hands the stored state and the actions that came with it to
the :class:`RolloutTarget`, which carries them out (swaps in the routing table, retires variants).
A manual command (:meth:`command`) goes the same way, so a promote, pause or rollback takes effect
at the next request, and the audit log says who did it and why.

When a rollout promotes or rolls back, a :class:`ChampionRegistry` (MLflow in production) moves the
``champion`` alias; the move is recorded as its own audit event after the state is saved, so a
state write that lost a race never moves an alias. A registry that refuses the move (the server's
user lacks EDIT on the model) leaves the decision standing and the refusal in the audit log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from lockgate.errors import Conflict, LockgateError, NotFound, UserError
from lockgate.rollout.controller import (
    LIVE_PHASES,
    TERMINAL_PHASES,
    Action,
    Phase,
    Promote,
    RecordEvent,
    Rollback,
    RolloutState,
    Snapshot,
    initial_state,
    pause,
    promote,
    resume,
    rollback,
    start,
    step,
)
from lockgate.rollout.spec import DeploymentSpec
from lockgate.rollout.store import Deployment, Store
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.verdict import Policy

__all__ = ["COMMANDS", "ChampionRegistry", "RolloutRunner", "RolloutTarget", "check_replaceable"]

_log = logging.getLogger("lockgate.rollout")

COMMANDS = ("start", "promote", "pause", "resume", "rollback")
"""The manual commands :meth:`RolloutRunner.command` takes."""


class RolloutTarget(Protocol):
    """The live side of a deployment, as the runner sees it."""

    def snapshot(self, name: str) -> dict[str, VariantStats]:
        """This worker's cumulative counters per variant of deployment ``name``."""
        ...

    def apply(self, deployment: Deployment, actions: Sequence[Action] = ()) -> None:
        """Serve by the stored state (idempotent: called every tick): carry out ``actions``, what
        the controller returned with this state, or (none given: a restart, a state another
        gateway wrote) what the state implies (:func:`~lockgate.rollout.state.serving_actions`)."""
        ...


class ChampionRegistry(Protocol):
    """Moves the ``champion`` alias to the model a variant's URI names."""

    def move_champion(self, model_uri: str) -> tuple[str | None, str] | None:
        """Point ``champion`` at ``model_uri``'s version: (previous version, new version), or None
        when the URI is not a registered model (a local path, a run)."""
        ...


def check_replaceable(existing: Deployment) -> None:
    """A deployment takes a new spec only when its rollout has finished or never started."""
    phase = existing.state.phase
    if phase not in TERMINAL_PHASES and phase is not Phase.PENDING:
        raise Conflict(
            f"deployment '{existing.name}' has a rollout that is {phase.value}",
            hint=f"promote or roll it back first: lockgate rollout rollback {existing.name}",
        )


class RolloutRunner:
    """Steps rollouts and carries out commands for one worker.

    ``policy_for`` gives the policy that judges a deployment; ``worker_id`` must be unique per
    process start (counters restart at zero with a new process; the old worker's last snapshot
    stays in the store, so nothing counted before a crash is lost). ``clock`` is wall time.
    """

    def __init__(
        self,
        store: Store,
        target: RolloutTarget,
        *,
        worker_id: str,
        policy_for: Callable[[DeploymentSpec], Policy],
        registry: ChampionRegistry | None = None,
        clock: Callable[[], float] = time.time,
        lease_ttl_s: float = 5.0,
        external: Callable[[DeploymentSpec], Mapping[str, Mapping[str, float]]] | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.worker_id = worker_id
        self.policy_for = policy_for
        self.registry = registry
        self.clock = clock
        self.lease_ttl_s = lease_ttl_s
        self.external = external  # the spec's analysis.metrics, from a provider (Prometheus)

    # ------------------------------------------------------------------ the loop

    def tick(self, names: Iterable[str]) -> None:
        """One pass over ``names``: flush counters, step what is live, apply what is stored."""
        for name in names:
            now = self.clock()
            self.store.save_snapshot(name, self.worker_id, self.target.snapshot(name), now=now)
            deployment = self.store.get_deployment(name)
            state = deployment.state
            if (state.phase in LIVE_PHASES or state.phase is Phase.PAUSED) and self.store.acquire_lease(
                name, self.worker_id, now=now, ttl_s=self.lease_ttl_s
            ):
                snapshot = self.store.load_snapshot(name)
                policy = self.policy_for(deployment.spec)
                spec = deployment.spec
                external = self.external(spec) if self.external and spec.analysis.metrics else None
                new_state, actions = step(spec, state, snapshot, now, policy, external)
                if new_state != state:
                    try:
                        deployment = self._commit(deployment, new_state, actions, now)
                    except Conflict:
                        # another writer (a command, another gateway) moved first: serve what it wrote
                        deployment = self.store.get_deployment(name)
                    else:
                        self.target.apply(deployment, actions)
                        continue
            self.target.apply(deployment)

    # ------------------------------------------------------------------ commands

    def deploy(self, spec: DeploymentSpec, *, actor: str) -> Deployment:
        """Store a new deployment, or give a finished (or never started) one a new spec."""
        now = self.clock()
        state = initial_state(spec)
        created = RecordEvent(now, actor, "deploy", "deployment created", "none", state.phase.value)
        try:
            existing = self.store.get_deployment(spec.name)
        except NotFound:  # not StoreUnreachable (also a UserError): that must not look like "new"
            self.store.create_deployment(spec, state, now=now)
            self.store.append_events(spec.name, [created])
            deployment = self.store.get_deployment(spec.name)
            self.target.apply(deployment)
            return deployment
        check_replaceable(existing)
        event = replace(
            created, reason="deployment updated with a new spec", from_phase=existing.state.phase.value
        )
        deployment = self.store.replace_spec(
            spec, state, expected_version=existing.version, now=now, events=[event]
        )
        self.target.apply(deployment)
        return deployment

    def command(
        self,
        name: str,
        verb: str,
        *,
        actor: str,
        reason: str | None = None,
        duration_s: float | None = None,
    ) -> Deployment:
        """Carry out ``start``, ``promote``, ``pause``, ``resume`` or ``rollback`` now."""
        if verb not in COMMANDS:
            raise UserError(f"unknown rollout command '{verb}'", hint=f"use one of {', '.join(COMMANDS)}")
        now = self.clock()
        self.store.save_snapshot(name, self.worker_id, self.target.snapshot(name), now=now)
        deployment = self.store.get_deployment(name)
        spec, state = deployment.spec, deployment.state
        why = {"reason": reason} if reason else {}
        if verb == "start":
            snapshot: Snapshot = self.store.load_snapshot(name)
            new_state, actions = start(spec, state, snapshot, now, actor=actor, **why)
        elif verb == "promote":
            new_state, actions = promote(spec, state, now, actor=actor, reason=reason)
        elif verb == "rollback":
            new_state, actions = rollback(spec, state, now, actor=actor, **why)
        elif verb == "pause":
            new_state, actions = pause(spec, state, now, actor=actor, duration_s=duration_s, **why)
        else:
            new_state, actions = resume(spec, state, now, actor=actor, **why)
        deployment = self._commit(deployment, new_state, actions, now)
        self.target.apply(deployment, actions)
        return deployment

    # ------------------------------------------------------------------ persistence

    def _commit(
        self, deployment: Deployment, state: RolloutState, actions: Sequence[Action], now: float
    ) -> Deployment:
        events = [action for action in actions if isinstance(action, RecordEvent)]
        saved = self.store.save_state(
            deployment.name, state, expected_version=deployment.version, now=now, events=events
        )
        for action in actions:
            if isinstance(action, Promote | Rollback):
                self._follow(saved, action, now)
        return saved

    def _follow(self, deployment: Deployment, action: Promote | Rollback, now: float) -> None:
        """Move the registry's champion to the variant that now serves everything."""
        if self.registry is None:
            return
        uri = deployment.spec.variants[action.variant]
        what = "promotion" if isinstance(action, Promote) else "rollback"
        try:
            moved = self.registry.move_champion(uri)
        except LockgateError as exc:
            # the rollout's decision is saved and stands; a registry that refuses the move (no EDIT
            # on the model for the server's user) or is away leaves the alias where it was, said here
            said = f"{what}: the champion alias was not moved ({uri}): {exc.message}"
            self.store.append_events(deployment.name, [self._registry_event(deployment, now, said, {})])
            _log.warning("%s; hint: %s", said, exc.hint or "move it with `lockgate alias set`")
            return
        if moved is None:
            return
        previous, current = moved
        numbers = {"to_version": float(current)} if current.isdigit() else {}
        if previous is not None and previous.isdigit():
            numbers["from_version"] = float(previous)
        moved_how = (
            f"champion alias stays at version {current}"
            if previous == current
            else f"champion alias moved from version {previous or 'none'} to {current}"
        )
        event = self._registry_event(deployment, now, f"{what}: {moved_how} ({uri})", numbers)
        self.store.append_events(deployment.name, [event])
        _log.info("%s", event.reason)

    @staticmethod
    def _registry_event(
        deployment: Deployment, now: float, reason: str, numbers: Mapping[str, float]
    ) -> RecordEvent:
        phase = deployment.state.phase.value
        return RecordEvent(
            at=now,
            actor="registry",
            action="champion",
            reason=reason,
            from_phase=phase,
            to_phase=phase,
            numbers=numbers,
        )
