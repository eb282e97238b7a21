r"""Deployments inside the server: the loop that loads, steps and serves them, and its commands.

:class:`DeploymentManager` is the :class:`~lockgate.rollout.runner.RolloutTarget` of one serving
process: it loads each deployment's variants through a :class:`~lockgate.serving.backend.Backend`
(in a thread), runs the controller loop a few times a second, and carries out the admin commands.
What the controller decides is carried out by its :class:`~lockgate.serving.executor.ActionExecutor`
(weights, pause, retirement, replicas). Monitoring (alerts, drift, capture, retraining) plugs into
the loop's tick as :class:`~lockgate.monitor.hooks.MonitorHook`\ s. Counters are read on the event
loop and handed to the runner's thread, so the store's I/O never runs on the loop.

The request path's side of a deployment is :class:`~lockgate.serving.live.LiveDeployment`; the admin
API, the metrics and the dashboard see this class through :class:`~lockgate.serving.live.Deployments`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lockgate.errors import Conflict, LockgateError, ModelLoadError, NotFound, StoreUnreachable, UserError
from lockgate.llm.prompt import bind_prompt, registry_prompt
from lockgate.monitor.hooks import MonitorHook
from lockgate.monitor.timeline import WeightTimeline
from lockgate.rollout.controller import Action, initial_state, loaded_variants, routing_table, serving_actions
from lockgate.rollout.runner import ChampionRegistry, RolloutRunner, check_replaceable
from lockgate.rollout.shadow import compare_outputs
from lockgate.rollout.spec import UPSTREAM_PREFIX, DeploymentSpec
from lockgate.rollout.state import RolloutState
from lockgate.rollout.store import Deployment, Store
from lockgate.serving.backend import Backend, InProcessBackend, ScaledVariantLoader, VariantLoader
from lockgate.serving.executor import RETIRE_GRACE_S, ActionExecutor, routed
from lockgate.serving.live import LiveDeployment, event_document, field_routing_key, status_document
from lockgate.serving.mirror import ShadowMirror
from lockgate.serving.variant import Variant
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.verdict import Policy

if TYPE_CHECKING:
    from lockgate.llm.prompt import BoundPrompt
    from lockgate.serving.app import ServingApp

PromptFetcher = Callable[[str], tuple[str, Any]]
"""A prompt reference (``support@2``) → (its resolved ``NAME@VERSION``, its template)."""

__all__ = [
    "DeploymentManager",
    "LiveDeployment",
    "ScaledVariantLoader",
    "ShadowMirror",
    "VariantLoader",
    "compare_outputs",
    "field_routing_key",
    "upstream_variant",
]

_log = logging.getLogger("lockgate.serving")


def _loaded_as(spec: DeploymentSpec, variant: str) -> tuple[Any, ...]:
    """What a loaded variant is, for reuse by a new spec: its URI and scaling, and for an upstream
    variant the endpoint and the allow-list it was checked against."""
    upstream = spec.upstream_of(variant)
    if upstream is None:
        return (spec.variants[variant], spec.scaling_of(variant))
    return (spec.variants[variant], upstream, spec.upstreams.allowed_hosts)


def upstream_variant(spec: DeploymentSpec, variant: str) -> Variant:
    """The variant ``spec`` serves with an upstream endpoint (its URI is ``upstream:NAME``), checked
    against the spec's allow-list and its host resolved (blocking: called in a thread)."""
    from lockgate.llm.upstream import UpstreamPredictor

    uri = spec.variants[variant]
    endpoint = spec.upstream_of(variant)
    if endpoint is None:
        raise UserError(f"variant '{variant}' ({uri}) is not one of the spec's upstream endpoints")
    predictor = UpstreamPredictor(uri[len(UPSTREAM_PREFIX) :], endpoint, spec.upstreams.allowed_hosts)
    predictor.load()
    return Variant(endpoint.model, uri, predictor, key=f"{spec.name}/{variant}")


def _counted(stats: VariantStats) -> tuple[int, int]:
    """How much a snapshot has seen: requests, then outcomes (feedback arrives after requests)."""
    return stats.requests, stats.outcome.count + stats.conversions.trials


