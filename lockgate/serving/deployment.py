"""Deployments inside the server: variants behind one name, routed, mirrored and stepped.

- :class:`LiveDeployment` is one deployment as the request path sees it: its loaded variants, the
  routing table in force (one attribute, swapped whole), and the shadow mirror. ``choose`` is a
  hash and a bisect; nothing on the request path touches the store.
- :class:`ShadowMirror` copies requests to the shadow variant through a bounded queue: when it is
  full the copy is dropped and counted, so a slow candidate never slows the primary. Answers are
  compared with the primary's in a :class:`~lockgate.rollout.shadow.ShadowComparison`.
- :class:`DeploymentManager` is the :class:`~lockgate.rollout.runner.RolloutTarget`: it loads
  variants (in a thread), runs the controller loop a few times a second, and carries out the admin
  commands. Counters are read on the event loop and handed to the runner's thread, so the store's
  I/O never runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lockgate.errors import Conflict, LockgateError, ModelLoadError, NotFound, StoreUnreachable, UserError
from lockgate.monitor.alerts import AlertSender, alert_event, pending_alert
from lockgate.monitor.capture import DEFAULT_KEEP, PendingCapture, TrafficCapture
from lockgate.monitor.live import LiveDrift
from lockgate.monitor.predictions import model_inputs, output_kind, primary_output, reference_sketch
from lockgate.monitor.reference import Reference
from lockgate.monitor.retrain import RetrainTrigger
from lockgate.monitor.timeline import WeightTimeline
from lockgate.rollout.controller import RecordEvent, routing_table
from lockgate.rollout.router import (
    BUCKETS,
    RoutingTable,
    assign,
    bucket_and_unit,
    random_bucket,
    should_shadow,
)
from lockgate.rollout.runner import ChampionRegistry, RolloutRunner, check_replaceable
from lockgate.rollout.shadow import ShadowComparison
from lockgate.rollout.spec import DeploymentSpec, VariantScaling
from lockgate.rollout.store import Deployment, Store
from lockgate.serving.protocol import InferenceRequest, Outputs
from lockgate.serving.signature import Signature
from lockgate.serving.variant import Variant
from lockgate.stats.accumulators import VariantStats
from lockgate.stats.units import UNITS
from lockgate.stats.verdict import Policy

if TYPE_CHECKING:
    from lockgate.serving.app import ServingApp

__all__ = [
    "DeploymentManager",
    "LiveDeployment",
    "ScaledVariantLoader",
    "ShadowMirror",
    "VariantLoader",
    "field_routing_key",
]

_log = logging.getLogger("lockgate.serving")

_ALERT_PHASES = frozenset({"rolled_back", "halted"})

RETIRE_AFTER_S = 30.0
"""How long a replaced variant keeps answering the requests routed to it before it is stopped."""

VariantLoader = Callable[[str, str, str], Variant]
"""Loads (deployment name, variant name, model URI) into a warmed-up variant (blocking)."""

ScaledVariantLoader = Callable[[str, str, str, VariantScaling], Variant]
"""A distributed backend's loader: also given the variant's scaling (replicas, autoscaling)."""


def _primary(outputs: Outputs, name: str | None) -> np.ndarray[Any, Any]:
    if name is not None and name in outputs:
        return outputs[name]
    return next(iter(outputs.values()))


def compare_outputs(
    comparison: ShadowComparison, primary: Outputs, shadow: Outputs, name: str | None
) -> None:
    """Fold one pair of answers into ``comparison``: labels, numbers or embeddings by their form."""
    left, right = _primary(primary, name), _primary(shadow, name)
    if left.shape != right.shape:
        comparison.update_labels(np.zeros(1), np.ones(1))  # a shape change is a disagreement
        return
    if left.dtype.kind in "iubOUS":
        comparison.update_labels(left.ravel(), right.ravel())
    elif left.ndim == 2 and left.shape[1] > 1 and (name or "").startswith("embedding"):
        comparison.update_embeddings(left, right)
    else:
        comparison.update_numbers(left, right)


@dataclass
class ShadowMirror:
    """The bounded queue of shadow copies and the comparison of their answers."""

    max_queue: int = 256
    comparison: ShadowComparison = field(default_factory=ShadowComparison)
    mirrored: int = 0
    dropped: int = 0
    failed: int = 0
    _queue: asyncio.Queue[tuple[Variant, InferenceRequest, Outputs, float, int | None]] | None = None
    _worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._worker is None:
            self._queue = asyncio.Queue(self.max_queue)
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="lockgate-shadow")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def offer(
        self,
        shadow: Variant,
        request: InferenceRequest,
        primary: Outputs,
        primary_ms: float,
        unit: int | None = None,
    ) -> None:
        """Queue a copy, or drop it when the queue is full (never waits)."""
        if self._queue is None:
            return
        try:
            self._queue.put_nowait((shadow, request, primary, primary_ms, unit))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            shadow, request, primary, primary_ms, unit = await self._queue.get()
            started = time.perf_counter()
            is_error = False
            try:
                answer = await shadow.infer(request)
            # the shadow's failure is a number in its statistics, never a failed primary request
            except Exception:  # noqa: BLE001
                is_error = True
                self.failed += 1
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            shadow.record(elapsed_ms, is_error=is_error, unit=unit)
            self.mirrored += 1
            if not is_error:
                compare_outputs(self.comparison, primary, answer, shadow.predictor.primary_output)
                self.comparison.record_latency([primary_ms], [elapsed_ms])

    def summary(self) -> dict[str, float]:
        return {
            **self.comparison.summary(),
            "mirrored": float(self.mirrored),
            "dropped": float(self.dropped),
            "failed": float(self.failed),
        }


@dataclass
class LiveDeployment:
    """A deployment on the request path: its variants and the routing table in force."""

    spec: DeploymentSpec
    variants: dict[str, Variant]
    table: RoutingTable
    phase: str = "pending"
    version: int = 0
    decision: str | None = None  # the policy's latest verdict
    mirror: ShadowMirror = field(default_factory=ShadowMirror)
    _salt: str = ""
    _header: bytes | None = None  # a routing-key header other than x-routing-key, lowercased
    field_name: str | None = None  # the input field whose value is the routing key, if any
    drift: LiveDrift | None = None  # sampled input sketches per variant, when a reference is set
    drift_flagged: set[str] = field(default_factory=set)  # variants whose drift was audited
    capture: TrafficCapture | None = None  # sampled requests for replay, when capture is on

    def __post_init__(self) -> None:
        # worked out once: the request path reads attributes instead of the spec's properties
        self._salt = self.spec.routing_salt
        key = self.spec.routing_key
        if key.source == "field":
            self.field_name = key.name
        elif key.name.lower() != "x-routing-key":
            self._header = key.name.lower().encode("latin-1")

    def choose(self, routing_key: str | None) -> tuple[Variant, Variant | None, int]:
        """The variant that answers, the one that gets a shadow copy (or None), and the request's
        analysis unit (a keyed request's comes from its key, so a user stays in one unit).

        The table is read once, so a request is routed wholly by the old table or the new one.
        """
        table = self.table
        if routing_key:
            index, unit = bucket_and_unit(self._salt, routing_key)
        else:
            # no key: any uniform draw will do (traffic splitting, not security)
            draw = random.random()  # noqa: S311
            index, unit = random_bucket(draw), int(draw * BUCKETS * UNITS) % UNITS
        chosen = assign(table, index)
        shadow = None
        if (
            table.shadow_variant is not None
            and table.shadow_variant != chosen
            and should_shadow(table, index)
        ):
            shadow = self.variants[table.shadow_variant]
        return self.variants[chosen], shadow, unit

    def name_of(self, variant: Variant) -> str | None:
        """The name ``variant`` is served under here; None when it is not (any more) one of ours.

        By identity, not ``id()``: a variant remembered from before a redeploy may be gone, and its
        id reused by another object.
        """
        for name, candidate in self.variants.items():
            if candidate is variant:
                return name
        return None

    def routing_key(self, headers: list[tuple[bytes, bytes]], default: bytes | None) -> str | None:
        """The request's key from the header the spec names (``x-routing-key`` by default)."""
        wanted = self._header
        if wanted is None:
            return default.decode("latin-1") if default is not None else None
        for name, value in headers:
            if name == wanted:
                return value.decode("latin-1")
        return None

    def snapshot(self) -> dict[str, VariantStats]:
        return {name: variant.snapshot() for name, variant in self.variants.items()}


def field_routing_key(inputs: Any, signature: Signature, name: str) -> str | None:
    """The routing key in a decoded request's input field ``name`` (its first row), or None.

    Whole numbers give the same key as integers and floats (``42`` and ``42.0`` are one user).
    """
    value: Any = None
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 2 and len(inputs) and name in signature.column_names:
            value = inputs[0, signature.column_names.index(name)]
    elif hasattr(inputs, "columns") and name in inputs.columns and len(inputs):
        value = inputs[name].iloc[0]
    if value is None:
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _counted(stats: VariantStats) -> tuple[int, int]:
    """How much a snapshot has seen: requests, then outcomes (feedback arrives after requests)."""
    return stats.requests, stats.outcome.count + stats.conversions.trials


class DeploymentManager:
    """Deployments of one serving process, their controller loop and their commands.

    ``store`` holds the state; ``load`` loads a variant; ``policy_for`` gives the policy that
    judges a deployment; ``registry`` (optional) moves the champion alias on promote and rollback.
    ``tick_s`` is the controller's period; every ``discover_s`` the store is checked for
    deployments that other gateways created. Several gateways on one store (Postgres) add up
    their counters there, and one of them at a time (the lease holder) steps each rollout.
    ``alerts`` (optional) gets an alert when a rollout rolls back or halts, after the tick that
    saw it (never on the request path); each alert is also an ``alert`` event in the audit log.
    ``drift_reference`` (optional) turns on live drift: one request in ``drift_sample_every`` is
    sketched per variant and compared with it; a drifted variant is a ``drift`` audit event (and
    an alert). ``retrain`` (optional) runs a retraining pipeline on a variant's first drift, at
    most once per its cooldown: ``retrain`` and ``retrain_done`` audit events (the latter alerted).
    an alert). ``capture_every`` (0: off) captures one answered request in that many per
    deployment into the store for ``lockgate replay``, in a batch a second, keeping the newest
    ``capture_keep``.
    """

    def __init__(
        self,
        store: Store,
        *,
        load: VariantLoader,
        scaled_load: ScaledVariantLoader | None = None,
        policy_for: Callable[[DeploymentSpec], Policy],
        registry: ChampionRegistry | None = None,
        tick_s: float = 0.25,
        worker_id: str | None = None,
        initial: Sequence[DeploymentSpec] = (),
        discover_s: float = 1.0,
        persist_joins: bool = False,
        max_joins: int = 1_000_000,
        alerts: AlertSender | None = None,
        drift_reference: Reference | None = None,
        drift_sample_every: int = 10,
        retrain: RetrainTrigger | None = None,
        capture_every: int = 0,
        capture_keep: int = DEFAULT_KEEP,
        external_metrics: Callable[[DeploymentSpec], Mapping[str, Mapping[str, float]]] | None = None,
    ) -> None:
        self.store = store
        self.retrain = retrain
        self._retrain_due: list[tuple[str, str]] = []  # (deployment, variant) that drifted
        self.capture_every = capture_every
        self.capture_keep = capture_keep
        self.capture_flush_s = 1.0  # captured rows wait this long, so one commit carries many
        self._captures_written_at = 0.0
        self.alerts = alerts
        self.drift_reference = drift_reference
        self.drift_sample_every = drift_sample_every
        self._alerts_due: set[str] = set()
        self.initial = tuple(initial)
        self.discover_s = discover_s
        self.persist_joins = persist_joins
        self.max_joins = max_joins
        self._pending_joins: dict[str, list[tuple[str, str]]] = {}
        self._flushes = 0
        self._retired: list[Variant] = []  # replaced, still answering requests routed to them
        self._retire_tasks: set[asyncio.Task[None]] = set()
        self.load = load
        self.scaled_load = scaled_load  # when given, it loads instead of ``load``, with the scaling
        self.tick_s = tick_s
        self.worker_id = worker_id or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.live: dict[str, LiveDeployment] = {}
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
        self._lock: asyncio.Lock | None = None
        self.tick_errors = 0
        self.store_error: str | None = None  # why the controller waits: the store is unreachable
        self._deploying: set[str] = set()  # being deployed here: discovery leaves them alone
        self.timeline = WeightTimeline()  # the weights over time, for the dashboard
        self._background: set[asyncio.Task[None]] = set()  # reference predictions being computed
        self.after_tick: list[Callable[[], None]] = []  # run in a thread about once a second
        # load a spec's variants at once (a backend whose loads wait on other machines, e.g. Ray)
        self.concurrent_loads = False

    # ------------------------------------------------------------------ RolloutTarget

    def snapshot(self, name: str) -> dict[str, VariantStats]:
        collected = self._collected.get(name)
        if collected is not None:
            return collected
        live = self.live.get(name)
        return live.snapshot() if live is not None else {}

    def apply(self, deployment: Deployment) -> None:
        live = self.live.get(deployment.name)
        if live is None or deployment.version == live.version:
            return
        phase = deployment.state.phase.value
        if self.alerts is not None and phase in _ALERT_PHASES and phase != live.phase:
            self._alerts_due.add(deployment.name)
        live.table = routing_table(deployment.state)  # one assignment: atomic for the request path
        live.phase = deployment.state.phase.value
        live.version = deployment.version
        verdict = deployment.state.last_verdict
        live.decision = verdict.decision.value if verdict is not None else None
        weights = {v: bp / 100.0 for v, bp in deployment.state.weights_bp}
        self.timeline.record(deployment.name, time.time(), live.phase, weights)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, app: ServingApp) -> None:
        """Serve every deployment the store holds, then run the controller loop."""
        self._app = app
        self._lock = asyncio.Lock()
        stored = await asyncio.to_thread(self.store.list_deployments)
        for deployment in stored:
            await self._load(deployment.spec)
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
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in list(self._retire_tasks):
            task.cancel()
        for live in self.live.values():
            await live.mirror.stop()
        for live in self.live.values():
            await asyncio.gather(*(variant.stop() for variant in live.variants.values()))
        retired, self._retired = self._retired, []
        await asyncio.gather(*(variant.stop() for variant in retired))
        # the last counters reach the store, so a clean restart loses nothing
        await self._tick()
        if self.alerts is not None:
            if self._alerts_due:
                await self._send_alerts()
            await asyncio.to_thread(self.alerts.close)

    def _retire_later(self, variants: list[Variant]) -> None:
        """Stop replaced variants after ``RETIRE_AFTER_S``: a request routed to one just before the
        new table took effect (its body still arriving) is answered by it, not refused."""
        if not variants:
            return
        self._retired.extend(variants)

        async def retire() -> None:
            await asyncio.sleep(RETIRE_AFTER_S)
            for variant in variants:
                await variant.stop()
                self._retired.remove(variant)

        task = asyncio.get_running_loop().create_task(retire(), name="lockgate-retire")
        self._retire_tasks.add(task)
        task.add_done_callback(self._retire_tasks.discard)

    async def flush(self) -> None:
        """Send the counters to the store now (one controller tick)."""
        if self._lock is not None:
            await self._tick()

    async def _loop(self) -> None:
        last_discovery = last_hooks = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self._tick()
                if self.drift_reference is not None:
                    await asyncio.to_thread(self._fold_drift)
                if self._alerts_due:
                    await self._send_alerts()
                if self._retrain_due:
                    await asyncio.to_thread(self._start_retrain)
                now = asyncio.get_running_loop().time()
                if self.after_tick and now - last_hooks >= 1.0:
                    last_hooks = now
                    for hook in self.after_tick:
                        await asyncio.to_thread(hook)
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
        """Serve what other gateways on the same store created or redeployed.

        A deployment made through another gateway's admin API appears here within
        ``discover_s``; weight changes already arrive with every tick (each re-reads the state).
        """
        for deployment in await asyncio.to_thread(self.store.list_deployments):
            live = self.live.get(deployment.name)
            if deployment.name in self._deploying or (live is not None and live.spec == deployment.spec):
                continue
            try:
                await self._load(deployment.spec)
            except LockgateError as exc:
                _log.error("cannot serve deployment '%s' from the store: %s", deployment.name, exc)
                continue
            self.apply(deployment)
            _log.info("serving deployment %s, created by another gateway", deployment.name)

    async def _tick(self) -> None:
        assert self._lock is not None
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
            # the last tick (the loop stopped) writes whatever is waiting
            await self._save_captures(is_final=self._loop_task is None)

    async def _save_captures(self, *, is_final: bool) -> None:
        """Write each deployment's captured requests in one batch (encoded in a worker thread),
        once a second or at the end; a failed write puts them back for the next tick."""
        now = time.monotonic()
        if not is_final and now - self._captures_written_at < self.capture_flush_s:
            return
        self._captures_written_at = now
        for name, live in list(self.live.items()):
            capture = live.capture
            if capture is None or not capture.pending:
                continue
            rows = capture.drain()
            try:
                await asyncio.to_thread(self._write_captures, name, capture, rows)
            except Exception:
                # a cancelled write (shutdown) still finishes in its thread: only a failure requeues
                capture.requeue(rows)
                raise

    def _write_captures(self, name: str, capture: TrafficCapture, rows: list[PendingCapture]) -> None:
        encoded = capture.encode(name, rows)
        self.store.save_captures(name, encoded)
        capture.written += len(encoded)
        capture.flushes += 1
        if capture.flushes % 20 == 1:  # the first write, then every twentieth: keep the newest
            self.store.prune_captures(name, keep=self.capture_keep)

    async def _send_alerts(self) -> None:
        """Alert on each rollback or halt the audit log has that no alert names yet."""
        assert self.alerts is not None
        for name in sorted(self._alerts_due):
            # discarded before the look: a rollback noted meanwhile (a command's thread) stays due
            self._alerts_due.discard(name)
            events = await asyncio.to_thread(self.store.events, name)
            alert = pending_alert(name, events, now=time.time())
            if alert is None:
                continue
            record = alert_event(alert, now=time.time(), destination=self.alerts.destination)
            await asyncio.to_thread(self.store.append_events, name, [record])
            self.alerts.send(alert)
            _log.warning("%s", alert.text)

    def _fold_drift(self) -> None:
        """Sketch the sampled inputs and outputs; audit each variant's first drift (a worker thread)."""
        for name, live in list(self.live.items()):
            if live.drift is None or not live.drift.fold():
                continue
            outputs = live.drift.output_reports()
            for variant, report in live.drift.reports().items():
                output = outputs.get(variant)
                drifted = [*report.drifted]
                features = [f for f in report.features if f.is_drifted]
                if output is not None and output.is_drifted:
                    drifted.append(
                        "predictions" if output.name == "predictions" else f"predictions ({output.name})"
                    )
                    features.append(output)
                if not drifted or variant in live.drift_flagged:
                    continue
                live.drift_flagged.add(variant)
                worst = {
                    f"{f.name}.{k}": v
                    for f in features
                    for k, v in f.numbers.items()
                    if k in ("psi", "js", "cosine_distance") and np.isfinite(v)
                }
                what = "inputs" if report.has_drift else "predictions"
                if report.has_drift and output is not None and output.is_drifted:
                    what = "inputs and predictions"
                reason = f"{what} of variant '{variant}' drifted from the reference: {', '.join(drifted)}"
                event = RecordEvent(time.time(), "monitor", "drift", reason, live.phase, live.phase, worst)
                self.store.append_events(name, [event])
                _log.warning("deployment '%s': %s", name, reason)
                if self.alerts is not None:
                    self._alerts_due.add(name)
                if self.retrain is not None:
                    self._retrain_due.append((name, variant))

    def _start_retrain(self) -> None:
        """Run the retraining pipeline for the first drift waiting, unless a run or the cooldown
        says not now (a worker thread); every drift that waited is audited either way."""
        trigger = self.retrain
        assert trigger is not None
        due, self._retrain_due = self._retrain_due, []
        for name, variant in due:
            live = self.live.get(name)
            phase = live.phase if live is not None else ""
            now = time.time()
            refusal = trigger.refusal(now)
            if refusal is not None:
                reason = f"no retraining after the drift of variant '{variant}': {refusal}"
                self.store.append_events(
                    name, [RecordEvent(now, "monitor", "retrain_skipped", reason, phase, phase)]
                )
                continue
            reason = f"drift of variant '{variant}': running lockgate pipeline run {trigger.pipeline}"
            self.store.append_events(name, [RecordEvent(now, "monitor", "retrain", reason, phase, phase)])
            _log.warning("deployment '%s': %s", name, reason)

            def done(code: int, duration_s: float, name: str = name, variant: str = variant) -> None:
                live = self.live.get(name)
                phase = live.phase if live is not None else ""
                outcome = "succeeded" if code == 0 else f"failed with exit code {code}"
                why = f"retraining pipeline {trigger.pipeline} after the drift of '{variant}' {outcome}"
                numbers = {"exit_code": float(code), "duration_s": duration_s}
                event = RecordEvent(time.time(), "monitor", "retrain_done", why, phase, phase, numbers)
                self.store.append_events(name, [event])
                (_log.info if code == 0 else _log.error)("deployment '%s': %s", name, why)
                if self.alerts is not None:
                    self._alerts_due.add(name)

            trigger.start(now, done)

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
        assert self._lock is not None
        try:
            existing = await asyncio.to_thread(self.store.get_deployment, spec.name)
        except NotFound:
            existing = None
        if existing is not None:
            check_replaceable(existing)  # before loading anything: a live rollout keeps its variants
        self._deploying.add(spec.name)
        try:
            await self._load(spec)
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
        assert self._lock is not None
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
        deployment, all_stats = await self.variant_stats(name)
        state = deployment.state
        variants = {}
        for variant_name, uri in deployment.spec.variants.items():
            stats = all_stats[variant_name]
            served = live.variants[variant_name]
            variants[variant_name] = {
                "model_uri": uri,
                "model_name": served.model_name,
                "model_version": served.model_version,
                "weight_percent": state.weight_of(variant_name) / 100.0,
                "requests": stats.requests,
                "errors": stats.errors,
                "error_rate": stats.error_rate,
                "p50_ms": stats.latency.quantile(0.5) if stats.requests else None,
                "p99_ms": stats.latency.quantile(0.99) if stats.requests else None,
                "outcomes": {
                    "n": stats.outcome.count,
                    "mean": stats.outcome.mean if stats.outcome.count else None,
                    "std": stats.outcome.std if stats.outcome.count > 1 else None,
                },
                "conversions": {
                    "n": stats.conversions.trials,
                    "successes": stats.conversions.successes,
                    "rate": stats.conversions.rate if stats.conversions.trials else None,
                },
            }
        verdict = state.last_verdict
        return {
            "name": name,
            "phase": state.phase.value,
            "strategy": deployment.spec.strategy.kind,
            "baseline": deployment.spec.baseline,
            "candidate": deployment.spec.candidate,
            "stage": state.stage_index + 1,
            "reason": state.reason,
            "version": deployment.version,
            "updated_at": deployment.updated_at,
            "variants": variants,
            "shadow": {
                "variant": state.shadow_variant,
                "fraction": state.shadow_fraction,
                **live.mirror.summary(),
            },
            "drift": live.drift.summary() if live.drift is not None else None,
            "capture": live.capture.summary() if live.capture is not None else None,
            "verdict": None
            if verdict is None
            else {
                "decision": verdict.decision.value,
                "reasons": list(verdict.reasons),
                "numbers": {k: v for k, v in verdict.numbers.items() if np.isfinite(v)},
            },
        }

    async def history(self, name: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        self._require(name)
        events = await asyncio.to_thread(self.store.events, name, after_id=after_id)
        return [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "reason": e.reason,
                "from_phase": e.from_phase,
                "to_phase": e.to_phase,
                "numbers": dict(e.numbers),
            }
            for e in events
        ]

    # ------------------------------------------------------------------ loading

    async def _reference_predictions(self, live: LiveDeployment, chunk_rows: int = 256) -> None:
        """The baseline's outputs on the drift reference's rows, as the reference of predictions.

        Through the baseline's own batcher (a model is never called from two threads), in chunks,
        so live requests interleave with it; the sketch is built in a worker thread.
        """
        drift, reference = live.drift, self.drift_reference
        assert drift is not None and reference is not None
        baseline = live.variants[live.spec.baseline]
        if reference.rows is None or not len(reference.rows):
            drift.set_output_error("the drift reference keeps no rows to run the baseline on")
            return
        try:
            inputs = model_inputs(reference.rows, baseline.predictor.signature)
            answers = []
            for start in range(0, len(inputs), chunk_rows):
                part = inputs[start : start + chunk_rows]
                request = InferenceRequest(part, len(part))
                outputs = await baseline.infer(request)
                answer = primary_output(outputs, baseline.predictor.primary_output)
                if answer is None:
                    raise UserError(f"the baseline '{live.spec.baseline}' returned no output")
                answers.append(answer)
            output_name = answers[0][0]
            values = np.concatenate([a[1] for a in answers])
            kind = output_kind(values, output_name)
            if kind is None:
                raise UserError(
                    f"output '{output_name}' of shape {values.shape[1:]} and dtype {values.dtype} has no "
                    "sketch (labels, one number per row or embeddings have)"
                )
            sketch = await asyncio.to_thread(reference_sketch, values, kind)
        except asyncio.CancelledError:
            raise
        # the reference is an extra: whatever stops it is shown in the status, never fatal
        except Exception as exc:  # noqa: BLE001
            message = exc.message if isinstance(exc, LockgateError) else f"{type(exc).__name__}: {exc}"
            drift.set_output_error(message)
            _log.warning("deployment '%s': no reference of predictions: %s", live.spec.name, message)
            return
        source = f"{live.spec.baseline} on {len(values)} rows of {reference.dataset or 'the reference'}"
        drift.set_output_reference(sketch, name=output_name, source=source)

    async def _load(self, spec: DeploymentSpec) -> None:
        """Load the variants the spec needs (reusing any already loaded from the same URI)."""
        current = self.live.get(spec.name)
        reuse: dict[str, Variant] = {}
        if current is not None:
            # each loaded variant is reused once, for a variant of the new spec with the same URI
            # (and scaling: a backend with replicas runs them as they were asked for)
            old = current.spec
            pool = [((old.variants[n], old.scaling_of(n)), v) for n, v in current.variants.items()]
            for variant_name, uri in spec.variants.items():
                for index, (loaded_as, variant) in enumerate(pool):
                    if loaded_as == (uri, spec.scaling_of(variant_name)):
                        reuse[variant_name] = variant
                        del pool[index]
                        break
            for variant_name, variant in reuse.items():
                if current.name_of(variant) != variant_name:
                    variant.restart_counters()  # counters belong to (variant, model), as in the store

        async def load_one(variant_name: str, uri: str) -> Variant:
            try:
                if self.scaled_load is not None:
                    scaling = spec.scaling_of(variant_name)
                    return await asyncio.to_thread(self.scaled_load, spec.name, variant_name, uri, scaling)
                return await asyncio.to_thread(self.load, spec.name, variant_name, uri)
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

        todo = [(name, uri) for name, uri in spec.variants.items() if name not in reuse]
        results: list[Variant | BaseException] = []
        if self.concurrent_loads:
            results = list(await asyncio.gather(*(load_one(*v) for v in todo), return_exceptions=True))
        else:
            for variant_name, uri in todo:
                try:
                    results.append(await load_one(variant_name, uri))
                except LockgateError as exc:  # load_one turns every failure into one
                    results.append(exc)
                    break
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            for result in results:
                if isinstance(result, Variant):
                    await result.stop()  # nothing half-loaded stays behind (a backend's replicas)
            raise failed[0]
        fresh = dict(zip((name for name, _ in todo), results, strict=False))
        loaded: dict[str, Variant] = {}
        for variant_name in spec.variants:
            if variant_name in reuse:
                loaded[variant_name] = reuse[variant_name]
                continue
            made = fresh[variant_name]
            assert isinstance(made, Variant) and self._app is not None
            self._app.start_variant(made)
            loaded[variant_name] = made
        table = current.table if current is not None else RoutingTable.single(spec.baseline)
        if any(v not in loaded for v in table.variants):
            table = RoutingTable.single(spec.baseline)
        live = LiveDeployment(spec, loaded, table)
        if self.drift_reference is not None:
            live.drift = LiveDrift(self.drift_reference, sample_every=self.drift_sample_every)
            task = asyncio.get_running_loop().create_task(
                self._reference_predictions(live), name=f"lockgate-reference-{spec.name}"
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if self.capture_every:
            # a redeploy keeps the queue: what was captured under the old spec is still written
            kept = current.capture if current is not None else None
            live.capture = kept or TrafficCapture(self.capture_every)
        if current is not None:
            retired = [v for v in current.variants.values() if v not in loaded.values()]
            await current.mirror.stop()
            self._retire_later(retired)
        live.mirror.start()
        self.live[spec.name] = live
        if self._app is not None and self._app.default_model is None:
            self._app.default_model = spec.name  # /invocations serves the first deployment