class DeploymentManager:
    """Deployments of one serving process, their controller loop and their commands.

    ``store`` holds the state; ``backend`` loads and sizes variants (default: the embedded one,
    loading each variant with ``load``); ``policy_for`` gives the policy that judges a deployment;
    ``registry`` (optional) moves the champion alias on promote and rollback. ``tick_s`` is the
    controller's period; every ``discover_s`` the store is checked for deployments that other
    gateways created. Several gateways on one store (Postgres) add up their counters there, and one
    of them at a time (the lease holder) steps each rollout. ``persist_joins`` writes which variant
    answered each request id to the store (feedback through any gateway), keeping the newest
    ``max_joins``. ``hooks`` (:func:`~lockgate.monitor.hooks.monitor_hooks`) run after each tick.
    ``retire_grace_s``: a variant that lost its traffic keeps answering at least this long.
    ``fetch_prompt``: reads a prompt version of the spec's ``llm:`` section (default: MLflow's
    prompt registry), once per deployment load, never per request.
    """

    def __init__(
        self,
        store: Store,
        *,
        load: VariantLoader | None = None,
        backend: Backend | None = None,
        policy_for: Callable[[DeploymentSpec], Policy],
        registry: ChampionRegistry | None = None,
        tick_s: float = 0.25,
        worker_id: str | None = None,
        initial: Sequence[DeploymentSpec] = (),
        discover_s: float = 1.0,
        persist_joins: bool = False,
        max_joins: int = 1_000_000,
        external_metrics: Callable[[DeploymentSpec], Mapping[str, Mapping[str, float]]] | None = None,
        hooks: Iterable[MonitorHook] = (),
        retire_grace_s: float = RETIRE_GRACE_S,
        fetch_prompt: PromptFetcher | None = None,
    ) -> None:
        if backend is None:
            if load is None:
                raise TypeError("DeploymentManager needs a backend or a load function")
            backend = InProcessBackend(load)
        self.store = store
        self.backend = backend
        self.hooks = list(hooks)
        self.fetch_prompt = fetch_prompt or registry_prompt
        self.initial = tuple(initial)
        self.discover_s = discover_s
        self.persist_joins = persist_joins
        self.max_joins = max_joins
        self._pending_joins: dict[str, list[tuple[str, str]]] = {}
        self._flushes = 0
        self.tick_s = tick_s
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.live: dict[str, LiveDeployment] = {}
        self.timeline = WeightTimeline()  # the weights over time, for the dashboard
        self.executor = ActionExecutor(backend, grace_s=retire_grace_s, timeline=self.timeline)
        self.runner = RolloutRunner(
            store,
            self,
            worker_id=self.worker_id,
            policy_for=policy_for,
            registry=registry,
            external=external_metrics,
        )
        self._collected: dict[str, dict[str, VariantStats]] = {}
        self._app: ServingApp | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one tick or command at a time (bound to a loop at first use)
        self.tick_errors = 0
        self.store_error: str | None = None  # why the controller waits: the store is unreachable
        self._deploying: set[str] = set()  # being deployed here: discovery leaves them alone
        self.after_tick: list[Callable[[], None]] = []  # run in a thread about once a second

    def collectors(self) -> list[Any]:
        """The hooks that export Prometheus families of their own (``collect``)."""
        return [hook for hook in self.hooks if callable(getattr(hook, "collect", None))]

    # ------------------------------------------------------------------ RolloutTarget

    def snapshot(self, name: str) -> dict[str, VariantStats]:
        collected = self._collected.get(name)
        if collected is not None:
            return collected
        live = self.live.get(name)
        return live.snapshot() if live is not None else {}

    def apply(self, deployment: Deployment, actions: Sequence[Action] = ()) -> None:
        live = self.live.get(deployment.name)
        if live is None or deployment.version == live.version:
            return
        if not actions:  # a restart, or a state another gateway (or a lost race) wrote
            actions = serving_actions(deployment.spec, deployment.state, time.time())
        if not self.executor.carry_out(live, deployment, actions):
            # another gateway switched back to a variant this one already unloaded: discovery
            # loads it, and until then the table in force stays
            _log.warning("deployment '%s': waiting for a variant to load before switching", deployment.name)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, app: ServingApp) -> None:
        """Serve every deployment the store holds, then run the controller loop."""
        self._app = app
        stored = await asyncio.to_thread(self.store.list_deployments)
        for deployment in stored:
            await self._load(deployment.spec, deployment.state)
            self.apply(deployment)
            _log.info("serving deployment %s (%s)", deployment.name, deployment.state.phase.value)
        for spec in self.initial:
            live = self.live.get(spec.name)
            if live is not None and live.spec == spec:
                continue  # a restart: the stored rollout carries on where it was
            try:
                await self.deploy(spec, actor="serve")
            except Conflict as exc:
                # a live rollout outranks a changed file: finish or roll it back, then redeploy
                _log.warning("kept the stored spec of '%s': %s", spec.name, exc)
        self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name="lockgate-controller")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for live in self.live.values():
            await live.mirror.stop()
        for live in self.live.values():
            await asyncio.gather(*(variant.stop() for variant in live.variants.values()))
        await self.executor.stop()
        # the last counters reach the store, so a clean restart loses nothing
        await self._tick()
        for hook in self.hooks:
            await hook.close(self.live, self.store)

    async def flush(self) -> None:
        """Send the counters to the store now (one controller tick)."""
        if self._app is not None:
            await self._tick()

    async def _loop(self) -> None:
        last_discovery = last_hooks = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self._tick()
                for hook in self.hooks:
                    await hook.tick(self.live, self.store)
                now = asyncio.get_running_loop().time()
                if self.after_tick and now - last_hooks >= 1.0:
                    last_hooks = now
                    for after in self.after_tick:
                        await asyncio.to_thread(after)
                if now - last_discovery >= self.discover_s:
                    last_discovery = now
                    await self._discover()
                if self.store_error is not None:
                    _log.warning("the rollout store is reachable again; rollouts carry on")
                    self.store_error = None
            except StoreUnreachable as exc:
                self.tick_errors += 1
                if self.store_error is None:  # said once per outage, not at every tick
                    _log.error("%s", exc)
                self.store_error = exc.message
            # the loop must outlive a failing store (a database restart): log, count, try again
            except Exception:  # noqa: BLE001
                self.tick_errors += 1
                _log.exception("controller tick failed; retrying")

    async def _discover(self) -> None:
        """Serve what other gateways on the same store created or redeployed, and load again a
        variant this one unloaded that the stored state routes to again.

        A deployment made through another gateway's admin API appears here within
        ``discover_s``; weight changes already arrive with every tick (each re-reads the state).
        """
        for deployment in await asyncio.to_thread(self.store.list_deployments):
            live = self.live.get(deployment.name)
            if deployment.name in self._deploying or (
                live is not None and live.spec == deployment.spec and self._has_loaded(live, deployment.state)
            ):
                continue
            try:
                await self._load(deployment.spec, deployment.state)
            except LockgateError as exc:
                _log.error("cannot serve deployment '%s' from the store: %s", deployment.name, exc)
                continue
            self.live[deployment.name].version = -1
            self.apply(deployment)
            _log.info("serving deployment %s, as stored by another gateway", deployment.name)

    @staticmethod
    def _has_loaded(live: LiveDeployment, state: RolloutState) -> bool:
        return routed(routing_table(state)) <= set(live.variants)

    async def _tick(self) -> None:
        async with self._lock:
            names = list(self.live)
            self._collected = {name: self.live[name].snapshot() for name in names}
            joins, self._pending_joins = self._pending_joins, {}
            try:
                await asyncio.to_thread(self.runner.tick, names)
                if joins:
                    await asyncio.to_thread(self._save_joins, joins)
            finally:
                self._collected = {}
            await self.executor.tick(self.live.values())

    # ------------------------------------------------------------------ feedback joins

    def note_join(self, name: str, request_id: bytes, variant: Variant) -> None:
        """Queue "``variant`` answered ``request_id``" for the store (request path: one append)."""
        live = self.live.get(name)
        variant_name = live.name_of(variant) if live is not None else None
        if variant_name is not None:
            self._pending_joins.setdefault(name, []).append((request_id.decode("latin-1"), variant_name))

    def _save_joins(self, joins: dict[str, list[tuple[str, str]]]) -> None:
        now = time.time()
        self._flushes += 1
        for name, rows in joins.items():
            self.store.save_joins(name, rows, now=now)
            if self._flushes % 120 == 0:  # every half a minute or so: keep the newest max_joins
                self.store.prune_joins(name, keep=self.max_joins)

    async def claim_outcome(
        self, name: str, request_id: str, variant: Variant | None, outcome: dict[str, Any]
    ) -> tuple[Variant | None, dict[str, Any] | None]:
        """Count an outcome once across gateways: (the variant that answered or None, the outcome
        stored before, or None when this call is the first)."""
        live = self._require(name)
        known = live.name_of(variant) if variant is not None else None
        stored, previous = await asyncio.to_thread(
            self.store.claim_outcome, name, request_id, known, outcome, now=time.time()
        )
        if stored is None:
            return None, None
        return live.variants.get(stored), previous

    # ------------------------------------------------------------------ admin

    async def deploy(self, spec: DeploymentSpec, *, actor: str) -> Deployment:
        """Load the spec's variants, then store it (new, or a new rollout of a finished one)."""
        try:
            existing = await asyncio.to_thread(self.store.get_deployment, spec.name)
        except NotFound:
            existing = None
        if existing is not None:
            check_replaceable(existing)  # before loading anything: a live rollout keeps its variants
        self._deploying.add(spec.name)
        try:
            await self._load(spec, initial_state(spec))
            async with self._lock:
                deployment = await asyncio.to_thread(self.runner.deploy, spec, actor=actor)
        finally:
            self._deploying.discard(spec.name)
        live = self.live[spec.name]
        live.version = -1
        self.apply(deployment)
        return deployment

    async def command(
        self,
        name: str,
        verb: str,
        *,
        actor: str,
        reason: str | None = None,
        duration_s: float | None = None,
    ) -> Deployment:
        live = self._require(name)
        async with self._lock:
            self._collected = {name: live.snapshot()}
            try:
                return await asyncio.to_thread(
                    self.runner.command, name, verb, actor=actor, reason=reason, duration_s=duration_s
                )
            finally:
                self._collected = {}

    def _require(self, name: str) -> LiveDeployment:
        live = self.live.get(name)
        if live is None:
            raise NotFound(
                f"deployment '{name}' is not served here",
                hint=f"deployments: {sorted(self.live) or 'none yet'}; create one with lockgate deploy SPEC",
            )
        return live

    async def variant_stats(self, name: str) -> tuple[Deployment, dict[str, VariantStats]]:
        """The deployment and each variant's counters: the store's merge of every worker, or this
        worker's own when they are fresher than its last flush (requests or outcomes)."""
        live = self._require(name)
        deployment = await asyncio.to_thread(self.store.get_deployment, name)
        merged = await asyncio.to_thread(self.store.load_snapshot, name)
        own = live.snapshot()
        stats: dict[str, VariantStats] = {}
        for variant_name in deployment.spec.variants:
            stored = merged.get(variant_name, VariantStats())
            here = own.get(variant_name)
            stats[variant_name] = stored if here is None or _counted(here) <= _counted(stored) else here
        return deployment, stats

    async def status(self, name: str) -> dict[str, Any]:
        """The deployment's state with live per-variant numbers and the shadow comparison."""
        live = self._require(name)
        deployment, stats = await self.variant_stats(name)
        return status_document(deployment, stats, live)

    async def history(self, name: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        self._require(name)
        events = await asyncio.to_thread(self.store.events, name, after_id=after_id)
        return [event_document(event) for event in events]

    # ------------------------------------------------------------------ loading

    async def _load(self, spec: DeploymentSpec, state: RolloutState) -> None:
        """Load the variants ``state`` needs (reusing any already loaded from the same URI)."""
        now = time.time()
        names = loaded_variants(spec, state, now)
        prompts = await asyncio.to_thread(self._bind_prompts, spec)  # before any model loads
        current = self.live.get(spec.name)
        is_same_spec = current is not None and current.spec == spec
        reuse: dict[str, Variant] = {}
        if current is not None:
            # each loaded variant is reused once, for a variant of the new spec with the same URI
            # (and scaling: a backend with replicas runs them as they were asked for)
            old = current.spec
            pool = [(_loaded_as(old, n), v) for n, v in current.variants.items()]
            for variant_name in names:
                wanted = _loaded_as(spec, variant_name)
                for index, (loaded_as, variant) in enumerate(pool):
                    if loaded_as == wanted:
                        reuse[variant_name] = variant
                        del pool[index]
                        break
            for variant_name, variant in reuse.items():
                if current.name_of(variant) != variant_name:
                    variant.restart_counters()  # counters belong to (variant, model), as in the store
        todo = [(name, spec.variants[name]) for name in names if name not in reuse]
        fresh = await self._load_variants(spec, todo)
        loaded = {name: reuse[name] if name in reuse else fresh[name] for name in names}
        for name in fresh:
            if self._app is not None:
                self._app.start_variant(fresh[name])
            else:
                fresh[name].start()
        table = routing_table(state)
        if current is not None and routed(current.table) <= set(loaded):
            table = current.table  # the stored state's table comes with the next apply
        prices = {
            v: llm.price_per_1k_tokens for v, llm in spec.llm.items() if llm.price_per_1k_tokens is not None
        }
        live = LiveDeployment(spec, loaded, table, prompts=prompts, prices=prices)
        for name in loaded:
            was = current.loaded_at.get(name) if current is not None and name in reuse else None
            live.loaded_at[name] = was if was is not None else now
        if current is not None and is_same_spec:  # loaded again (a variant was missing): same rollout
            live.retire_at = {n: at for n, at in current.retire_at.items() if n in loaded}
            live.retired = {n: m for n, m in current.retired.items() if n not in loaded}
            live.retired_stats = {n: c for n, c in current.retired_stats.items() if n not in loaded}
        for hook in self.hooks:
            hook.attach(live, current)
        if current is not None:
            kept = list(loaded.values())
            await current.mirror.stop()
            self.executor.replaced(v for v in current.variants.values() if not any(v is k for k in kept))
            if not is_same_spec:
                self.executor.forget(spec.name)
        live.mirror.start()
        self.live[spec.name] = live
        if self._app is not None and self._app.default_model is None:
            self._app.default_model = spec.name  # /invocations serves the first deployment

    def _bind_prompts(self, spec: DeploymentSpec) -> dict[str, BoundPrompt]:
        """Each variant's prompt version (the spec's ``llm:`` section), fetched now."""
        bound = {}
        for variant_name, llm in spec.llm.items():
            if llm.prompt is None:
                continue
            try:
                ref, template = self.fetch_prompt(llm.prompt)
                bound[variant_name] = bind_prompt(ref, template, llm.variables)
            except UserError as exc:
                raise type(exc)(
                    f"deployment '{spec.name}', variant '{variant_name}': {exc.message}",
                    hint=exc.hint,
                    detail=exc.detail,
                ) from None
        return bound

    async def _load_variants(self, spec: DeploymentSpec, todo: list[tuple[str, str]]) -> dict[str, Variant]:
        """Load ``todo`` (variant name, URI) through the backend: all of them, or none."""

        async def load_one(variant_name: str, uri: str) -> Variant:
            try:
                if spec.upstream_of(variant_name) is not None:
                    # an HTTP client, not a model: it runs in this process whatever the backend
                    return await asyncio.to_thread(upstream_variant, spec, variant_name)
                scaling = spec.scaling_of(variant_name)
                return await asyncio.to_thread(self.backend.load, spec.name, variant_name, uri, scaling)
            except UserError as exc:
                raise type(exc)(
                    f"deployment '{spec.name}', variant '{variant_name}': {exc.message}",
                    hint=exc.hint,
                    detail=exc.detail,
                ) from None
            except Exception as exc:
                # loading runs the model's own code: its failure is the model's, not a server bug
                raise ModelLoadError(
                    f"deployment '{spec.name}', variant '{variant_name}': the model at '{uri}' failed "
                    f"to load: {type(exc).__name__}: {exc}",
                    hint="fix the model (load it with mlflow.pyfunc.load_model to see why); the "
                    "variants served before keep serving",
                ) from exc

        results: list[Variant | BaseException] = []
        if self.backend.loads_concurrently:
            results = list(await asyncio.gather(*(load_one(*v) for v in todo), return_exceptions=True))
        else:
            for variant_name, uri in todo:
                try:
                    results.append(await load_one(variant_name, uri))
                except LockgateError as exc:  # load_one turns every failure into one
                    results.append(exc)
                    break
        made = [r for r in results if isinstance(r, Variant)]
        failed = [r for r in results if not isinstance(r, Variant)]
        if failed:
            for variant in made:
                await variant.stop()  # nothing half-loaded stays behind (a backend's replicas)
            raise failed[0]
        return {name: variant for (name, _), variant in zip(todo, made, strict=True)}
